"""The extractive answerer on a handful of in-memory nodes with hand-made sentence vectors (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, TextNode

from qa.answering import ExtractiveAnswerer, quotable, stream_text
from qa.query import Query
from qa.schema import Answer
from qa.settings import AnsweringSettings
from qa.snapshot import Bias
from qa.support import SupportReport


def unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def node(cid, source, text, language="fr", title="Titre"):
    return NodeWithScore(node=TextNode(id_=cid, text=text, metadata={"source": source, "title": title,
                                                                     "language": language}), score=1.0)


class Sentences:
    """Sentence rows as the store would return them: (text, chunk id, vector)."""

    def __init__(self, rows):
        self.rows = rows

    def __call__(self, nodes):
        ids = {n.node.node_id for n in nodes}
        return [r for r in self.rows if r[1] in ids]


Q = unit(1, 0, 0, 0)


def query(text="Qui teste Sora à Hollywood ?", vector=Q, bias=None):
    return Query(query_str=text, question=text, language="fr", vector=vector, ranking_vector=vector, bias=Bias.constant(bias))


def answerer(rows, support=None, **config):
    return ExtractiveAnswerer(None, AnsweringSettings(**config), sentence_source=Sentences(rows), support=support)


NODES = [node("a", "a.txt", "Ashton Kutcher teste Sora. OpenAI courtise Hollywood."),
         node("b", "b.txt", "Autre article sur Sora et son prix élevé.")]
# Each sentence is close to the question, and no two are close enough to pass for translations (< 0.85).
ROWS = [("Ashton Kutcher teste Sora depuis des semaines.", "a", unit(1, 0.2, 0, 0)),
        ("OpenAI courtise les studios de Hollywood.", "a", unit(1, 0, 0.9, 0)),
        ("Un autre article parle du prix de Sora.", "b", unit(1, 0, 0, 0.8))]


def test_quotes_the_best_sentences_each_with_one_marker():
    ans = answerer(ROWS).answer(query(), NODES)
    assert not ans.refused and ans.mode == "extractive"
    assert ans.text.startswith("Ashton Kutcher teste Sora depuis des semaines. [1]")
    assert [c.number for c in ans.citations] == list(range(1, len(ans.citations) + 1))
    for c in ans.citations:
        assert f"[{c.number}]" in ans.text and c.snippet in ans.text


def test_further_sentences_come_from_the_first_ones_article():
    ans = answerer(ROWS, margin=1.0).answer(query(), NODES)
    assert {c.source for c in ans.citations} == {"a.txt"}
    other = answerer(ROWS, margin=1.0, same_document=False).answer(query(), NODES)
    assert {c.source for c in other.citations} == {"a.txt", "b.txt"}


def test_margin_and_maximum_bound_the_quote():
    assert len(answerer(ROWS, margin=0.0).answer(query(), NODES).citations) == 1
    assert len(answerer(ROWS, margin=1.0, max_sentences=2, same_document=False).answer(query(), NODES).citations) == 2


def test_a_translation_of_a_chosen_sentence_is_skipped():
    rows = [ROWS[0], ("Ashton Kutcher tests Sora for weeks.", "a", unit(1, 0.2, 0.01, 0)), ROWS[1]]
    ans = answerer(rows, margin=1.0).answer(query(), NODES)
    assert "Ashton Kutcher tests" not in ans.text and len(ans.citations) == 2


def test_weak_evidence_is_refused_in_the_questions_language():
    ans = answerer(ROWS).answer(query(vector=unit(0, 1, 0, 0)), NODES)
    assert ans.refused and ans.citations == [] and ans.text.startswith("Le corpus ne contient pas")
    assert answerer(ROWS).answer(query(), []).refused


def test_an_unsupported_answer_is_refused():
    class NoSupport:
        def check(self, question, evidence, *, question_words=None):
            assert "Ashton Kutcher" in evidence  # the cited passage is what gets checked
            return SupportReport(supported=False)

    assert answerer(ROWS, support=NoSupport()).answer(query(), NODES).refused


def test_language_bias_ranks_but_the_raw_score_decides_refusal():
    rows = [("Phrase française assez longue pour être citée.", "a", unit(1, 0.2, 0, 0)),
            ("Une phrase arabe assez longue pour être citée.", "b", unit(1, 0, 0.25, 0))]
    nodes = [node("a", "a.txt", "x"), node("b", "b.txt", "y", language="ar")]
    plain = answerer(rows, rank_prior=0.0).answer(query(), nodes)
    centred = answerer(rows, rank_prior=0.0).answer(query(bias={"fr": 0.3, "ar": 0.0}), nodes)
    assert plain.citations[0].source == "a.txt" and centred.citations[0].source == "b.txt"


@pytest.mark.parametrize("snippet, ok", [
    ("L'impact sur OpenAI", False),  # a heading
    ("Quand Sora sortira-t-il ?", False),  # a question
    ("Voici ce qu'il faut savoir :", False),  # a lead-in
    ("Sora génère des vidéos.", True),
    ("Titre", False),
])
def test_quotable(snippet, ok):
    assert quotable(snippet, title="Titre") is ok


def test_stream_text_yields_sentences_then_the_answer():
    answer = Answer("Un. [1] Deux. [2]")
    events = list(stream_text(answer))
    assert events[-1] is answer and "".join(events[:-1]) == answer.text


@pytest.mark.parametrize("question, term", [
    ("What is Sora?", "Sora"), ("Who is Mira Murati?", "Mira Murati"), ("Qu'est-ce que Sora ?", "Sora"),
    ("Qui est Neal Mohan ?", "Neal Mohan"), ("ما هو سورا؟", "سورا"), ("Sora是什么？", "Sora"), ("谁是梅尔菲伯爵？", "梅尔菲伯爵"),
    ("Was ist Internet2?", "Internet2"),
    # they ask for more than an introduction
    ("What is the price of Sora?", ""), ("What is Sora able to do?", ""), ("Who leaked Sora?", ""),
    ("What is it?", ""), ("伊斯兰国的领导者是谁？", ""), ("ما هو سعر الاشتراك الشهري في سورا؟", ""),
])
def test_a_question_that_only_names_something_asks_for_its_introduction(question, term):
    from qa.answer_types import defined_term

    assert defined_term(question) == term


def test_what_is_x_quotes_the_first_mention_in_the_best_document_then_its_best_sentence():
    nodes = [node("a1", "a.txt", "Sora coûte cher à produire."), node("a0", "a.txt", "Le modèle vidéo Sora d’OpenAI."),
             node("b", "b.txt", "Sora ailleurs.")]
    for n, position in zip(nodes, (3, 0, 0)):
        n.node.metadata["position"] = position
    rows = [("Sora coûte cher à produire, selon OpenAI.", "a1", unit(1, 0.1, 0, 0)),
            ("Le modèle vidéo Sora d’OpenAI crée des vidéos.", "a0", unit(1, 0, 0.8, 0)),
            ("Ce texte parle de Sora ailleurs.", "b", unit(1, 0, 0, 0.9))]
    defined = answerer(rows, margin=1.0).answer(query("Qu'est-ce que Sora ?"), nodes)
    assert [c.snippet for c in defined.citations] == ["Le modèle vidéo Sora d’OpenAI crée des vidéos.",
                                                      "Sora coûte cher à produire, selon OpenAI."]
    asked = answerer(rows, margin=1.0).answer(query("Que coûte Sora ?"), nodes)  # not a definition: best first
    assert asked.citations[0].snippet == "Sora coûte cher à produire, selon OpenAI."
    unnamed = answerer(rows, margin=1.0).answer(query("Qu'est-ce que Kubernetes ?"), nodes)  # named nowhere
    assert unnamed.citations[0].snippet == "Sora coûte cher à produire, selon OpenAI."
