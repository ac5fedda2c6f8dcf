"""Which retrieved sentence to quote first: a fitted choice over evidence the answerer computes anyway.

The hand-set sentence score (cosine + rare-word overlap + a prior on the passage's rank) found the answering
passage but quoted the sentence that holds the expected fact less often than the passage held it. This model
scores every quotable sentence of the retrieved passages with a linear function of features seen per
sentence (centred similarity, rare-word overlap, the question's key terms found in it literally or translated,
the passage's rank after re-ranking, whether it offers the kind of answer asked for, or its neighbour does),
fitted as a conditional logit ("which of this question's sentences, quoted with the neighbour the answerer
would add, holds an expected fact") by `benchmarks/fit_choice.py` on the dev sets and stored with its data
in `qa/data/choice.json`. Same form and file format as the passage re-ranker (`qa.rerank.PassageModel`).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.evidence import fitted_for
from qa.rerank import PassageModel
from qa.text import count_tokens

if TYPE_CHECKING:
    from qa.answering import ScoredSentence
    from qa.query import Query
    from qa.support import TermSupport

MODEL_PATH = Path(__file__).resolve().parent / "data" / "choice.json"

SENTENCE_FEATURES = (
    "centred",  # cosine with the question minus its typical similarity to that language (the models' mix)
    "overlap",  # idf-weighted share of the question's words found literally in the sentence
    "inv_rank",  # 1 / (1 + rank of its passage), after re-ranking
    "terms_found",  # share of the question's key terms found in the sentence, literally or translated
    "terms_mean",  # mean best word similarity of those terms
    "slot_filled",  # it offers the kind of answer asked for (who: a name, when: a date, ...)
    "slot_unfilled",  # it certainly does not
    "neighbour_fills",  # it does not, but the next or previous sentence does (the answerer quotes both)
    "lead",  # first sentence of its passage
    "log_tokens",
)


@cache
def default_choice_model() -> PassageModel | None:
    """The fitted model shipped with the package (None: the hand-set sentence score orders the quote)."""
    return PassageModel.from_file(MODEL_PATH, SENTENCE_FEATURES) if MODEL_PATH.is_file() else None


def choice_model_for(embedding: str) -> PassageModel | None:
    model = default_choice_model()
    return model if model is not None and fitted_for(model.embedding, embedding, "fitted sentence choice") else None


def sentence_features(query: Query, sentences: list[ScoredSentence], support: TermSupport | None,
                      neighbours: list[ScoredSentence | None]) -> list[dict[str, float]]:
    """SENTENCE_FEATURES of each sentence, in order. neighbours: per sentence, the neighbour the answerer would
    quote with it (qa.answering.neighbour; None if none)."""
    slot = query.slot
    rows = []
    for s, beside in zip(sentences, neighbours):
        fills = s.offer.fills(slot) if s.offer is not None and slot != "thing" else None
        row = {
            "centred": s.centred, "overlap": s.overlap, "inv_rank": 1.0 / (1 + s.chunk_rank),
            "slot_filled": float(fills is True), "slot_unfilled": float(fills is False),
            "neighbour_fills": float(beside is not None),
            "lead": float(s.index == 0), "log_tokens": math.log1p(count_tokens(s.text)),
            "terms_found": 1.0, "terms_mean": 1.0,
        }
        if support is not None:
            report = support.check(query.question, s.text, question_words=query.words)
            terms = list(report.terms.values())
            row.update(terms_found=report.coverage, terms_mean=float(np.mean(terms)) if terms else 1.0)
        rows.append(row)
    return rows
