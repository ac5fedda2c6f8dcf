"""The retrievers: dense chunk vectors, sentence vectors and BM25, fused by weighted reciprocal rank.

Each is a LlamaIndex `BaseRetriever` whose `NodeWithScore.score` is its own score, so any of them plugs
into a LlamaIndex query engine alone. The fusion is our own rather than `QueryFusionRetriever`, which
fixes k=60 and ignores the weights in RRF mode; k=6 and unequal weights were measured better here.
A fused node is a `RankedNode`: its score is the fused one and `scores` keeps each retriever's score.
"""

from __future__ import annotations

import numpy as np
from llama_index.core.bridge.pydantic import Field
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from qa.query import Query, QueryAnalyzer
from qa.snapshot import Snapshot
from qa.store import Store
from qa.timing import stage


class RankedNode(NodeWithScore):
    """A retrieved node with the evidence behind its rank."""

    scores: dict[str, float] = Field(default_factory=dict)  # retriever name -> its score for this node
    weight: float = 1.0  # how much this hit counts in the fusion (a BM25 hit: its rare-word coverage ** power)


class _SnapshotRetriever(BaseRetriever):
    name = ""

    def __init__(self, store: Store, snapshot: Snapshot, analyzer: QueryAnalyzer, candidates: int):
        super().__init__()
        self.store, self.snapshot, self.analyzer, self.candidates = store, snapshot, analyzer, candidates

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return list(self.search(self.analyzer.from_bundle(query_bundle)))

    def search(self, query: Query) -> list[RankedNode]:  # pragma: no cover - abstract
        raise NotImplementedError


class DenseRetriever(_SnapshotRetriever):
    """Chunks by cosine similarity to the ranking vector, minus `centering` x the question's language bias
    (its median similarity to the chunks of the chunk's language: see qa.snapshot.Centroids)."""

    name = "dense"

    def __init__(self, store, snapshot, analyzer, candidates: int = 30, centering: float = 0.0):
        super().__init__(store, snapshot, analyzer, candidates)
        self.centering = centering

    def search(self, query: Query) -> list[RankedNode]:
        with stage("dense_search"):
            # Over-fetch: chunks of an uncommitted version are dropped here, and the rest are re-ranked.
            # A filter (query.allowed) is a Chroma `where`, applied before the top n: never an empty result
            # because other documents took the places.
            got = self.store.query_chunks(query.ranking_vector.tolist(), 3 * self.candidates, where=query.where)
            out = []
            for cid, dist, emb, text in zip(got["ids"][0], got["distances"][0], got["embeddings"][0],
                                            got["documents"][0]):
                if cid not in self.snapshot.metadatas or not query.permits(self.snapshot.metadatas.source(cid)):
                    continue
                raw = 1.0 - float(dist)
                md = self.snapshot.metadatas[cid]
                score = raw - self.centering * query.ranking_bias(md["language"], md["source"])
                out.append(RankedNode(node=self.snapshot.node(cid, emb, text), score=score, scores={"dense": raw}))
            out.sort(key=lambda n: n.score, reverse=True)
            return out[: self.candidates]


class SentenceRetriever(_SnapshotRetriever):
    """Chunks through their single best sentence vector (finds a precise fact in a long chunk)."""

    name = "sentence"

    def search(self, query: Query) -> list[RankedNode]:
        with stage("dense_search"):
            # The best 3 x candidates sentences, as an index of all sentences would give them, but among the
            # sentences of the 3 x candidates chunks nearest by chunk vector (all chunks of a small corpus): a
            # question reads a few hundred rows of the snapshot's table instead of Chroma loading an HNSW index
            # of every sentence in the corpus.
            got = self.store.query_chunk_ids(query.ranking_vector.tolist(), 3 * self.candidates, where=query.where)
            ids = [cid for cid in got if cid in self.snapshot.metadatas
                   and query.permits(self.snapshot.metadatas.source(cid))]
            best = self.snapshot.sentences.best(query.ranking_vector, ids, sentences=3 * self.candidates)
            self.snapshot.texts.prefetch(list(best))
            return [RankedNode(node=self.snapshot.node(cid, None), score=s, scores={"sentence": s})
                    for cid, s in sorted(best.items(), key=lambda kv: kv[1], reverse=True)]


class LexicalRetriever(_SnapshotRetriever):
    """BM25 over chunk texts; a hit's fusion weight is (share of the question's rare words it holds) ** power,
    so an English question sharing only "Sora" with a French text adds no noise."""

    name = "lexical"

    def __init__(self, store, snapshot, analyzer, candidates: int = 30, coverage_power: float = 2.0):
        super().__init__(store, snapshot, analyzer, candidates)
        self.coverage_power = coverage_power

    def search(self, query: Query) -> list[RankedNode]:
        with stage("lexical_search"):
            mask = None
            if query.allowed is not None:  # scores outside the filter are zeroed before the top k is taken
                mask = self.snapshot.metadatas.mask(query.allowed)  # the lexical index has the table's order
            hits = self.snapshot.lexical.search(query.search_terms, self.candidates, mask=mask)
            self.snapshot.texts.prefetch([cid for cid, _, _ in hits])
            return [RankedNode(node=self.snapshot.node(cid, None), score=score, weight=cov ** self.coverage_power,
                               scores={"lexical": score, "coverage": cov}) for cid, score, cov in hits]


class FusionRetriever(BaseRetriever):
    """Weighted reciprocal-rank fusion: score = sum of weight * hit weight / (k + rank)."""

    def __init__(self, store: Store, snapshot: Snapshot, analyzer: QueryAnalyzer,
                 retrievers: list[tuple[_SnapshotRetriever, float]], k: int = 6, candidates: int = 30,
                 reference_boost: float = 0.0):
        super().__init__()
        self.store, self.snapshot, self.analyzer = store, snapshot, analyzer
        self.retrievers = [(r, w) for r, w in retrievers if w > 0]
        self.k, self.candidates = k, candidates
        self.reference_boost = reference_boost  # a document the question names ("the RFI article") counts more

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return list(self.search(self.analyzer.from_bundle(query_bundle)))

    def search(self, query: Query) -> list[RankedNode]:
        fused: dict[str, float] = {}
        scores: dict[str, dict[str, float]] = {}
        nodes: dict[str, RankedNode] = {}
        for retriever, weight in self.retrievers:
            for rank, hit in enumerate(retriever.search(query)):
                cid = hit.node.node_id
                if not query.permits(hit.node.metadata.get("source", "")):
                    continue  # a retriever of another kind, plugged in, may not know the filter
                fused[cid] = fused.get(cid, 0.0) + weight * hit.weight / (self.k + rank + 1)
                scores.setdefault(cid, {}).update(hit.scores)
                if hit.node.embedding is not None or cid not in nodes:
                    nodes[cid] = hit
        with stage("fusion"):
            if query.prefer and self.reference_boost:
                for cid in fused:
                    if nodes[cid].node.metadata.get("source") in query.prefer:
                        fused[cid] *= 1.0 + self.reference_boost
            order = sorted(fused, key=fused.get, reverse=True)[: self.candidates]
            missing = [cid for cid in order if nodes[cid].node.embedding is None]
            if missing:
                # Their texts were fetched by the retriever that found them (snapshot.texts caches them).
                got = self.store.read_embeddings(missing)
                for cid, emb in zip(got["ids"], got["embeddings"]):
                    nodes[cid] = RankedNode(node=self.snapshot.node(cid, emb))
            out = []
            for cid in order:
                node = nodes[cid].node
                if node.embedding is None:
                    continue  # deleted since the search: skip rather than fail
                s = scores[cid]
                s.setdefault("dense", float(np.asarray(node.embedding, dtype=np.float32) @ query.ranking_vector))
                s.setdefault("lexical", 0.0)
                out.append(RankedNode(node=node, score=fused[cid], scores=s))
            return out
