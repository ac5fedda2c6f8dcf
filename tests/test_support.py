"""The term-support check with the real USE model: translations count, other words and versions do not."""

import pytest

from qa.embeddings import USEEmbedding
from qa.support import TermSupport, _name_numbers
from qa.text import words


@pytest.fixture(scope="module")
def support():
    return TermSupport(USEEmbedding())


CTO = "Mira Murati, directrice de la technologie d'OpenAI, a déclaré que Sora sortira cette année."
PRICE = "L'abonnement à Sora coûte 20 dollars par mois."


def test_translations_score_high_and_other_words_low(support):
    assert support.check("Who is the chief technology officer?", CTO).terms["technology"] > 0.8
    report = support.check("Who is the chief financial officer?", CTO)
    assert report.terms["financial"] < support.min_similarity, report


@pytest.mark.parametrize("question", ["How much is a Sora subscription?", "Combien coûte l'abonnement à Sora ?",
                                      "كم سعر الاشتراك في Sora؟", "Sora的订阅价格是多少？"])
def test_a_question_is_supported_only_by_evidence_that_names_what_it_asks(support, question):
    assert support.check(question, PRICE).supported, support.check(question, PRICE)
    assert not support.check(question, CTO).supported, support.check(question, CTO)


def test_a_version_number_must_occur_in_the_evidence(support):
    evidence = "OpenAI n'a pas encore fixé de date de sortie pour Sora."
    report = support.check("Quelle est la date de sortie de Sora 2 ?", evidence)
    assert report.missing_number == "2" and not report.supported
    assert support.check("Quelle est la date de sortie de Sora ?", evidence).supported
    assert _name_numbers("In 2024, who raised 234 million?") == []
    assert _name_numbers("Sora 2 是什么时候发布的？") == ["2"]


def test_topic_words_and_question_words_are_not_key_terms():
    shares = {"Sora": 0.9, "OpenAI": 0.8}
    support = TermSupport(USEEmbedding(), lambda w: shares.get(w, 0.0))
    assert support.key_terms("According to the article, what does OpenAI say about Sora's price?") == ["price"]


def test_chinese_text_is_segmented_into_words():
    assert {"首席", "技术"} <= set(words("OpenAI的首席技术官是谁？"))
    assert words("حذّر المدير") == ["حذر", "المدير"]


def test_a_word_stem_is_found_literally_in_mixed_arabic_and_latin_evidence(support):
    report = support.check("Which lantern parade?", "استمر موكب Lanterns Parade سبع ساعات.")
    assert report.terms == {"lantern": 1.0, "parade": 1.0}, report
