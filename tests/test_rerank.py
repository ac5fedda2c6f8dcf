"""The passage re-ranker: the shipped model, what it reads, and that it finds the answering passage."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import qa
from qa.evaluation import facts_found, load_testset
from qa.rerank import (
    PASSAGE_FEATURES,
    PassageModel,
    default_passage_model,
    make_reranker,
    passage_features,
    sentence_vectors,
)
from qa.retrievers import RankedNode

TESTSET = Path(__file__).resolve().parent / "eval" / "testset.jsonl"


def test_the_shipped_model_fits_the_default_embedding(embedding):
    model = default_passage_model()
    assert model is not None and set(model.weights) == set(PASSAGE_FEATURES)
    assert model.embedding == embedding.model_name
    cv = model.meta["cross_validated_passage_hit@1"]
    assert cv and all(r["reranked"] >= r["fused"] for r in cv.values()), cv


def test_no_model_for_another_embedding_or_depth_zero(engine):
    assert engine.pipeline.reranker is not None  # on by default
    support = engine.pipeline.offline.support
    assert make_reranker(engine.store, support, "text-embedding-3-small", 10) is None
    assert make_reranker(engine.store, support, engine.embed_model.model_name, 0) is None
    assert make_reranker(engine.store, None, engine.embed_model.model_name, 10) is None


def _head(engine, case, depth):
    p = engine.pipeline
    query = p.analyzer.analyse(case.question, [tuple(t) for t in case.history])
    return query, p.retriever.search(query)[:depth]


def test_features_are_finite_and_terms_found_literally(engine):
    p = engine.pipeline
    query = p.analyzer.analyse("Qui a divulgué Sora ?")
    nodes = p.retriever.search(query)[:5]
    vectors = sentence_vectors(engine.store, [n.node.node_id for n in nodes])
    assert set(vectors) == {n.node.node_id for n in nodes}  # every chunk has sentences
    rows = passage_features(query, nodes, engine.store, p.offline.support)
    assert len(rows) == len(nodes) and all(set(r) == set(PASSAGE_FEATURES) for r in rows)
    assert all(math.isfinite(v) for r in rows for v in r.values())
    assert rows[0]["fused"] == 1.0 and rows[0]["inv_rank"] == 1.0
    assert all(0.0 <= r["terms_found"] <= 1.0 for r in rows)
    leak = [r for r, n in zip(rows, nodes) if "divulg" in n.node.get_content()]
    assert leak and max(r["terms_found"] for r in leak) == 1.0  # "divulgué" is written there


def test_the_answering_passage_comes_back_first_from_the_bottom(engine):
    """Each answerable dev question's fused top ten, turned upside down so that the passage holding the answer
    is last (its rank and fused score now say the opposite of the truth): the model's other features (the best
    sentence, the key terms) must bring it back to the top most of the time."""
    reranker = engine.pipeline.reranker
    restored = unmoved = total = 0
    for case in load_testset(TESTSET):
        if not (case.answerable and case.expected_facts):
            continue
        query, head = _head(engine, case, reranker.depth)
        holds = [any(facts_found(n.node.get_content(), case.expected_facts)) for n in head]
        if not any(holds) or all(holds):
            continue
        answer = next(n for n, h in zip(head, holds) if h)
        rest = [n for n in head if n is not answer]
        scores = [n.score for n in head]
        upside_down = [RankedNode(node=n.node, score=s, scores=n.scores) for n, s in zip([*rest, answer], scores)]
        out = reranker.postprocess_nodes(upside_down, query_bundle=query)
        assert sorted(n.node.node_id for n in out) == sorted(n.node.node_id for n in upside_down)
        total += 1
        restored += any(facts_found(out[0].node.get_content(), case.expected_facts))
        unmoved += any(facts_found(upside_down[0].node.get_content(), case.expected_facts))
    assert total >= 40
    # Measured 38 of 63 restored where the upside-down order has an answer first in 14 of them.
    assert restored / total >= 0.5 and restored >= 2 * unmoved, (restored, unmoved, total)


def test_only_the_first_depth_nodes_move(engine):
    reranker = engine.pipeline.reranker
    query, nodes = _head(engine, load_testset(TESTSET)[0], 30)
    assert len(nodes) > reranker.depth
    out = reranker.postprocess_nodes(nodes, query_bundle=query)
    assert [n.node.node_id for n in out[reranker.depth:]] == [n.node.node_id for n in nodes[reranker.depth:]]
    # A bundle that is not an analysed Query (a plain LlamaIndex call) leaves the order as it is.
    assert reranker.postprocess_nodes(nodes, query_str="x") == nodes


def test_rerank_depth_zero_keeps_the_fused_order(seeded):
    settings = seeded.replace(retrieval={"rerank_depth": 0})
    plain = qa.QAEngine(settings)
    assert plain.pipeline.reranker is None
    query = plain.analyse("Qui a divulgué Sora ?")
    fused = [n.node.node_id for n in plain.pipeline.retriever.search(query)[:5]]
    assert [s.chunk_id for s in plain.retrieve("Qui a divulgué Sora ?")][:1] == fused[:1]


def test_model_scores_follow_the_weights():
    model = PassageModel({"fused": 1.0, "terms_found": 2.0}, "x")
    rows = [{"fused": 1.0, "terms_found": 0.0}, {"fused": 0.5, "terms_found": 1.0}]
    assert list(model.scores(rows)) == pytest.approx([1.0, 2.5])


def test_an_llm_engine_keeps_the_fused_order(seeded, engine):
    """The re-ranker serves offline answers; an LLM's prompt gets the sources in fused order (README)."""
    settings = seeded.replace(mode="llm", llm_base_url="http://127.0.0.1:9/v1")  # never called here
    llm_engine = qa.QAEngine(settings, embed_model=engine.embed_model)
    assert llm_engine.llm is not None and llm_engine.pipeline.reranker is None
    question = "Qui a divulgué Sora ?"
    fused = [n.node.node_id for n in engine.pipeline.retriever.search(engine.analyse(question))[:5]]
    assert [s.chunk_id for s in llm_engine.retrieve(question)][:1] == fused[:1]
