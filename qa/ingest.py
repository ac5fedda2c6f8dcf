"""Incremental, crash-safe ingestion of corpus_dir into the store."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from qa.chunking import Chunk, chunk_text, make_splitter
from qa.embeddings import LocalEmbedding, make_embedding
from qa.errors import ConfigError, QAError, StoreError
from qa.loading import CorpusFile, SkippedFile, chunk_pages, load_corpus
from qa.settings import Settings, load_settings
from qa.snapshot import Snapshot
from qa.store import DocRecord, Store, describe_location
from qa.text import count_tokens

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, str], None]  # (chunks done, chunks total, current source)

# Documents are embedded in groups: one encode call for the distinct new texts of several documents (each
# text once: chunk overlap repeats sentences, and a one-sentence chunk is its own sentence), then each
# document's chunks are written and its manifest record swapped, one document at a time as before. A group
# closes once it holds this many distinct texts, so that progress still moves every few seconds.
GROUP_TEXTS = 128
CACHE_TEXTS = 20_000  # vectors kept across groups, for texts repeated between documents (boilerplate)


class VectorCache:
    """Vectors of texts embedded in this run, keyed by text (the same text always gets the same vector)."""

    def __init__(self, limit: int = CACHE_TEXTS):
        self.limit = limit
        self._vectors: dict[str, np.ndarray] = {}  # rows of the float32 batches, as the model returned them

    def __contains__(self, text: str) -> bool:
        return text in self._vectors

    def __getitem__(self, text: str) -> list[float]:
        return self._vectors[text].tolist()

    def vector(self, text: str) -> np.ndarray:
        return self._vectors[text]

    def embed(self, model: LocalEmbedding, texts: list[str]) -> int:
        """Embed those of texts not cached yet, in one call; returns how many were embedded."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if not todo:
            return 0
        vectors = model.encode(todo, is_query=False)
        overflow = len(self._vectors) + len(todo) - self.limit
        if overflow > 0:  # forget the oldest, never a text the group being written needs
            needed = set(texts)
            for old in [t for t in self._vectors if t not in needed][:overflow]:
                del self._vectors[old]
        self._vectors.update(zip(todo, vectors))
        return len(todo)


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    documents_total: int = 0
    embedded_texts: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    location: str = ""

    def summary(self) -> str:
        lines = [
            f"documents: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed "
            f"({self.documents_total} in the store)",
            f"chunks: {self.chunks_added} added, {self.chunks_removed} removed ({self.chunks_total} in the store); "
            f"{self.embedded_texts} texts embedded in {self.seconds:.1f} s",
        ]
        lines += [f"skipped {s.source}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def signature(settings: Settings, model: LocalEmbedding) -> str:
    """What a document's chunks depend on besides its bytes: changing it re-chunks the document."""
    pooled = "|pooled" if settings.chunk_vectors == "pooled" else ""  # default stores keep their signature
    return f"{model.model_name}|{settings.chunk_size}|{settings.chunk_overlap}|v1{pooled}"


@contextmanager
def writer_lock(settings: Settings):
    """One ingestion at a time per store; a second one is refused at once with a clear message."""
    if settings.chroma_host:
        key = hashlib.sha1(f"{settings.chroma_host}:{settings.chroma_port}/{settings.collection}".encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"qa-ingest-{key}.lock"
    else:
        path = Path(settings.persist_dir) / f".ingest-{settings.collection}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot create the lock file {path} ({exc.strerror or exc}); check that {path.parent} is a writable folder"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"another ingestion is writing to {describe_location(settings)} (lock {path}); wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def _tqdm_progress(total_chunks: int):
    from tqdm import tqdm

    bar = tqdm(total=total_chunks, unit="chunk", desc="ingesting", file=sys.stderr, disable=None, dynamic_ncols=True)

    def update(done: int, total: int, source: str) -> None:
        bar.set_postfix_str(source[-40:], refresh=False)
        bar.update(done - bar.n)

    return bar, update


def ingest(
    settings: Settings | None = None,
    *,
    rebuild: bool = False,
    progress: ProgressFn | None = None,
    embed_model: LocalEmbedding | None = None,
) -> IngestReport:
    """Bring the store in line with corpus_dir: embed new and changed files, drop deleted ones."""
    settings = settings or load_settings()
    started = time.perf_counter()
    corpus = Path(settings.corpus_dir)
    if not corpus.is_dir():
        raise ConfigError(f"corpus_dir {corpus} is not a folder; set QA_CORPUS_DIR to the folder of your articles")
    model = embed_model or make_embedding(settings)
    with writer_lock(settings):
        store = Store(settings)
        if rebuild:
            report = _rebuild(settings, store, model, progress)
        else:
            store.check_model(model.model_name, model.dim)
            store.create(model.model_name, model.dim)
            report = _sync(settings, store, model, progress)
        save_snapshot(settings, store)
    report.seconds = time.perf_counter() - started
    report.location = describe_location(settings)
    return report


def _rebuild(settings: Settings, store: Store, model: LocalEmbedding, progress) -> IngestReport:
    """Build into staging collections, then swap: the old index answers until the new one is complete."""
    staging = Store(settings, name=f"{settings.collection}-rebuild", client=store.client)
    staging.drop()
    staging.create(model.model_name, model.dim)
    report = _sync(settings, staging, model, progress)
    store.drop()
    staging.rename_to(settings.collection)
    return report


def _sync(settings: Settings, store: Store, model: LocalEmbedding, progress: ProgressFn | None,
          only: set[str] | None = None) -> IngestReport:
    """only: limit the work to these sources (an upload must not pick up other changes of the corpus)."""
    report = IngestReport()
    loaded = load_corpus(Path(settings.corpus_dir), settings.max_file_bytes)
    if only is not None:
        loaded.files = [f for f in loaded.files if f.source in only]
        loaded.skipped = [s for s in loaded.skipped if s.source in only]
    report.skipped = loaded.skipped
    manifest = store.manifest()
    sig = signature(settings, model)
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)

    todo: list[tuple[CorpusFile, list[Chunk], bool]] = []
    present = {f.source for f in loaded.files} | {s.source for s in loaded.skipped}
    for f in loaded.files:
        old = manifest.get(f.source)
        if old and old.file_hash == f.file_hash and old.signature == sig:
            report.unchanged += 1
            continue
        todo.append((f, chunk_text(f.source, f.text, splitter), old is not None))

    # A file that became unreadable keeps its previous version in the store; only deleted files go.
    gone = [s for s in manifest if s not in present and only is None]

    total = sum(len(chunks) for _, chunks, _ in todo)
    bar = None
    if progress is None and total:
        bar, progress = _tqdm_progress(total)
    done = 0
    cache = VectorCache()
    try:
        pooled = settings.chunk_vectors == "pooled"
        for group in _groups(store, todo, cache, pooled):
            # One encode call for the group; a failure here leaves all of its documents as they were.
            texts = [t for _, _, _, fresh in group for t in _texts(fresh, pooled)]
            if bar is not None:  # the bar moves per committed document; say what the wait is for
                bar.set_postfix_str(f"embedding {len(set(texts))} texts of {len(group)} documents")
            report.embedded_texts += cache.embed(model, texts)
            for f, chunks, existed, fresh in group:
                new_ids = [c.id for c in chunks]
                _write(store, cache, f, fresh, model if pooled else None)
                old = manifest.get(f.source)
                store.commit_document(
                    DocRecord(f.source, f.file_hash, sig, f.title, f.language, f.url, f.date, new_ids, _now())
                )
                stale = set(old.chunk_ids) - set(new_ids) if old else set()
                store.delete_chunks(stale)
                report.chunks_added += len(fresh)
                report.chunks_removed += len(stale)
                report.updated += existed
                report.added += not existed
                done += len(chunks)
                if progress:
                    progress(done, total, f.source)
        for source in gone:
            report.chunks_removed += _forget(store, manifest[source])
            report.removed += 1
        _sweep_orphans(store)
    finally:
        if bar is not None:
            bar.close()
    final = store.manifest()
    report.documents_total = len(final)
    report.chunks_total = sum(len(r.chunk_ids) for r in final.values())
    return report


def save_snapshot(settings: Settings, store: Store) -> None:
    """Derive the readers' snapshot of the new manifest now (from the previous one: only changed documents are
    read), so that engines open it without reading the corpus. Killed before this, the first reader does it."""
    Snapshot.load(store, settings.retrieval.min_language_chunks, settings.snapshot_folder(store.name))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _forget(store: Store, record: DocRecord) -> int:
    """Remove a document: its manifest record first (readers stop seeing it at once), then its chunks."""
    store.forget_document(record.source)
    store.delete_chunks(record.chunk_ids)
    return len(record.chunk_ids)


def _texts(chunks: list[Chunk], pooled: bool = False) -> list[str]:
    """What a document's new chunks need embedded: each of their sentences, and each chunk's text unless its
    vector is pooled from its sentences' (settings.chunk_vectors)."""
    return [t for c in chunks for t in (c.sentences if pooled and c.sentences else (c.text, *c.sentences))]


def _groups(store: Store, todo: list[tuple[CorpusFile, list[Chunk], bool]], cache: VectorCache, pooled: bool):
    """Documents in groups of about GROUP_TEXTS distinct new texts: (file, chunks, existed, fresh chunks)."""
    group: list[tuple[CorpusFile, list[Chunk], bool, list[Chunk]]] = []
    pending: set[str] = set()
    for f, chunks, existed in todo:
        already = store.existing_chunk_ids([c.id for c in chunks])
        fresh = [c for c in chunks if c.id not in already]  # left by an interrupted run: reused as they are
        group.append((f, chunks, existed, fresh))
        pending.update(t for t in _texts(fresh, pooled) if t not in cache)
        if len(pending) >= GROUP_TEXTS:
            yield group
            group, pending = [], set()
    if group:
        yield group


def _write(store: Store, cache: VectorCache, f: CorpusFile, chunks: list[Chunk],
           pool: LocalEmbedding | None = None) -> None:
    """pool: the model whose pool() makes each chunk's vector from its sentences' (None: the chunk's own)."""
    if not chunks:
        return
    texts = [c.text for c in chunks]
    sentences = [(c, i, s) for c in chunks for i, s in enumerate(c.sentences)]
    chunk_vecs = [pool.pool([cache.vector(s) for s in c.sentences], [max(1, count_tokens(s)) for s in c.sentences]).tolist()
                  if pool is not None and c.sentences else cache[c.text] for c in chunks]
    sent_vecs = [cache[s] for _, _, s in sentences]
    metadatas = [
        {
            "source": f.source,
            "title": f.title,
            "language": f.language,
            "url": f.url,
            "date": f.date,
            "position": c.position,
            "chunk_id": c.id,
            "pages": chunk_pages(f, c.text),  # PDF: where its pages begin in the chunk, for cited page numbers
        }
        for c in chunks
    ]
    sentence_rows = (
        [f"{c.id}:{i}" for c, i, _ in sentences],
        [s for _, _, s in sentences],
        sent_vecs,
        [{"chunk_id": c.id, "source": f.source, "index": i} for c, i, _ in sentences],
    )
    store.write_chunks([c.id for c in chunks], texts, chunk_vecs, metadatas, sentence_rows)


def _sweep_orphans(store: Store) -> None:
    """Delete chunks no committed document lists (left by a run that was killed mid-way)."""
    manifest = store.manifest()
    listed = {cid for r in manifest.values() for cid in r.chunk_ids}
    if store.count() == len(listed):
        return
    orphans = [cid for cid in store.all_chunk_ids() if cid not in listed]
    store.delete_chunks(orphans)


# --- adding and removing documents -------------------------------------------------------------------

@dataclass
class UploadReport:
    added: list[str] = field(default_factory=list)  # sources now answerable
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    error: str = ""

    def message(self) -> str:
        lines = [f"Added {name}: answerable now." for name in self.added]
        lines += [f"Rejected {name}: {reason}. Nothing was changed for it." for name, reason in self.rejected]
        if self.error:
            lines.append(self.error)
        return "\n".join(lines) or "No file was given."


def add_documents(settings: Settings, paths: list[str | Path], *, names: list[str] | None = None,
                  embed_model: LocalEmbedding | None = None, progress: ProgressFn | None = None,
                  max_bytes: int | None = None) -> UploadReport:
    """Check files (name, size, content, duplicates), store them under corpus_dir/uploads and ingest them.

    names: the names the user gave (an upload arrives under a temporary path). A file that fails any
    check, or whose ingestion fails, leaves the corpus folder and the index as they were.
    """
    with _UPLOADS:  # uploads from several sessions wait for each other instead of failing on the lock
        return _add_documents(settings, paths, names or [Path(p).name for p in paths], embed_model, progress,
                              max_bytes)


_UPLOADS = threading.Lock()


def _add_documents(settings, paths, names, embed_model, progress, max_bytes) -> UploadReport:
    from qa.uploads import UPLOAD_DIR, UploadRejected, check_upload, safe_display_name, write_new

    report = UploadReport()
    limit = max_bytes or settings.max_file_bytes
    model = embed_model or make_embedding(settings)
    store = Store(settings)
    known = {r.file_hash: s for s, r in store.manifest().items()}
    accepted: list[tuple[str, bytes]] = []
    for path, name in zip(paths, names):
        shown = safe_display_name(name)
        try:
            checked = check_upload(Path(path), name, limit)
            digest = hashlib.sha256(checked.raw).hexdigest()
            if digest in known:
                raise UploadRejected(f"the same text is already in the corpus as {known[digest]}")
            if any(hashlib.sha256(raw).hexdigest() == digest for _, raw in accepted):
                raise UploadRejected("the same file was given twice")
            accepted.append((checked.name, checked.raw))
        except UploadRejected as exc:
            report.rejected.append((shown, str(exc)))
        except OSError:
            report.rejected.append((shown, "the file could not be read"))
    if not accepted:
        return report
    folder = Path(settings.corpus_dir) / UPLOAD_DIR
    written: list[Path] = []
    try:
        with writer_lock(settings):
            for name, raw in accepted:
                written.append(write_new(folder, name, raw))
            sources = {p.relative_to(settings.corpus_dir).as_posix(): p for p in written}
            store.check_model(model.model_name, model.dim)
            store.create(model.model_name, model.dim)
            try:
                result = _sync(settings, store, model, progress, only=set(sources))
            except BaseException:
                _undo(store, list(sources))
                raise
            save_snapshot(settings, store)
        for skipped in result.skipped:
            sources.pop(skipped.source).unlink(missing_ok=True)
            report.rejected.append((Path(skipped.source).name, skipped.reason))
        report.added = list(sources)
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if not isinstance(exc, Exception):
            raise
        reason = str(exc) if isinstance(exc, QAError) else "indexing failed (see the server log)"
        if not isinstance(exc, QAError):
            log.exception("adding %s failed", [n for n, _ in accepted])
        report.rejected += [(name, reason) for name, _ in accepted]
    return report


def _undo(store: Store, sources: list[str]) -> None:
    """Drop whatever an interrupted upload committed, so the index is as it was before."""
    try:
        manifest = store.manifest()
        for source in sources:
            if source in manifest:
                _forget(store, manifest[source])
        _sweep_orphans(store)
    except Exception:
        log.exception("undoing a failed upload failed")


@dataclass
class RemoveReport:
    removed: list[str] = field(default_factory=list)  # source keys no longer in the index
    chunks_removed: int = 0
    missing: list[str] = field(default_factory=list)  # names given that match no indexed document

    def summary(self) -> str:
        if not self.removed:
            text = "removed nothing"
        else:
            docs = "document" if len(self.removed) == 1 else "documents"
            text = f"removed {len(self.removed)} {docs} ({self.chunks_removed} chunks): {', '.join(self.removed)}"
        return text + (f"; not in the index: {', '.join(self.missing)}" if self.missing else "")


def remove_documents(settings: Settings, sources: list[str], *, delete_files: bool = True,
                     strict: bool = False) -> RemoveReport:
    """Remove documents from the index (and their files from corpus_dir): crash-safe like ingestion.

    sources: source keys, paths to the files, or bare file names (see qa.documents.resolve_source).
    The file goes first (so that an interrupted removal is completed by the next ingestion), then the
    manifest record (readers stop seeing the document at once, fully), then its chunks, sentence rows
    and, at the next refresh, its lexical entries. A name not in the index is reported in `missing`
    and nothing else changes for it; strict=True raises ConfigError on it before removing anything.
    delete_files=False keeps the files: the next `qa ingest` would index them again.
    """
    from qa.documents import listing, resolve_source

    report = RemoveReport()
    corpus = Path(settings.corpus_dir).resolve()
    with writer_lock(settings):
        store = Store(settings)
        manifest = store.manifest()
        keys: list[str] = []
        for source in sources:
            key = resolve_source(str(source), manifest, corpus)
            if key is None:
                if strict:
                    raise ConfigError(f"unknown document {str(source)!r}; the index has: {listing(manifest)}")
                report.missing.append(str(source))
            elif key not in keys:
                keys.append(key)
        for key in keys:
            if delete_files:
                path = (corpus / key).resolve()
                if path.is_relative_to(corpus):
                    path.unlink(missing_ok=True)
            report.chunks_removed += _forget(store, manifest[key])
            report.removed.append(key)
        if keys:
            _sweep_orphans(store)  # also what an earlier, interrupted removal left
            save_snapshot(settings, store)
    return report
