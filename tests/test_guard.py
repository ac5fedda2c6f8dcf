"""The answer guard on real passages and the real default embedding: what a small model gets wrong is dropped."""

from __future__ import annotations

import pytest

from qa.guard import AnswerGuard, declines, plain_text
from qa.schema import Source

PASSAGES = [
    Source("a.txt", "Delay", "OpenAI has delayed the public release of Sora for safety reasons. "
           "The company says it is working with red teamers to test the model.", 1.0, "en"),
    Source("b.txt", "Hollywood", "L'acteur Ashton Kutcher teste déjà Sora. Il affirme que le modèle peut générer "
           "des vidéos de 20 secondes.", 0.9, "fr"),
]


@pytest.fixture(scope="module")
def guard(embedding):
    from qa.settings import LLMSettings

    return AnswerGuard(embedding, LLMSettings().guard_similarity)


def test_a_faithful_sentence_in_another_language_is_shown(guard):
    report = guard.check("OpenAI a retardé la sortie de Sora pour des raisons de sécurité [1].", PASSAGES, "Pourquoi ?")
    assert report.shown == "OpenAI a retardé la sortie de Sora pour des raisons de sécurité [1]."
    assert report.faithfulness == 1.0
    assert "delayed the public release" in report.checks[0].quotes[1]


@pytest.mark.parametrize("reply, reason", [
    ("Sora costs 200 dollars a month [1].", "number 200"),
    ("Sora was built by Google engineers [1].", "'google'"),
    ("Ashton Kutcher says Sora makes videos of 60 seconds [2].", "number 60"),
    ("Sora peut composer des symphonies et écrire des romans en quelques secondes [1].", "not what [1] says"),
    ("OpenAI's generator produces tremendous cinematic artistry for everyone [1].", "of its words"),
    ("Was Sora delayed for safety reasons [1]?", "a question"),
    ("The weather in Paris was sunny yesterday.", "no valid citation"),
    ("Sora was trained on a billion cat videos [9].", "no valid citation"),
])
def test_an_invented_sentence_is_dropped_with_its_reason(guard, reply, reason):
    report = guard.check(reply, PASSAGES, "What about Sora?")
    assert report.shown == "" and len(report.dropped) == 1
    assert reason in report.dropped[0].reason, report.dropped[0]


def test_only_the_supported_sentences_of_a_mixed_reply_remain(guard):
    reply = ("Ashton Kutcher is already testing Sora [2]. It was released in 2019 by Meta [1]. "
             "OpenAI delayed it for safety reasons [1].")
    report = guard.check(reply, PASSAGES, "Who tests Sora?")
    assert report.shown == "Ashton Kutcher is already testing Sora [2]. OpenAI delayed it for safety reasons [1]."
    assert report.faithfulness == pytest.approx(2 / 3)


def test_an_uncited_but_supported_sentence_gets_the_marker_of_its_source(guard):
    report = guard.check("The actor Ashton Kutcher is already testing Sora.", PASSAGES, "Who tests Sora?")
    assert report.shown == "The actor Ashton Kutcher is already testing Sora [2]."
    assert report.checks[0].reason == "cited by the guard"


def test_a_marker_to_no_source_is_replaced_by_the_source_that_supports_the_sentence(guard):
    report = guard.check("Sora was delayed for safety reasons [9].", PASSAGES, "Why?")
    assert report.shown == "Sora was delayed for safety reasons [1]."


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before(guard):
    report = guard.check("OpenAI delayed Sora for safety reasons. [1]", PASSAGES, "Why?")
    assert report.shown == "OpenAI delayed Sora for safety reasons [1]."


@pytest.mark.parametrize("reply", ["NOT_IN_SOURCES", "The sources do not mention the price.", "Je ne sais pas.",
                                   "لا توجد معلومات في المصادر.", "没有相关信息。"])
def test_a_declining_reply_is_a_refusal_in_any_language(guard, reply):
    assert declines(reply)
    assert guard.check(reply, PASSAGES, "How much does Sora cost?").declined


def test_an_answer_that_mentions_a_missing_fact_in_passing_is_not_a_refusal():
    assert not declines("OpenAI delayed Sora for safety reasons [1]. It has been tested by an actor, who says the "
                        "sources do not mention a price but that the model produces videos of twenty seconds [2].")


def test_generated_markup_is_plain_text():
    assert plain_text("<script>alert(1)</script>**Sora** is [a model](https://evil.example) <|im_end|>") == \
        "alert(1)Sora is a model"


def test_while_streaming_the_unfinished_sentence_waits(guard):
    report = guard.check("OpenAI delayed Sora for safety reasons [1]. Ashton Kutcher is", PASSAGES, "Why?",
                         final=False)
    assert report.shown == "OpenAI delayed Sora for safety reasons [1]."
    assert report.pending == "Ashton Kutcher is" and not report.declined
