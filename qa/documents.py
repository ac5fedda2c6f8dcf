"""The documents of the index as users see them, and the names by which they may refer to one.

A document is named by its source key (its path relative to corpus_dir, e.g. ``uploads/report.txt``),
by a path to the file (absolute or relative to the working folder, inside corpus_dir), or by its bare
file name when no other document has the same one. Filters (``sources=``, ``languages=``) and removal
resolve names the same way, and an unknown one is a ConfigError that lists the valid values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qa.errors import ConfigError

_SHOWN = 12  # valid values quoted in an error message before "… (n more)"


@dataclass(frozen=True)
class CorpusDocument:
    """One indexed document (`QAEngine.documents()`, `qa.list_documents`, `qa documents`)."""

    source: str  # path relative to corpus_dir: the key filters and removal take
    title: str
    language: str
    chunks: int
    ingested_at: str = ""  # ISO 8601 UTC; "" for documents ingested before the time was recorded
    url: str = ""
    date: str = ""

    @property
    def file(self) -> str:
        return PurePosixPath(self.source).name


def from_records(records) -> list[CorpusDocument]:
    """CorpusDocuments of manifest records (qa.store.DocRecord), sorted by source."""
    return [CorpusDocument(r.source, r.title, r.language, len(r.chunk_ids), r.ingested_at, r.url, r.date)
            for r in sorted(records, key=lambda r: r.source)]


def list_documents(settings=None) -> list[CorpusDocument]:
    """The documents committed in the store of `settings` (no model is loaded)."""
    from qa.settings import load_settings
    from qa.store import Store

    settings = settings or load_settings()
    return from_records(Store(settings).manifest().values())


def listing(values: Iterable[str]) -> str:
    values = sorted(values)
    if not values:
        return "(nothing)"
    shown = ", ".join(values[:_SHOWN])
    return shown + (f" … ({len(values) - _SHOWN} more)" if len(values) > _SHOWN else "")


def resolve_source(value: str, known: Iterable[str], corpus_dir: str | Path | None = None) -> str | None:
    """The source key `value` names among `known`, or None. Raises ConfigError when a bare file name is ambiguous."""
    known = set(known)
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    key = PurePosixPath(value.replace("\\", "/")).as_posix()
    if key in known:
        return key
    if corpus_dir is not None:
        corpus = Path(corpus_dir).resolve()
        for candidate in (Path(value), corpus / value):
            try:
                rel = candidate.resolve().relative_to(corpus).as_posix()
            except (ValueError, OSError):
                continue
            if rel in known:
                return rel
    same_name = sorted(s for s in known if PurePosixPath(s).name == PurePosixPath(key).name)
    if len(same_name) == 1:
        return same_name[0]
    if len(same_name) > 1:
        raise ConfigError(f"the file name {value!r} is ambiguous; give one of: {listing(same_name)}")
    return None


def resolve_sources(values: Iterable[str], known: Iterable[str], corpus_dir=None) -> list[str]:
    """Source keys for user-given names; ConfigError quoting the first unknown one and listing the valid ones."""
    known = sorted(set(known))
    out: list[str] = []
    for value in values:
        key = resolve_source(value, known, corpus_dir)
        if key is None:
            raise ConfigError(f"unknown source {value!r}; the corpus has: {listing(known)}")
        if key not in out:
            out.append(key)
    return out


def allowed_sources(documents: dict, corpus_dir=None, sources: Iterable[str] | None = None,
                    languages: Iterable[str] | None = None) -> frozenset[str] | None:
    """The sources a filtered question may use (None: no filter), from documents {source: has .language}.

    Both filters restrict: a document must be among `sources` and in one of `languages`.
    """
    sources = _as_list(sources, "sources")
    languages = _as_list(languages, "languages")
    if not sources and not languages:
        return None
    allowed = set(documents)
    if sources:
        allowed &= set(resolve_sources(sources, documents, corpus_dir))
    if languages:
        present = {d.language for d in documents.values()}
        wanted = set()
        for lang in languages:
            code = lang.strip().lower() if isinstance(lang, str) else lang
            if code not in present:
                raise ConfigError(f"unknown language {lang!r}; the corpus has: {listing(present)}")
            wanted.add(code)
        allowed = {s for s in allowed if documents[s].language in wanted}
    if not allowed:
        raise ConfigError(f"no document is both among the sources {listing(sources)} and in the languages "
                          f"{listing(languages)}")
    return frozenset(allowed)


def _as_list(values, name: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise ConfigError(f"{name} must be a list of names") from None
    for v in values:
        if not isinstance(v, str):
            raise ConfigError(f"{name} must be a list of names, not {v!r}")
    return [v for v in values if v.strip()]
