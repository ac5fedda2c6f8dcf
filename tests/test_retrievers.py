"""The retrievers and the fusion on a real in-memory Chroma with hand-made vectors (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from qa.postprocessors import DiversityPostprocessor
from qa.query import Query
from qa.retrievers import DenseRetriever, FusionRetriever, LexicalRetriever, RankedNode, SentenceRetriever
from qa.snapshot import Bias, Snapshot

from memstore import memory_store, unit

CHUNKS = [
    {"id": "en1", "source": "en.txt", "language": "en", "text": "Ashton Kutcher tests Sora in Hollywood.",
     "vector": unit(1, 0.2, 0, 0)},
    {"id": "fr1", "source": "fr.txt", "language": "fr", "text": "Sora peut générer une minute de vidéo.",
     "vector": unit(0.8, 0.6, 0, 0),
     "sentences": [("Sora peut générer", unit(0, 1, 0, 0)), ("une minute de vidéo.", unit(0.9, 0.1, 0, 0))]},
    {"id": "fr2", "source": "fr.txt", "language": "fr", "text": "La sortie de Sora est retardée.",
     "vector": unit(0, 0, 1, 0)},
    {"id": "draft", "source": "draft.txt", "language": "en", "text": "An uncommitted version of Sora's story.",
     "vector": unit(1, 0, 0, 0)},
]


@pytest.fixture(scope="module")
def world():
    store = memory_store(CHUNKS, committed={"en1", "fr1", "fr2"})
    return store, Snapshot.load(store, min_language_chunks=1)


def query(vector, bias=None, text="Kutcher minute"):
    v = np.asarray(vector, dtype=np.float32)
    return Query(query_str=text, question=text, language="en", vector=v, ranking_vector=v, embedding=v.tolist(),
                 bias=Bias.constant(bias), ranking_bias=Bias.constant(bias))


def test_dense_ranks_committed_chunks_by_cosine(world):
    store, snap = world
    hits = DenseRetriever(store, snap, None, candidates=10).search(query(unit(1, 0, 0, 0)))
    assert [h.node.node_id for h in hits] == ["en1", "fr1", "fr2"]  # "draft" is not in the manifest
    assert hits[0].score == pytest.approx(float(np.dot(unit(1, 0, 0, 0), unit(1, 0.2, 0, 0))), abs=1e-4)
    assert hits[0].scores["dense"] == pytest.approx(hits[0].score) and hits[0].node.embedding is not None


def test_language_centring_subtracts_the_bias_of_each_language(world):
    store, snap = world
    retriever = DenseRetriever(store, snap, None, candidates=10, centering=1.0)
    hits = retriever.search(query(unit(1, 0, 0, 0), bias={"en": 0.5, "fr": 0.0}))
    assert [h.node.node_id for h in hits][:2] == ["fr1", "en1"]
    en = next(h for h in hits if h.node.node_id == "en1")
    assert en.score == pytest.approx(en.scores["dense"] - 0.5, abs=1e-5)


def test_sentence_retriever_finds_a_chunk_through_its_best_sentence(world):
    store, snap = world
    hits = SentenceRetriever(store, snap, None, candidates=10).search(query(unit(0, 1, 0, 0)))
    assert hits[0].node.node_id == "fr1" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(h.node.node_id != "draft" for h in hits)


def test_lexical_hit_weight_is_its_coverage_to_the_power(world):
    store, snap = world
    hits = LexicalRetriever(store, snap, None, candidates=10, coverage_power=2.0).search(query(unit(1, 0, 0, 0)))
    by_id = {h.node.node_id: h for h in hits}
    assert set(by_id) == {"en1", "fr1"}
    for h in hits:
        assert h.weight == pytest.approx(h.scores["coverage"] ** 2)


class _Fixed:
    """A retriever with a fixed ranking, to check the fusion arithmetic."""

    def __init__(self, snap, ids, weights=None):
        self.snap, self.ids, self.weights = snap, ids, weights or {}

    def search(self, q):
        return [RankedNode(node=self.snap.node(cid, None), score=1.0 - i / 10, weight=self.weights.get(cid, 1.0),
                           scores={f"r{id(self)}": 1.0}) for i, cid in enumerate(self.ids)]


def test_weighted_reciprocal_rank_fusion(world):
    store, snap = world
    a, b = _Fixed(snap, ["en1", "fr1"]), _Fixed(snap, ["fr1", "fr2"], weights={"fr2": 0.5})
    fused = FusionRetriever(store, snap, None, [(a, 1.0), (b, 0.5)], k=6, candidates=10).search(query(unit(1, 0, 0, 0)))
    scores = {n.node.node_id: n.score for n in fused}
    assert scores["en1"] == pytest.approx(1.0 / 7)
    assert scores["fr1"] == pytest.approx(1.0 / 8 + 0.5 / 7)
    assert scores["fr2"] == pytest.approx(0.5 * 0.5 / 8)
    assert [n.node.node_id for n in fused] == ["fr1", "en1", "fr2"]
    assert all(n.node.embedding is not None and "dense" in n.scores for n in fused)  # filled from the store


def test_a_retriever_with_weight_zero_is_left_out(world):
    store, snap = world
    fusion = FusionRetriever(store, snap, None, [(_Fixed(snap, ["en1"]), 1.0), (_Fixed(snap, ["fr2"]), 0.0)])
    assert [n.node.node_id for n in fusion.search(query(unit(1, 0, 0, 0)))] == ["en1"]


def _node(snap, cid, vector):
    return RankedNode(node=snap.node(cid, vector), score=1.0)


def test_diversity_defers_translations_and_caps_one_file(world):
    _, snap = world
    same = unit(1, 0, 0, 0)
    nodes = [_node(snap, "en1", same), _node(snap, "fr1", same), _node(snap, "fr2", unit(0, 0, 1, 0))]
    kept = DiversityPostprocessor(top_k=3, max_similarity=0.9).postprocess_nodes(nodes)
    assert [n.node.node_id for n in kept] == ["en1", "fr2", "fr1"]  # fr1 repeats en1 in another file: last
    capped = DiversityPostprocessor(top_k=2, max_per_source=1).postprocess_nodes(
        [_node(snap, "fr1", unit(0, 1, 0, 0)), _node(snap, "fr2", unit(0, 0, 1, 0)), _node(snap, "en1", same)])
    assert [n.node.node_id for n in capped] == ["fr1", "en1"]
