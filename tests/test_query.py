"""Questions analysed once: cleaning, history bounds, offline follow-ups, vectors and language bias."""

from __future__ import annotations

import numpy as np
import pytest

import qa
from qa.embeddings import USEEmbedding
from qa.query import Query, QueryAnalyzer, clean_question, follow_up_text, normalize_history
from qa.snapshot import Centroids
from qa.timing import Trace, stage, tracing


@pytest.mark.parametrize("raw, clean", [
    ("  Who\u200b leaked\tSora?\u202c ", "Who leaked Sora?"),
    ("Qui a\x00 divulgué Sora ?", "Qui a divulgué Sora ?"),
    ("e\u0301té", "été"),  # NFC
])
def test_clean_question(raw, clean):
    assert clean_question(raw, 100) == clean


@pytest.mark.parametrize("raw, message", [("", "empty"), ("\u200b\u200b", "empty"), ("x" * 101, "limit is 100"),
                                          (42, "must be text")])
def test_bad_questions_raise_a_clear_error(raw, message):
    with pytest.raises(qa.ConfigError, match=message):
        clean_question(raw, 100)


def test_history_is_bounded_and_malformed_turns_dropped():
    hist = normalize_history([("q" * 50, "a" * 500), ["ok", None], [1, 2], "junk"], max_chars=10)
    assert hist == [("q" * 10, "a" * 40), ("ok", "")]


def test_a_short_question_borrows_the_previous_one_in_any_language():
    history = [("Qui a divulgué Sora ?", "Un groupe.")]
    assert follow_up_text("Et pourquoi ?", "fr", history) == "Qui a divulgué Sora ? Et pourquoi ?"
    # the models are multilingual: an English follow-up to a French question keeps the French topic words
    assert follow_up_text("Why did they do it?", "en", history) == "Qui a divulgué Sora ? Why did they do it?"
    long = "Et " + "pourquoi " * 30 + "?"
    assert follow_up_text(long, "fr", history) == long
    assert follow_up_text("Et pourquoi ?", "fr", []) == "Et pourquoi ?"


@pytest.fixture(scope="module")
def analyzer():
    texts = ["Un article en français sur la vidéo.", "Un autre texte sur le cinéma.", "Sora fait des vidéos.",
             "La météo de demain.", "Le prix du pain augmente."]
    centroids = Centroids(USEEmbedding().encode(texts), ["fr"] * len(texts))
    return QueryAnalyzer(USEEmbedding(), centroids, e5_share=0.85, max_chars=200)


def test_analyse_computes_everything_once(analyzer):
    trace = Trace()
    with tracing(trace):
        q = analyzer.analyse("Qui a divulgué Sora ?")
    assert isinstance(q, Query) and q.language == "fr" and q.query_str == q.question == "Qui a divulgué Sora ?"
    assert q.vector.shape == (512,) and np.isclose(np.linalg.norm(q.vector), 1.0, atol=1e-3)
    assert q.embedding == pytest.approx(q.ranking_vector.tolist())
    assert -1 <= q.bias("fr") <= 1 and q.bias("fr") == q.bias("fr", "any.txt")
    assert "divulgue" in q.search_terms and "Sora" in q.words
    assert set(trace.stages) == {"embed_query"}


def test_an_llm_condenser_rewrites_follow_ups(analyzer):
    seen = []

    def condense(question, history):
        seen.append((question, history))
        return "Pourquoi le groupe a-t-il divulgué Sora ?"

    q = analyzer.analyse("Et pourquoi ?", [("Qui a divulgué Sora ?", "Un groupe.")], condense=condense)
    assert q.query_str == "Pourquoi le groupe a-t-il divulgué Sora ?" and q.question == "Et pourquoi ?"
    assert seen == [("Et pourquoi ?", [("Qui a divulgué Sora ?", "Un groupe.")])]
    assert analyzer.analyse("Qui ?", None, condense=condense).query_str == "Qui ?"  # no history: no call


def test_stages_are_recorded_only_inside_a_trace():
    trace = Trace()
    with stage("outside"):
        pass
    with tracing(trace):
        with stage("a"):
            pass
        with stage("a"):
            pass
    assert set(trace.stages) == {"a"} and trace.stages["a"] >= 0
