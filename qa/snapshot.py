"""What readers may see: the committed chunks (per the manifest), their metadata, BM25 and language centroids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
from llama_index.core.schema import TextNode

from qa.lexical import LexicalIndex
from qa.references import site_name
from qa.store import DocRecord, Store

PUBLIC_METADATA = ("source", "title", "language", "url", "date", "position", "pages")


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


@dataclass
class Snapshot:
    texts: dict[str, str]
    metadatas: dict[str, dict[str, Any]]
    lexical: LexicalIndex
    manifest_key: str = ""
    centroids: Centroids | None = None
    documents: dict[str, DocumentInfo] = field(default_factory=dict)
    records: dict[str, DocRecord] = field(default_factory=dict)  # the manifest this snapshot was read from

    @classmethod
    def load(cls, store: Store, min_language_chunks: int = 5) -> "Snapshot":
        manifest = store.manifest()
        valid = [cid for r in manifest.values() for cid in r.chunk_ids]
        got = store.read_chunks(valid)
        texts = dict(zip(got["ids"], got["documents"]))
        metas = {i: _public_meta(m) for i, m in zip(got["ids"], got["metadatas"])}
        ids = list(texts)
        # The lexical index also sees the title and the site name, so "the RFI article" finds rfi.fr.
        lexical_texts = [f"{metas[i]['title']} {_site(metas[i]['url'])}\n{texts[i]}" for i in ids]
        centroids = centroids_of(store, ids, metas, min_language_chunks)
        documents = documents_of(metas)
        return cls(texts, metas, LexicalIndex(ids, lexical_texts), manifest_key(manifest), centroids, documents,
                   {s: r for s, r in manifest.items() if s in documents})

    def node(self, chunk_id: str, embedding: np.ndarray | None) -> TextNode:
        """A LlamaIndex node of a committed chunk; metadata stays out of embeddings and prompts."""
        md = dict(self.metadatas[chunk_id])
        node = TextNode(id_=chunk_id, text=self.texts[chunk_id], metadata=md,
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


def centroids_of(store: Store, ids: list[str], metas: dict[str, dict], min_chunks: int = 5,
                 sample: int = 2000) -> Centroids:
    """The centring sample: at most `sample` chunks per language, so that opening a large store stays fast."""
    by_lang: dict[str, list[str]] = {}
    for cid in ids:
        group = by_lang.setdefault(metas[cid]["language"], [])
        if len(group) < sample:
            group.append(cid)
    chosen = [cid for group in by_lang.values() for cid in group]
    got = store.read_chunks(chosen, with_embeddings=True) if chosen else {"ids": [], "embeddings": []}
    vectors = np.asarray(got["embeddings"], dtype=np.float32).reshape(len(got["ids"]), -1)
    return Centroids(vectors, [metas[i]["language"] for i in got["ids"]], min_chunks)


def documents_of(metas: dict[str, dict]) -> dict[str, DocumentInfo]:
    lead: dict[str, tuple[int, str]] = {}
    for cid, md in metas.items():
        pos = int(md.get("position") or 0)
        if md["source"] not in lead or pos < lead[md["source"]][0]:
            lead[md["source"]] = (pos, cid)
    return {src: DocumentInfo(src, metas[cid]["title"], metas[cid]["language"], site_name(metas[cid]["url"]), cid)
            for src, (_, cid) in sorted(lead.items())}


def _site(url: str) -> str:
    host = urlparse(url).netloc if url else ""
    return host.removeprefix("www.")


def _public_meta(md: dict[str, Any] | None) -> dict[str, Any]:
    md = md or {}
    return {k: md.get(k, "") for k in PUBLIC_METADATA}
