"""Hybrid retrieval: dense (Chroma) + lexical (BM25) fused by reciprocal rank, then de-duplicated.

Both are LlamaIndex components (a BaseRetriever and a BaseNodePostprocessor), so they plug into any
LlamaIndex query engine; QAEngine calls them directly to keep per-stage timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qa.embeddings import LocalEmbedding
from qa.lexical import LexicalIndex
from qa.store import Store

# Measured on tests/eval/testset.jsonl (see README, "How the defaults were chosen").
RRF_K = 6
COVERAGE_POWER = 2.0
MIN_LANGUAGE_CHUNKS = 5


@dataclass
class Snapshot:
    """What readers may see: the committed chunks, their texts and metadata, and the BM25 index over them."""

    texts: dict[str, str]
    metadatas: dict[str, dict[str, Any]]
    lexical: LexicalIndex
    manifest_key: str = ""
    centroids: dict[str, np.ndarray] = field(default_factory=dict)  # language -> mean chunk embedding

    @classmethod
    def load(cls, store: Store) -> "Snapshot":
        manifest = store.manifest()
        valid = [cid for r in manifest.values() for cid in r.chunk_ids]
        got = store.read_chunks(valid)
        texts = dict(zip(got["ids"], got["documents"]))
        metas = {i: _public_meta(m) for i, m in zip(got["ids"], got["metadatas"])}
        ids = list(texts)
        key = manifest_key(manifest)
        # The lexical index also sees the title and the site name, so "the RFI article" finds rfi.fr.
        lexical_texts = [f"{metas[i]['title']} {_site(metas[i]['url'])}\n{texts[i]}" for i in ids]
        return cls(texts, metas, LexicalIndex(ids, lexical_texts), key, _language_centroids(store, ids, metas))


def _language_centroids(store: Store, ids: list[str], metas: dict[str, dict], sample: int = 2000) -> dict[str, np.ndarray]:
    """Mean chunk vector per language, from a bounded sample so that opening a large store stays fast.

    A language with fewer than MIN_LANGUAGE_CHUNKS chunks gets the mean of all chunks instead: with one
    English file of one chunk, the English "centroid" would be that chunk, and centring would push the
    only English answer down by its own similarity.
    """
    by_lang: dict[str, list[str]] = {}
    for cid in ids:
        group = by_lang.setdefault(metas[cid]["language"], [])
        if len(group) < sample:
            group.append(cid)
    vectors = {}
    for lang, group in by_lang.items():
        got = store.read_chunks(group, with_embeddings=True)
        if got["embeddings"]:
            vectors[lang] = np.asarray(got["embeddings"], dtype=np.float32)
    if not vectors:
        return {}
    overall = np.mean(np.concatenate(list(vectors.values())), axis=0)
    return {lang: v.mean(axis=0) if len(v) >= MIN_LANGUAGE_CHUNKS else overall for lang, v in vectors.items()}


def manifest_key(manifest: dict) -> str:
    """Changes whenever a document is added, removed or re-ingested."""
    return "|".join(sorted(f"{s}:{r.file_hash}:{r.signature}" for s, r in manifest.items()))


def _site(url: str) -> str:
    from urllib.parse import urlparse

    host = urlparse(url).netloc if url else ""
    return host.removeprefix("www.")


def _public_meta(md: dict[str, Any] | None) -> dict[str, Any]:
    md = md or {}
    return {k: md.get(k, "") for k in ("source", "title", "language", "url", "date", "position")}


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - since
        return now


class HybridRetriever(BaseRetriever):
    """Dense and BM25 candidates fused by weighted reciprocal rank; nodes carry their embeddings."""

    def __init__(
        self,
        store: Store,
        snapshot: Snapshot,
        embed_model: LocalEmbedding,
        candidates: int = 30,
        dense_weight: float = 1.0,
        lexical_weight: float = 0.5,
        sentence_weight: float = 0.5,
        centering: float = 1.75,
        coverage_power: float = COVERAGE_POWER,
        e5_share: float = 0.5,
    ):
        super().__init__()
        self.e5_share = e5_share
        self.store = store
        self.snapshot = snapshot
        self.embed_model = embed_model
        self.candidates = candidates
        self.dense_weight = dense_weight
        self.lexical_weight = lexical_weight
        self.sentence_weight = sentence_weight
        self.centering = centering
        self.coverage_power = coverage_power

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.search(query_bundle.query_str, query_bundle.embedding)

    def search(self, query: str, query_embedding=None, timings: Timings | None = None) -> list[NodeWithScore]:
        timings = timings or Timings()
        t = time.perf_counter()
        if query_embedding is None:
            query_embedding = self.embed_model.encode([query], is_query=True)[0]
        # Ranking favours e5 (better at finding the document); the caller's vector stays the even mix.
        q = self.embed_model.mix(np.asarray(query_embedding, dtype=np.float32), self.e5_share)
        t = timings.add("embed_query", t)

        snap = self.snapshot
        dense: dict[str, float] = {}
        embeddings: dict[str, np.ndarray] = {}
        centered: dict[str, float] = {}
        if self.dense_weight > 0:
            # Over-fetch: chunks of an uncommitted version are dropped here, and the rest are re-ranked.
            got = self.store.query_chunks(q.tolist(), 3 * self.candidates)
            # Multilingual models score text in the question's own language higher whatever it says;
            # subtracting the question's similarity to each language's mean chunk removes that bias.
            bias = {lang: float(c @ q) for lang, c in snap.centroids.items()}
            for cid, dist, emb in zip(got["ids"][0], got["distances"][0], got["embeddings"][0]):
                if cid in snap.texts:
                    dense[cid] = 1.0 - float(dist)
                    centered[cid] = dense[cid] - self.centering * bias.get(snap.metadatas[cid]["language"], 0.0)
                    embeddings[cid] = np.asarray(emb, dtype=np.float32)
        t = timings.add("dense_search", t)

        # Sentence vectors find a chunk through its single best sentence (a precise fact in a long chunk).
        by_sentence: dict[str, float] = {}
        if self.sentence_weight > 0:
            got = self.store.query_sentences(q.tolist(), 3 * self.candidates)
            for md, dist in zip(got["metadatas"][0], got["distances"][0]):
                cid = md["chunk_id"]
                if cid in snap.texts and cid not in by_sentence:
                    by_sentence[cid] = 1.0 - float(dist)
        t = timings.add("dense_search", t)

        lexical: dict[str, float] = {}
        coverage: dict[str, float] = {}
        if self.lexical_weight > 0:
            for cid, score, cov in snap.lexical.search(query, self.candidates):
                lexical[cid], coverage[cid] = score, cov
        t = timings.add("lexical_search", t)

        fused: dict[str, float] = {}
        top_dense = dict(sorted(centered.items(), key=lambda kv: kv[1], reverse=True)[: self.candidates])
        rankings = ((self.dense_weight, top_dense, None), (self.sentence_weight, by_sentence, None),
                    (self.lexical_weight, lexical, coverage))
        for weight, ranking, scale in rankings:
            for rank, cid in enumerate(sorted(ranking, key=ranking.get, reverse=True)):
                # A lexical hit counts as much as the share of the question's rare words it contains.
                w = weight * (scale[cid] ** self.coverage_power if scale is not None else 1.0)
                fused[cid] = fused.get(cid, 0.0) + w / (RRF_K + rank + 1)
        order = sorted(fused, key=fused.get, reverse=True)[: self.candidates]
        missing = [cid for cid in order if cid not in embeddings]
        if missing:
            got = self.store.read_chunks(missing, with_embeddings=True)
            for cid, emb in zip(got["ids"], got["embeddings"]):
                embeddings[cid] = np.asarray(emb, dtype=np.float32)
        nodes = []
        for cid in order:
            emb = embeddings.get(cid)
            if emb is None:
                continue
            md = dict(snap.metadatas[cid])
            md["dense_score"] = float(dense.get(cid, float(emb @ q)))
            md["lexical_score"] = float(lexical.get(cid, 0.0))
            node = TextNode(id_=cid, text=snap.texts[cid], metadata=md, embedding=emb.tolist())
            node.excluded_embed_metadata_keys = list(md)
            node.excluded_llm_metadata_keys = ["dense_score", "lexical_score", "position"]
            nodes.append(NodeWithScore(node=node, score=fused[cid]))
        timings.add("fusion", t)
        return nodes


class DiversityPostprocessor(BaseNodePostprocessor):
    """Keeps the best top_k nodes while skipping near-duplicates (the same story in two languages).

    A node whose embedding is closer than `max_similarity` to an already kept node from another file,
    or that would be the (max_per_source + 1)-th from one file, goes after all others, so it is used only
    when nothing else is left.
    """

    top_k: int = 5
    max_similarity: float = 0.9
    max_per_source: int = 3
    _unused: Any = PrivateAttr(default=None)

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        kept: list[NodeWithScore] = []
        deferred: list[NodeWithScore] = []
        per_source: dict[str, int] = {}
        for n in nodes:
            src = n.node.metadata.get("source", "")
            emb = np.asarray(n.node.embedding or [], dtype=np.float32)
            duplicate = any(
                k.node.metadata.get("source") != src
                and emb.size
                and float(emb @ np.asarray(k.node.embedding, dtype=np.float32)) > self.max_similarity
                for k in kept
            )
            if duplicate or per_source.get(src, 0) >= self.max_per_source:
                deferred.append(n)
                continue
            kept.append(n)
            per_source[src] = per_source.get(src, 0) + 1
            if len(kept) == self.top_k:
                break
        return (kept + deferred)[: self.top_k]
