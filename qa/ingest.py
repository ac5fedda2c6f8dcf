"""Incremental, crash-safe ingestion of corpus_dir into the store."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qa.chunking import Chunk, chunk_text, make_splitter
from qa.embeddings import LocalEmbedding, make_embedding
from qa.errors import ConfigError, StoreError
from qa.loading import CorpusFile, SkippedFile, load_corpus
from qa.settings import Settings, load_settings
from qa.store import DocRecord, Store, describe_location

ProgressFn = Callable[[int, int, str], None]  # (chunks done, chunks total, current source)


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
    return f"{model.model_name}|{settings.chunk_size}|{settings.chunk_overlap}|v1"


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


def _sync(settings: Settings, store: Store, model: LocalEmbedding, progress: ProgressFn | None) -> IngestReport:
    report = IngestReport()
    loaded = load_corpus(Path(settings.corpus_dir), settings.max_file_bytes)
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
    gone = [s for s in manifest if s not in present]

    total = sum(len(chunks) for _, chunks, _ in todo)
    bar = None
    if progress is None and total:
        bar, progress = _tqdm_progress(total)
    done = 0
    try:
        for f, chunks, existed in todo:
            new_ids = [c.id for c in chunks]
            already = store.existing_chunk_ids(new_ids)
            fresh = [c for c in chunks if c.id not in already]
            _write(store, model, f, fresh)
            old = manifest.get(f.source)
            store.commit_document(
                DocRecord(f.source, f.file_hash, sig, f.title, f.language, f.url, f.date, new_ids)
            )
            stale = set(old.chunk_ids) - set(new_ids) if old else set()
            store.delete_chunks(stale)
            report.chunks_added += len(fresh)
            report.chunks_removed += len(stale)
            report.embedded_texts += len(fresh) + sum(len(c.sentences) for c in fresh)
            report.updated += existed
            report.added += not existed
            done += len(chunks)
            if progress:
                progress(done, total, f.source)
        for source in gone:
            record = manifest[source]
            store.forget_document(source)
            store.delete_chunks(record.chunk_ids)
            report.removed += 1
            report.chunks_removed += len(record.chunk_ids)
        _sweep_orphans(store)
    finally:
        if bar is not None:
            bar.close()
    final = store.manifest()
    report.documents_total = len(final)
    report.chunks_total = sum(len(r.chunk_ids) for r in final.values())
    return report


def _write(store: Store, model: LocalEmbedding, f: CorpusFile, chunks: list[Chunk]) -> None:
    if not chunks:
        return
    texts = [c.text for c in chunks]
    sentences = [(c, i, s) for c in chunks for i, s in enumerate(c.sentences)]
    vectors = model.encode(texts + [s for _, _, s in sentences], is_query=False)
    chunk_vecs, sent_vecs = vectors[: len(texts)], vectors[len(texts) :]
    metadatas = [
        {
            "source": f.source,
            "title": f.title,
            "language": f.language,
            "url": f.url,
            "date": f.date,
            "position": c.position,
            "chunk_id": c.id,
        }
        for c in chunks
    ]
    sentence_rows = (
        [f"{c.id}:{i}" for c, i, _ in sentences],
        [s for _, _, s in sentences],
        sent_vecs.tolist(),
        [{"chunk_id": c.id, "source": f.source, "index": i} for c, i, _ in sentences],
    )
    store.write_chunks([c.id for c in chunks], texts, chunk_vecs.tolist(), metadatas, sentence_rows)


def _sweep_orphans(store: Store) -> None:
    """Delete chunks no committed document lists (left by a run that was killed mid-way)."""
    manifest = store.manifest()
    listed = {cid for r in manifest.values() for cid in r.chunk_ids}
    if store.count() == len(listed):
        return
    orphans = [cid for cid in store.all_chunk_ids() if cid not in listed]
    store.delete_chunks(orphans)
