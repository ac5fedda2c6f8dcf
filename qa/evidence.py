"""How strongly the retrieved evidence answers a question: the features and the calibrated refusal model.

The offline answerer refuses when the probability that the question is answerable from the quoted
evidence falls below a threshold. The probability comes from a logistic model over features the
engine computes anyway (sentence similarities per embedding model, the question's key terms found in
the cited passage, whether the cited sentence offers the kind of answer asked for, how the retrievers
agree, how far the best document stands out). It is fitted by `benchmarks/fit_refusal.py` on the dev
sets, which have real negatives, and stored with its data and operating point in
`qa/data/refusal.json`; the threshold is chosen there for at most 5 % false refusals on the dev sets.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "data" / "refusal.json"
log = logging.getLogger(__name__)

FEATURES = (
    "top_sim",  # best sentence similarity (the models' mix)
    "evidence",  # best score of the three top-ranked sentences (similarity + rare-word overlap + rank prior)
    "first_sim",  # similarity of each model's best sentence, one per model ("first" and "last" part)
    "last_sim",
    "model_agreement",  # 1/(1+rank) of each model's best sentence in the other model's ranking, summed
    "doc_gap",  # best sentence of the top document minus the best of any other document (centred scores)
    "top_dense",  # cosine of the first passage
    "top_sentence",  # best sentence-vector hit of the first passage
    "fused_margin",  # (fused score of the first passage - the second's) / the first's
    "lexical_coverage",  # best share of the question's rare words in one passage
    "lexical_agrees",  # the best BM25 passage is in the first passage's document
    "terms_found",  # share of the question's key terms found in the cited passage (literally or translated)
    "terms_mean",  # mean best word similarity of the key terms in the cited passage
    "terms_min",
    "terms_literal",  # share of key terms found literally
    "number_missing",  # a number that is part of a name ("Sora 2") is not in the cited passage
    "log_key_terms",
    "slot_filled",  # the first quoted sentence offers the kind of answer asked for (who: a name, ...)
    "slot_unfilled",  # it certainly does not (how much: no number at all)
    "slot_in_quote",  # some quoted sentence offers it
    "quote_terms_found",  # share of the key terms found in the quoted sentences themselves, not the whole passage
    "quote_terms_mean",  # mean best word similarity of the key terms in the quoted sentences
    "slot_with_terms",  # slot_filled x quote_terms_found: the kind of answer asked for, next to what it is about
    "sim_margin",  # best sentence similarity minus the second best: a real answer stands out from its neighbours
    "sim_peak",  # best minus the mean of the ten best (how peaked the evidence is, whatever its scale)
    "first_peak",  # the same for the first model alone
    "choice_share",  # softmax share of the best sentence under the fitted sentence choice (qa.choice): one clear answer
)


@dataclass
class RefusalModel:
    """A logistic model: P(answerable) = sigmoid(weights . features + intercept)."""

    weights: dict[str, float]
    intercept: float
    threshold: float  # refuse below this probability
    meta: dict = field(default_factory=dict)
    embedding: str = ""  # the embedding model the features were computed with ("": any)

    def probability(self, features: dict[str, float]) -> float:
        z = self.intercept + sum(w * features.get(name, 0.0) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> str:
        return json.dumps({"weights": self.weights, "intercept": self.intercept, "threshold": self.threshold,
                           "embedding": self.embedding, "meta": self.meta}, indent=1, ensure_ascii=False)

    @classmethod
    def from_file(cls, path: Path) -> "RefusalModel":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["weights"], float(data["intercept"]), float(data["threshold"]), data.get("meta", {}),
                   data.get("embedding", ""))


@cache
def default_model() -> RefusalModel | None:
    """The fitted model shipped with the package (None before the first fit: the hand-set floor applies)."""
    return RefusalModel.from_file(MODEL_PATH) if MODEL_PATH.is_file() else None


def fitted_for(fitted_with: str, embedding: str, what: str) -> bool:
    """Whether a fitted model (the refusal, the passage re-ranker, the sentence choice) may read this index's
    similarities: it was fitted on the same embedding's ("" = any). Logs why not."""
    if fitted_with and fitted_with != embedding:
        log.info("%s off: its model was fitted with %r, this index uses %r", what, fitted_with, embedding)
        return False
    return True


def refusal_model_for(embedding: str) -> RefusalModel | None:
    """The shipped model if it was fitted on this embedding's similarities (else None: the relevance floor and
    term support decide)."""
    model = default_model()
    return model if model is not None and fitted_for(model.embedding, embedding, "calibrated refusal") else None


def reciprocal_agreement(per_model: np.ndarray) -> float:
    """per_model: (sentences, models) similarities. How well the models agree on the best sentence."""
    if per_model.shape[0] < 2 or per_model.shape[1] < 2:
        return 2.0
    a, b = per_model[:, 0], per_model[:, -1]
    best_a, best_b = int(np.argmax(a)), int(np.argmax(b))
    return 1.0 / (1 + int((b > b[best_a]).sum())) + 1.0 / (1 + int((a > a[best_b]).sum()))
