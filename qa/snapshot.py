"""What readers may see: the committed chunks (per the manifest), their metadata, BM25 and language centroids.

Everything but the chunk texts is derived once per manifest and saved in `folder/<key>/` (see `Snapshot.load`):
an engine opens by memory-mapping it, whatever the corpus size, and texts are fetched from Chroma for the
candidates of each question. A snapshot for a new manifest is built from the newest saved one, reading and
tokenizing only the documents that changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from llama_index.core.schema import TextNode

from qa.lexical import LexicalIndex
from qa.references import site_name
from qa.sentences import ChunkSentences, SentenceTable
from qa.store import DocRecord, Store

log = logging.getLogger(__name__)

PUBLIC_METADATA = ("source", "title", "language", "url", "date", "position", "pages")
FORMAT = 2  # bump when the saved layout changes: older folders are then rebuilt, never misread
KEEP = 2  # saved snapshots kept per collection (a reader may still map the previous one)
CENTRING_SAMPLE = 2000  # chunk vectors kept per language for language centring
TEXT_CACHE = 4096  # chunk texts kept in memory per snapshot (fetched from Chroma on a miss)
PROGRESS_FROM = 2000  # a build reading more chunks than this shows a progress line on stderr


def manifest_key(manifest: dict) -> str:
    """Changes whenever a document is added, removed or re-ingested."""
    return "|".join(sorted(f"{s}:{r.file_hash}:{r.signature}" for s, r in manifest.items()))


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    title: str
    language: str
    site: str  # 'rfi' for rfi.fr: how a question may name the document
    first_chunk: str  # id of the chunk at position 0 (the lead)


class ChunkTable(Mapping):
    """chunk id -> its public metadata, for the committed chunks; document fields are stored once per document."""

    def __init__(self, ids: list[str], docs: list[dict[str, Any]], doc_of: list[int], position: list[int],
                 pages: dict[str, Any] | None = None):
        self.ids, self.docs = list(ids), docs
        self.row = {cid: i for i, cid in enumerate(self.ids)}
        self.doc_of = np.asarray(doc_of, dtype=np.int32)
        self.position = np.asarray(position, dtype=np.int32)
        self.pages = pages or {}

    def __getitem__(self, cid: str) -> dict[str, Any]:
        i = self.row[cid]
        return self.docs[self.doc_of[i]] | {"position": int(self.position[i]), "pages": self.pages.get(cid, "")}

    def __contains__(self, cid: object) -> bool:
        return cid in self.row

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def source(self, cid: str) -> str:
        return self.docs[self.doc_of[self.row[cid]]]["source"]

    def mask(self, sources) -> np.ndarray:
        """A boolean per chunk, in `ids` order: is its document one of `sources`?"""
        allowed = np.fromiter((d["source"] in sources for d in self.docs), dtype=bool, count=len(self.docs))
        return allowed[self.doc_of] if len(self.doc_of) else np.zeros(0, dtype=bool)

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "docs": self.docs, "doc_of": self.doc_of.tolist(),
                "position": self.position.tolist(), "pages": self.pages}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ChunkTable":
        return cls(d["ids"], d["docs"], d["doc_of"], d["position"], d["pages"])


class ChunkTexts(Mapping):
    """chunk id -> text for the committed chunks, fetched from Chroma on first use and kept in a bounded cache."""

    def __init__(self, store: Store | None, table: ChunkTable, limit: int = TEXT_CACHE):
        self.store, self.table, self.limit = store, table, limit
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()  # questions are answered in several threads at once

    def prefetch(self, ids: list[str]) -> None:
        """One read for all the texts of `ids` not yet cached (a retriever's candidates)."""
        with self._lock:
            missing = [cid for cid in dict.fromkeys(ids) if cid in self.table and cid not in self._cache]
        if missing and self.store is not None:
            got = self.store.read_chunks(missing)
            self.put(dict(zip(got["ids"], got["documents"])))

    def put(self, texts: dict[str, str]) -> None:
        with self._lock:
            for cid, text in texts.items():
                if cid in self.table:
                    self._cache[cid] = text or ""
                    self._cache.move_to_end(cid)
            while len(self._cache) > self.limit:
                self._cache.popitem(last=False)

    def __getitem__(self, cid: str) -> str:
        if cid not in self.table:
            raise KeyError(cid)
        if cid not in self._cache:
            self.prefetch([cid])
        # Deleted from Chroma since this snapshot was taken (a removal being picked up): no text, not a crash.
        with self._lock:
            return self._cache.get(cid, "")

    def __contains__(self, cid: object) -> bool:
        return cid in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class Snapshot:
    texts: ChunkTexts
    metadatas: ChunkTable
    lexical: LexicalIndex
    sentences: SentenceTable  # the chunks' sentences: readers never open the store's sentence collection
    manifest_key: str = ""
    centroids: Centroids | None = None
    documents: dict[str, DocumentInfo] = field(default_factory=dict)
    records: dict[str, DocRecord] = field(default_factory=dict)  # the manifest this snapshot was read from
    sample: list[str] = field(default_factory=list)  # ids of the chunks in the centring sample
    folder: Path | None = None  # where it is saved (None: in memory only)

    @classmethod
    def load(cls, store: Store, min_language_chunks: int = 5, folder: Path | None = None,
             previous: "Snapshot | None" = None) -> "Snapshot":
        """The snapshot of the store's current manifest: from `folder` if saved there, else built and saved.

        Readers and writers all go through here, so a crash anywhere (chunks written, manifest not; manifest
        written, snapshot not) leaves nothing to repair by hand: the manifest decides, and a missing snapshot
        is built from the newest one saved (or `previous`) by whoever needs it first.
        """
        manifest = store.manifest()
        key = manifest_key(manifest)
        home = folder / _folder_name(key) if folder is not None else None
        if home is not None:
            saved = _load_saved(home, store, key, min_language_chunks)
            if saved is not None:
                return saved
            if previous is None:
                previous = _newest_saved(folder, store, min_language_chunks)
            log.info("deriving the index snapshot of %d documents from %s (saved in %s for the next start)",
                     len(manifest), f"the one of {len(previous.records)}" if previous is not None else "the store",
                     home.parent)
        snap = _build(store, manifest, key, min_language_chunks, previous)
        if home is not None and _save(snap, home):
            snap.folder = home
            with contextlib.suppress(OSError, ValueError):  # read from the saved files: the built copy is freed
                snap.sentences = SentenceTable.load(home / "sentences", snap.metadatas.row)
            _prune(folder, keep=home)
        return snap

    def node(self, chunk_id: str, embedding: np.ndarray | None, text: str | None = None) -> TextNode:
        """A LlamaIndex node of a committed chunk; metadata stays out of embeddings and prompts."""
        md = self.metadatas[chunk_id]  # a fresh dict per call
        node = TextNode(id_=chunk_id, text=self.texts[chunk_id] if text is None else text, metadata=md,
                        embedding=None if embedding is None else np.asarray(embedding).tolist())
        node.excluded_embed_metadata_keys = list(md)
        node.excluded_llm_metadata_keys = ["position"]
        return node


class Centroids:
    """A sample of chunk vectors per language, for language centring.

    Multilingual models score text in the question's own language higher whatever it says. The engine
    subtracts, per language, the question's *typical* similarity to that language's chunks: the median
    over a sample, which the few chunks that truly match barely move (a mean would be pulled up by them,
    and push a true same-language match down). A language with fewer than `min_chunks` chunks is
    measured on all chunks instead, so one uploaded file is not centred on itself.
    """

    def __init__(self, vectors: np.ndarray, languages: list[str], min_chunks: int = 5):
        vectors = np.asarray(vectors, dtype=np.float16)  # half the memory; a median needs no more precision
        self.all = vectors
        self.by_language = {lang: vectors[[i for i, x in enumerate(languages) if x == lang]]
                            for lang in dict.fromkeys(languages)}
        self.min_chunks = min_chunks

    def bias(self, q: np.ndarray) -> "Bias":
        return Bias(self, np.asarray(q, dtype=np.float32))


class Bias:
    """A question vector's typical similarity to the chunks of each language (computed on first use)."""

    def __init__(self, centroids: Centroids | None = None, q: np.ndarray | None = None,
                 fixed: dict[str, float] | None = None):
        self.c, self.q = centroids, q
        self.values: dict[str, float] = dict(fixed or {})

    @classmethod
    def constant(cls, per_language: dict[str, float] | None = None) -> "Bias":
        """Fixed values per language (tests; baselines use none at all)."""
        return cls(fixed=per_language or {})

    def __call__(self, language: str, source: str = "") -> float:
        if language not in self.values:
            if self.c is None:
                return 0.0
            vectors = self.c.by_language.get(language)
            if vectors is None or len(vectors) < self.c.min_chunks:
                vectors = self.c.all
            sims = vectors.astype(np.float32) @ self.q
            self.values[language] = float(np.median(sims)) if len(sims) else 0.0
        return self.values[language]


def documents_of(table: ChunkTable) -> dict[str, DocumentInfo]:
    lead: dict[str, tuple[int, str]] = {}
    for i, cid in enumerate(table.ids):
        src, pos = table.docs[table.doc_of[i]]["source"], int(table.position[i])
        if src not in lead or pos < lead[src][0]:
            lead[src] = (pos, cid)
    out = {}
    for src, (_, cid) in sorted(lead.items()):
        md = table[cid]
        out[src] = DocumentInfo(src, md["title"], md["language"], site_name(md["url"]), cid)
    return out


def _lexical_text(md: dict[str, Any], text: str) -> str:
    # The lexical index also sees the title and the site name, so "the RFI article" finds rfi.fr.
    return f"{md['title']} {_site(md['url'])}\n{text}"


def _site(url: str) -> str:
    host = urlparse(url).netloc if url else ""
    return host.removeprefix("www.")


def _public_meta(md: dict[str, Any] | None) -> dict[str, Any]:
    md = md or {}
    return {k: md.get(k, "") for k in PUBLIC_METADATA}


def _folder_name(key: str) -> str:
    return f"v{FORMAT}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _build(store: Store, manifest: dict[str, DocRecord], key: str, min_chunks: int,
           previous: "Snapshot | None") -> Snapshot:
    """Read (texts, metadata and vectors of) only the documents `previous` does not hold in the same version."""
    same = {}
    if previous is not None:
        same = {s: r for s, r in manifest.items() if (old := previous.records.get(s)) is not None
                and (old.file_hash, old.signature, old.chunk_ids) == (r.file_hash, r.signature, r.chunk_ids)
                and all(cid in previous.metadatas for cid in r.chunk_ids)}
    todo = [cid for s, r in manifest.items() if s not in same for cid in r.chunk_ids]
    metas: dict[str, dict[str, Any]] = {}
    texts: dict[str, str] = {}
    vectors: dict[str, np.ndarray] = {}
    kept = {cid for src in same for cid in manifest[src].chunk_ids}
    in_sample = Counter(previous.metadatas[cid]["language"] for cid in previous.sample if cid in kept) if previous else Counter()
    sentences: dict[str, ChunkSentences] = {}
    bar = _progress(len(todo))
    for i in range(0, len(todo), 1000):
        got = store.read_chunks(todo[i : i + 1000], with_embeddings=True)
        sentences.update(_read_sentences(store, got["ids"]))
        for cid, text, md, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            metas[cid] = _public_meta(md)
            texts[cid] = _lexical_text(metas[cid], text)
            lang = metas[cid]["language"]
            if in_sample[lang] < CENTRING_SAMPLE:  # top the centring sample up to CENTRING_SAMPLE per language
                vectors[cid] = np.asarray(emb, dtype=np.float16)
                in_sample[lang] += 1
        if bar is not None:
            bar.update(len(got["ids"]))
    if bar is not None:
        bar.close()
    ids: list[str] = []
    docs: list[dict[str, Any]] = []
    doc_of: list[int] = []
    position: list[int] = []
    pages: dict[str, Any] = {}
    for s, r in sorted(manifest.items()):
        present = [cid for cid in r.chunk_ids if cid in metas or s in same]  # a chunk missing from Chroma is skipped
        if not present:
            continue
        first = previous.metadatas[present[0]] if s in same else metas[present[0]]
        docs.append({k: first[k] for k in ("source", "title", "language", "url", "date")})
        for cid in present:
            md = previous.metadatas[cid] if s in same else metas[cid]
            ids.append(cid)
            doc_of.append(len(docs) - 1)
            position.append(int(md.get("position") or 0))
            if md.get("pages"):
                pages[cid] = md["pages"]
    table = ChunkTable(ids, docs, doc_of, position, pages)
    dim = next((c.vectors.shape[1] for c in sentences.values() if len(c.texts)), 0)
    if not dim and previous is not None:
        dim = previous.sentences.dim
    empty = ChunkSentences([], np.zeros((0, dim), np.int8), np.zeros(0, np.float32))
    chunk_sentences = [previous.sentences.chunk(cid) if table.source(cid) in same else sentences.get(cid, empty)
                       for cid in ids]
    sentence_table = SentenceTable.build(table.row, chunk_sentences, dim)
    lexical = LexicalIndex.build(ids, texts, reuse=previous.lexical if same else None)
    sample, sample_vectors = [], []
    if previous is not None and previous.centroids is not None:
        for cid, v in zip(previous.sample, previous.centroids.all):
            if cid in kept:
                sample.append(cid)
                sample_vectors.append(v)
    for cid, v in vectors.items():
        sample.append(cid)
        sample_vectors.append(v)
    dim = len(sample_vectors[0]) if sample_vectors else 0
    centroids = Centroids(np.asarray(sample_vectors, dtype=np.float16).reshape(len(sample), dim),
                          [table.docs[table.doc_of[table.row[c]]]["language"] for c in sample], min_chunks)
    snap = Snapshot(ChunkTexts(store, table), table, lexical, sentence_table, key, centroids, documents_of(table),
                    {}, sample)
    snap.records = {s: r for s, r in manifest.items() if s in snap.documents}
    return snap


def _read_sentences(store: Store, chunk_ids: list[str]) -> dict[str, ChunkSentences]:
    """chunk id -> its sentences from the store's sentence collection (the store of record)."""
    got = store.read_sentences(list(chunk_ids))
    grouped: dict[str, list[tuple[int, str, Any]]] = {}
    for text, md, emb in zip(got["documents"], got["metadatas"], got["embeddings"]):
        grouped.setdefault(md["chunk_id"], []).append((int(md.get("index") or 0), text or "", emb))
    out = {}
    for cid, rows in grouped.items():
        rows.sort(key=lambda r: r[0])
        out[cid] = ChunkSentences.of([t for _, t, _ in rows], [e for _, _, e in rows], len(rows[0][2]))
    return out


def _progress(total: int):
    if total <= PROGRESS_FROM:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="chunk", desc="reading the index (once; saved for the next start)",
                file=sys.stderr, mininterval=1.0)


def _save(snap: Snapshot, home: Path) -> bool:
    """Write into a temporary folder, then rename: a reader sees a whole snapshot or none. False if it could not."""
    if home.is_dir():
        return True
    tmp = None
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home.parent))
        snap.lexical.save(tmp / "lexical")
        np.save(tmp / "centring.npy", snap.centroids.all if snap.centroids is not None else np.zeros((0, 0)))
        snap.sentences.save(tmp / "sentences")
        (tmp / "snapshot.json").write_text(json.dumps({
            "manifest_key": snap.manifest_key, "chunks": snap.metadatas.to_json(), "sample": snap.sample,
            "records": {s: r.metadata() for s, r in snap.records.items()},
        }, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, home)
        return True
    except OSError as exc:  # a read-only or full disk: this reader goes on with the snapshot in memory
        log.warning("could not save the index snapshot in %s (%s); the next start reads the store again", home, exc)
        return home.is_dir()  # another process may have saved the same one first
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_saved(home: Path, store: Store, key: str | None, min_chunks: int) -> Snapshot | None:
    """The snapshot saved in `home`, or None when there is none (or it is unreadable: it is then rebuilt)."""
    try:
        meta = json.loads((home / "snapshot.json").read_text(encoding="utf-8"))
        if key is not None and meta["manifest_key"] != key:
            return None
        table = ChunkTable.from_json(meta["chunks"])
        lexical = LexicalIndex.load(home / "lexical")
        vectors = np.load(home / "centring.npy")
        sentences = SentenceTable.load(home / "sentences", table.row)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sample = meta["sample"]
    centroids = Centroids(vectors.reshape(len(sample), -1) if len(sample) else vectors,
                          [table[c]["language"] for c in sample], min_chunks)
    records = {s: DocRecord.from_record(s, md) for s, md in meta["records"].items()}
    snap = Snapshot(ChunkTexts(store, table), table, lexical, sentences, meta["manifest_key"], centroids,
                    documents_of(table), records, sample, home)
    return snap


def _newest_saved(folder: Path, store: Store, min_chunks: int) -> Snapshot | None:
    """The most recently saved snapshot of this collection, whatever its manifest: a base to build on."""
    if not folder.is_dir():
        return None
    saved = sorted((p for p in folder.glob(f"v{FORMAT}-*") if p.is_dir()), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    for home in saved:
        snap = _load_saved(home, store, None, min_chunks)
        if snap is not None:
            return snap
    return None


def _prune(folder: Path, keep: Path) -> None:
    """Keep the newest KEEP snapshots, and drop temporary folders a killed writer left over an hour ago."""
    for tmp in folder.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 3600:
                shutil.rmtree(tmp, ignore_errors=True)
    saved = sorted((p for p in folder.glob("v*-*") if p.is_dir() and p != keep), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    for old in saved[KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)
