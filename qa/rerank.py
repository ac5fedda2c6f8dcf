"""Which of the first fused passages holds the answer: a fitted re-ranker over evidence the engine has.

Reciprocal-rank fusion finds the right article (document hit@1 0.93-0.94 on the XQuAD dev fold) but puts
the passage that holds the answer first only 77-81 % of the time, while it is among the first ten 97-100 %
of the time. The fusion sees ranks, not how well the passage's best sentence matches, nor whether the
question's key terms occur in it (literally or as a translation). This re-ranker scores each of the first
`depth` passages with a linear model over those features and orders them by it. The model is a conditional
logit (softmax over one question's passages, "which one holds the expected fact"), fitted by
`benchmarks/fit_rerank.py` on the dev sets and stored with its data in `qa/data/rerank.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from qa.evidence import fitted_for
from qa.query import Query
from qa.sentences import SentenceReader
from qa.support import TermSupport
from qa.timing import stage

MODEL_PATH = Path(__file__).resolve().parent / "data" / "rerank.json"

PASSAGE_FEATURES = (
    "inv_rank",  # 1 / (1 + fused rank)
    "fused",  # fused score / the first passage's
    "dense_centred",  # cosine with the ranking vector minus the question's typical similarity to that language
    "sentence_centred",  # best similarity of one of its sentences (the models' even mix), centred the same way
    "terms_found",  # share of the question's key terms found in it, literally or translated (qa.support)
    "terms_mean",  # mean best word similarity of those terms
)
# Only centred similarities: raw ones (the per-model ones too) gave the same cross-validated hit@1 on XQuAD
# and put the Chinese Sora article first for Chinese questions about the French ones (Sora dev 0.87 vs 0.91).


@dataclass
class PassageModel:
    """score = weights . features; only the order within one question matters (no intercept)."""

    weights: dict[str, float]
    embedding: str  # the embedding model the features were computed with
    meta: dict = field(default_factory=dict)
    features: tuple[str, ...] = PASSAGE_FEATURES  # the feature names, in order (qa.choice uses its own)

    def scores(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        w = np.array([self.weights.get(f, 0.0) for f in self.features])
        return np.array([[r.get(f, 0.0) for f in self.features] for r in rows]).reshape(len(rows), -1) @ w

    def to_json(self) -> str:
        return json.dumps({"weights": self.weights, "embedding": self.embedding, "meta": self.meta},
                          indent=1, ensure_ascii=False)

    @classmethod
    def from_file(cls, path: Path, features: tuple[str, ...] = PASSAGE_FEATURES) -> "PassageModel":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls({k: float(v) for k, v in data["weights"].items()}, data["embedding"], data.get("meta", {}),
                   features)


@cache
def default_passage_model() -> PassageModel | None:
    """The fitted model shipped with the package (None before the first fit: the fused order stands)."""
    return PassageModel.from_file(MODEL_PATH) if MODEL_PATH.is_file() else None


def sentence_vectors(store: SentenceReader, chunk_ids: list[str]) -> dict[str, np.ndarray]:
    """chunk id -> the stored vectors of its sentences (one row each)."""
    got = store.read_sentences(chunk_ids)
    grouped: dict[str, list] = {}
    for md, emb in zip(got["metadatas"], got["embeddings"]):
        grouped.setdefault(md["chunk_id"], []).append(emb)
    return {cid: np.asarray(v, dtype=np.float32) for cid, v in grouped.items()}


def passage_features(query: Query, nodes: Sequence[NodeWithScore], store: SentenceReader,
                     support: TermSupport) -> list[dict[str, float]]:
    """PASSAGE_FEATURES of each node, in order (one read of their sentence vectors from the store)."""
    sentences = sentence_vectors(store, [n.node.node_id for n in nodes])
    q = np.asarray(query.vector, dtype=np.float32)
    top = float(nodes[0].score or 0.0) or 1.0
    rows = []
    for i, n in enumerate(nodes):
        md = n.node.metadata
        language, source = md.get("language", ""), md.get("source", "")
        vectors = sentences.get(n.node.node_id)
        best = float((vectors @ q).max()) if vectors is not None and len(vectors) else 0.0
        # The text searched for, as every retriever uses it: a follow-up with its context, or the LLM's
        # standalone rewrite of it.
        report = support.check(query.query_str, f"{md.get('title', '')}\n{n.node.get_content()}")
        terms = list(report.terms.values())
        rows.append({
            "inv_rank": 1.0 / (1 + i), "fused": float(n.score or 0.0) / top,
            "dense_centred": float(getattr(n, "scores", {}).get("dense", 0.0)) - query.ranking_bias(language, source),
            "sentence_centred": best - query.bias(language, source),
            "terms_found": report.coverage, "terms_mean": float(np.mean(terms)) if terms else 1.0,
        })
    return rows


class PassageReranker(BaseNodePostprocessor):
    """Orders the first `depth` fused nodes by the passage model; the rest keep their fused order after them.

    The query bundle must be the engine's analysed `Query` (its vectors and language biases are features).
    """

    depth: int = 10
    _store: SentenceReader = PrivateAttr()
    _support: TermSupport = PrivateAttr()
    _model: PassageModel = PrivateAttr()

    def __init__(self, store: SentenceReader, support: TermSupport, model: PassageModel, depth: int = 10):
        super().__init__(depth=depth)
        self._store, self._support, self._model = store, support, model

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not isinstance(query_bundle, Query) or query_bundle.vector is None or len(nodes) < 2:
            return nodes
        head, tail = nodes[: self.depth], nodes[self.depth:]
        with stage("rerank"):
            rows = passage_features(query_bundle, head, self._store, self._support)
            order = np.argsort(-self._model.scores(rows), kind="stable")
        return [head[i] for i in order] + tail


def make_reranker(store: SentenceReader, support: TermSupport | None, embedding: str, depth: int) -> PassageReranker | None:
    """The re-ranker for this engine, or None (fused order) when there is no model for its embedding."""
    model = default_passage_model()
    if model is None or support is None or depth < 2 or not fitted_for(model.embedding, embedding, "passage re-ranking"):
        return None
    return PassageReranker(store, support, model, depth)
