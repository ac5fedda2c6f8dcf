"""The Chroma store: chunks (read through LlamaIndex's ChromaVectorStore), sentence vectors and a manifest.

Layout, for a collection named C:
- C            one record per chunk: text, embedding, metadata (source, title, language, ...)
- C__sent      one record per sentence of a chunk, with its embedding, for the extractive answerer
- C__docs      the manifest: one record per document, listing the chunk ids of its committed version

A chunk is visible to readers only if the manifest lists it. Ingestion writes a document's new chunks
first, then swaps its manifest record (a single-record upsert), then deletes chunks no longer listed,
so a crash at any point leaves every document either fully old or fully new.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import StoreError
from qa.settings import Settings

SCHEMA_VERSION = 1
_BATCH = 2000


@dataclass
class DocRecord:
    source: str
    file_hash: str
    signature: str  # chunking parameters and model the chunks were made with
    title: str
    language: str
    url: str
    date: str
    chunk_ids: list[str]
    ingested_at: str = ""  # ISO 8601 UTC time of the ingestion of this version ("" in stores made before it)

    def metadata(self) -> dict[str, Any]:
        return {
            "file_hash": self.file_hash,
            "signature": self.signature,
            "title": self.title,
            "language": self.language,
            "url": self.url,
            "date": self.date,
            "n_chunks": len(self.chunk_ids),
            "chunk_ids": json.dumps(self.chunk_ids),
            "ingested_at": self.ingested_at,
        }

    @classmethod
    def from_record(cls, source: str, md: dict[str, Any]) -> "DocRecord":
        return cls(
            source=source,
            file_hash=md.get("file_hash", ""),
            signature=md.get("signature", ""),
            title=md.get("title", ""),
            language=md.get("language", ""),
            url=md.get("url", ""),
            date=md.get("date", ""),
            chunk_ids=json.loads(md.get("chunk_ids", "[]")),
            ingested_at=str(md.get("ingested_at") or ""),
        )


def describe_location(settings: Settings) -> str:
    if settings.chroma_host:
        return f"Chroma server {settings.chroma_host}:{settings.chroma_port}"
    return f"{settings.persist_dir}"


def open_client(settings: Settings):
    """Embedded PersistentClient, or an HttpClient when chroma_host is set; telemetry off either way."""
    import chromadb
    import httpx
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        host = f"[{settings.chroma_host}]" if ":" in settings.chroma_host else settings.chroma_host
        try:
            # Chroma's own HTTP session has no timeout: a server that accepts but never answers would hang us.
            httpx.get(f"http://{host}:{settings.chroma_port}/api/v2/heartbeat", timeout=5.0).raise_for_status()
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
            session = getattr(getattr(client, "_server", None), "_session", None)
            if session is not None:
                session.timeout = httpx.Timeout(60.0, connect=5.0)
            client.heartbeat()
        except Exception as exc:  # noqa: BLE001 - chromadb raises ValueError/ConnectionError/httpx errors here
            raise StoreError(
                f"the Chroma server at {settings.chroma_host}:{settings.chroma_port} is not reachable "
                f"({type(exc).__name__}); start it with `chroma run --host {settings.chroma_host} "
                f"--port {settings.chroma_port}` or unset QA_CHROMA_HOST to use the embedded store"
            ) from None
        return client
    path = Path(settings.persist_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:  # noqa: BLE001 - any failure to open becomes one StoreError with the fix
        _forget_cached_client(path)  # Chroma caches it even when it failed to start; a repaired store must open
        raise StoreError(
            f"cannot open the Chroma store at {path} ({type(exc).__name__}: {str(exc)[:200]}); check that the folder "
            f"is writable, or move it away and run `qa ingest` to rebuild it"
        ) from None


def _forget_cached_client(path: Path) -> None:
    """Drop Chroma's per-process cache of the embedded client of `path`, so the next open reads the disk afresh."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(str(path), None)


def _wrap(op: str, settings: Settings):
    """Turn Chroma's varied exceptions into one StoreError that names the store."""

    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc is None or isinstance(exc, StoreError):
                return False
            raise StoreError(
                f"{op} failed on {describe_location(settings)} ({type(exc).__name__}: {str(exc)[:200]})"
            ) from exc

    return _Ctx()


class Store:
    """One named collection set in a Chroma client."""

    def __init__(self, settings: Settings, name: str | None = None, client=None):
        self.settings = settings
        self.name = name or settings.collection
        self.client = client or open_client(settings)

    def reopen(self) -> None:
        """Reconnect. An embedded client keeps its vector indexes in memory and does not see what another
        process (`qa ingest` in a terminal) wrote; call this before reloading after such an ingestion."""
        if not self.settings.chroma_host:
            _forget_cached_client(Path(self.settings.persist_dir))
        self.client = open_client(self.settings)

    # --- collections -----------------------------------------------------------------------
    def _get(self, suffix: str = "", create: bool = False, metadata: dict | None = None):
        name = self.name + suffix
        with _wrap("opening the collection", self.settings):
            if create:
                # embedding_function=None: Chroma must never run its default model (it would download one).
                return self.client.get_or_create_collection(
                    name, embedding_function=None, metadata=metadata, configuration={"hnsw": {"space": "cosine"}}
                )
            try:
                return self.client.get_collection(name, embedding_function=None)
            except Exception as exc:
                if "does not exist" in str(exc) or "not found" in str(exc).lower():
                    return None
                raise

    def exists(self) -> bool:
        return self._get() is not None

    def info(self) -> dict[str, Any]:
        col = self._get()
        return dict(col.metadata or {}) if col is not None else {}

    def create(self, model_name: str, dim: int) -> None:
        md = {
            "qa_schema": SCHEMA_VERSION,
            "qa_embedding": model_name,
            "qa_dim": dim,
            "qa_chunk_size": self.settings.chunk_size,
            "qa_chunk_overlap": self.settings.chunk_overlap,
        }
        col = self._get(create=True, metadata=md)
        self._get("__sent", create=True, metadata={"qa_schema": SCHEMA_VERSION})
        self._get("__docs", create=True, metadata={"qa_schema": SCHEMA_VERSION})
        current = dict(col.metadata or {})
        if current.get("qa_chunk_size") != md["qa_chunk_size"] or current.get("qa_chunk_overlap") != md["qa_chunk_overlap"]:
            with _wrap("updating collection metadata", self.settings):
                col.modify(metadata={**current, **{k: md[k] for k in ("qa_chunk_size", "qa_chunk_overlap")}})

    def check_model(self, model_name: str, dim: int) -> None:
        info = self.info()
        built = info.get("qa_embedding")
        if built is None:
            return
        if built != model_name or int(info.get("qa_dim", dim)) != dim:
            raise StoreError(
                f"the store at {describe_location(self.settings)} (collection {self.name!r}) was built with "
                f"embedding {built!r} ({info.get('qa_dim')} dims) but the settings ask for {model_name!r} ({dim} dims); "
                f"run `qa ingest --rebuild` to re-embed the corpus, or set QA_EMBEDDING back to the store's model"
            )

    def drop(self) -> None:
        for suffix in ("", "__sent", "__docs"):
            if self._get(suffix) is not None:
                with _wrap("deleting a collection", self.settings):
                    self.client.delete_collection(self.name + suffix)

    def rename_to(self, target: str) -> None:
        for suffix in ("", "__sent", "__docs"):
            col = self._get(suffix)
            with _wrap("renaming a collection", self.settings):
                col.modify(name=target + suffix)
        self.name = target

    @property
    def chunks(self):
        return self._get()

    def vector_store(self):
        """LlamaIndex's view of the chunk collection (used for dense retrieval and by the baselines)."""
        from llama_index.vector_stores.chroma import ChromaVectorStore

        return ChromaVectorStore(chroma_collection=self.chunks)

    # --- manifest --------------------------------------------------------------------------
    def manifest(self) -> dict[str, DocRecord]:
        col = self._get("__docs")
        if col is None:
            return {}
        out: dict[str, DocRecord] = {}
        with _wrap("reading the manifest", self.settings):
            # The ids, then their records in pages: one get of 20k records costs Chroma ~350 MB of peak memory,
            # this about 100 MB. By id, not by offset: a record another process deletes meanwhile is just absent.
            ids = col.get(include=[])["ids"]
            for i in range(0, len(ids), _BATCH):
                got = col.get(ids=ids[i : i + _BATCH], include=["metadatas"])
                out.update((k, DocRecord.from_record(k, md or {})) for k, md in zip(got["ids"], got["metadatas"]))
        return out

    def commit_document(self, record: DocRecord) -> None:
        with _wrap("writing the manifest", self.settings):
            self._get("__docs").upsert(ids=[record.source], metadatas=[record.metadata()], documents=[record.title], embeddings=[[1.0]])

    def forget_document(self, source: str) -> None:
        with _wrap("writing the manifest", self.settings):
            self._get("__docs").delete(ids=[source])

    # --- chunks and sentences --------------------------------------------------------------
    def existing_chunk_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        col = self._get()
        for i in range(0, len(ids), _BATCH):
            with _wrap("reading chunks", self.settings):
                found.update(col.get(ids=ids[i : i + _BATCH], include=[])["ids"])
        return found

    def write_chunks(self, ids, texts, embeddings, metadatas, sentence_rows) -> None:
        """Upsert chunks and their sentences (sentence_rows: ids, texts, embeddings, metadatas)."""
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
        from llama_index.core.vector_stores.utils import node_to_metadata_dict

        chunk_metas = []
        for cid, text, md in zip(ids, texts, metadatas):
            node = TextNode(id_=cid, text=text, metadata=md)
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=md["source"])
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
            chunk_metas.append({k: ("" if v is None else v) for k, v in meta.items()})
        s_ids, s_texts, s_embs, s_metas = sentence_rows
        col, sent = self._get(), self._get("__sent")
        # Sentences first: a chunk that exists always has its sentences, so a later run that finds the
        # chunk left by an interrupted one (existing_chunk_ids) may reuse it as it is.
        with _wrap("writing chunks", self.settings):
            for i in range(0, len(s_ids), _BATCH):
                sl = slice(i, i + _BATCH)
                sent.upsert(ids=s_ids[sl], documents=s_texts[sl], embeddings=s_embs[sl], metadatas=s_metas[sl])
            for i in range(0, len(ids), _BATCH):
                sl = slice(i, i + _BATCH)
                col.upsert(ids=ids[sl], documents=texts[sl], embeddings=embeddings[sl], metadatas=chunk_metas[sl])

    def delete_chunks(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        col, sent = self._get(), self._get("__sent")
        with _wrap("deleting chunks", self.settings):
            for i in range(0, len(ids), _BATCH):
                batch = ids[i : i + _BATCH]
                col.delete(ids=batch)
                sent.delete(where={"chunk_id": {"$in": batch}})

    def all_chunk_ids(self) -> list[str]:
        col = self._get()
        out: list[str] = []
        with _wrap("listing chunks", self.settings):
            for offset in range(0, col.count(), 10_000):
                out.extend(col.get(include=[], limit=10_000, offset=offset)["ids"])
        return out

    def count(self) -> int:
        col = self._get()
        with _wrap("counting chunks", self.settings):
            return col.count() if col is not None else 0

    def read_chunks(self, ids: list[str] | None = None, with_embeddings: bool = False) -> dict[str, Any]:
        """Texts and metadata (and optionally embeddings) of the given chunks, or of all of them."""
        col = self._get()
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        result: dict[str, list] = {"ids": [], "documents": [], "metadatas": [], "embeddings": []}
        with _wrap("reading chunks", self.settings):
            if ids is None:
                pages = (col.get(include=include, limit=5000, offset=o) for o in range(0, col.count(), 5000))
            else:
                pages = (col.get(ids=ids[i : i + _BATCH], include=include) for i in range(0, len(ids), _BATCH))
            for got in pages:
                result["ids"].extend(got["ids"])
                result["documents"].extend(got["documents"])
                result["metadatas"].extend(got["metadatas"])
                if with_embeddings:
                    result["embeddings"].extend(np.asarray(got["embeddings"]))
        return result

    def read_embeddings(self, ids: list[str]) -> dict[str, Any]:
        """Only the vectors of the given chunks (their texts are in the snapshot's cache already)."""
        col = self._get()
        result: dict[str, list] = {"ids": [], "embeddings": []}
        with _wrap("reading chunks", self.settings):
            for i in range(0, len(ids), _BATCH):
                got = col.get(ids=ids[i : i + _BATCH], include=["embeddings"])
                result["ids"].extend(got["ids"])
                result["embeddings"].extend(np.asarray(got["embeddings"]))
        return result

    def read_sentences(self, chunk_ids: list[str]) -> dict[str, Any]:
        with _wrap("reading sentences", self.settings):
            return self._get("__sent").get(
                where={"chunk_id": {"$in": chunk_ids}}, include=["documents", "metadatas", "embeddings"]
            )

    def query_chunks(self, embedding: list[float], n: int, where: dict | None = None) -> dict[str, Any]:
        """where: a Chroma metadata filter (e.g. {"source": {"$in": [...]}}), applied before the top n."""
        with _wrap("searching the store", self.settings):
            col = self._get()
            n = max(1, min(n, col.count()))
            return col.query(query_embeddings=[embedding], n_results=n, where=where,
                             include=["documents", "metadatas", "distances", "embeddings"])

    def query_chunk_ids(self, embedding: list[float], n: int, where: dict | None = None) -> list[str]:
        """The ids of the n chunks nearest to embedding, nearest first (nothing else is read)."""
        with _wrap("searching the store", self.settings):
            col = self._get()
            n = max(1, min(n, col.count()))
            return col.query(query_embeddings=[embedding], n_results=n, where=where, include=[])["ids"][0]

