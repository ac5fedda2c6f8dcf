"""What readers may see: the committed chunks (per the manifest), their metadata, BM25 and language centroids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
from llama_index.core.schema import TextNode

from qa.lexical import LexicalIndex
from qa.store import Store

PUBLIC_METADATA = ("source", "title", "language", "url", "date", "position")


def manifest_key(manifest: dict) -> str:
    """Changes whenever a document is added, removed or re-ingested."""
    return "|".join(sorted(f"{s}:{r.file_hash}:{r.signature}" for s, r in manifest.items()))


@dataclass
class Snapshot:
    texts: dict[str, str]
    metadatas: dict[str, dict[str, Any]]
    lexical: LexicalIndex
    manifest_key: str = ""
    centroids: dict[str, np.ndarray] = field(default_factory=dict)  # language -> mean chunk embedding

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
        centroids = language_centroids(store, ids, metas, min_language_chunks)
        return cls(texts, metas, LexicalIndex(ids, lexical_texts), manifest_key(manifest), centroids)

    def node(self, chunk_id: str, embedding: np.ndarray | None) -> TextNode:
        """A LlamaIndex node of a committed chunk; metadata stays out of embeddings and prompts."""
        md = dict(self.metadatas[chunk_id])
        node = TextNode(id_=chunk_id, text=self.texts[chunk_id], metadata=md,
                        embedding=None if embedding is None else np.asarray(embedding).tolist())
        node.excluded_embed_metadata_keys = list(md)
        node.excluded_llm_metadata_keys = ["position"]
        return node


def language_centroids(store: Store, ids: list[str], metas: dict[str, dict], min_chunks: int = 5,
                       sample: int = 2000) -> dict[str, np.ndarray]:
    """Mean chunk vector per language, from a bounded sample so that opening a large store stays fast.

    A language with fewer than `min_chunks` chunks gets the mean of all chunks instead: with one English
    file of one chunk, the English "centroid" would be that chunk, and centring would push the only
    English answer down by its own similarity.
    """
    by_lang: dict[str, list[str]] = {}
    for cid in ids:
        group = by_lang.setdefault(metas[cid]["language"], [])
        if len(group) < sample:
            group.append(cid)
    vectors = {}
    for lang, group in by_lang.items():
        got = store.read_chunks(group, with_embeddings=True)
        if len(got["embeddings"]):
            vectors[lang] = np.asarray(got["embeddings"], dtype=np.float32)
    if not vectors:
        return {}
    overall = np.mean(np.concatenate(list(vectors.values())), axis=0)
    return {lang: v.mean(axis=0) if len(v) >= min_chunks else overall for lang, v in vectors.items()}


def _site(url: str) -> str:
    host = urlparse(url).netloc if url else ""
    return host.removeprefix("www.")


def _public_meta(md: dict[str, Any] | None) -> dict[str, Any]:
    md = md or {}
    return {k: md.get(k, "") for k in PUBLIC_METADATA}
