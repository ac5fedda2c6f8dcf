"""BM25 over script-aware terms: ranking, the rare-word coverage of a hit, idf and document share."""

from __future__ import annotations

import numpy as np
import pytest

from qa.lexical import LexicalIndex
from qa.text import lexical_terms

TEXTS = {
    "fr": "Ashton Kutcher teste le modèle Sora d'OpenAI à Hollywood.",
    "ar": "حذر الرئيس التنفيذي لشركة يوتيوب نيل موهان من مخاطر قانونية تتعلق بنموذج Sora.",
    "zh": "美国麦格理公司分析师弗雷德·哈夫迈耶评论了Sora。",
    "en": "Sora can generate videos up to one minute long.",
}


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(list(TEXTS), TEXTS)


def search(index, text, k=4):
    return index.search(lexical_terms(text), k)


def test_the_chunk_with_the_rare_name_ranks_first_with_full_coverage(index):
    hits = search(index, "Who is Ashton Kutcher?")
    assert hits[0][0] == "fr" and hits[0][1] > 0
    assert hits[0][2] == pytest.approx(1.0)


def test_a_hit_on_a_common_word_only_has_low_coverage(index):
    hits = dict((cid, cov) for cid, _, cov in search(index, "Sora Kutcher Hollywood minute"))
    assert hits["fr"] > 0.6 and hits["ar"] < 0.2


def test_arabic_article_and_letter_variants_are_folded(index):
    assert search(index, "الشركة يوتيوب")[0][0] == "ar"  # الشركة ~ لشركة, both reduce to شركة
    assert search(index, "مخاطر القانونية")[0][0] == "ar"


def test_chinese_matches_inside_longer_runs_through_bigrams(index):
    assert search(index, "麦格理")[0][0] == "zh"


def test_idf_and_document_share(index):
    assert index.idf("kutcher") > index.idf("sora")
    assert index.doc_share("Sora") == pytest.approx(1.0)
    assert index.doc_share("Kutcher") == pytest.approx(0.25)
    assert index.doc_share("absent") == 0.0


def test_no_match_and_empty_index():
    assert search(LexicalIndex.build(list(TEXTS), TEXTS), "xylophone") == []
    empty = LexicalIndex.build([], {})
    assert len(empty) == 0 and empty.search(["sora"], 3) == [] and empty.doc_share("sora") == 0.0


def _hits(index, text):
    return {cid: (round(s, 5), round(c, 5)) for cid, s, c in search(index, text, 4)}


def test_a_saved_index_is_memory_mapped_and_scores_the_same(tmp_path):
    built = LexicalIndex.build(list(TEXTS), TEXTS)
    built.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert isinstance(loaded.doc_terms(0), np.memmap) or isinstance(loaded.doc_terms(0).base, np.memmap)
    for q in ("Who is Ashton Kutcher?", "麦格理", "الشركة يوتيوب", "Sora minute"):
        assert _hits(loaded, q) == _hits(built, q)
    assert loaded.idf("kutcher") == built.idf("kutcher") and loaded.doc_share("Sora") == 1.0


def test_an_update_tokenizes_only_the_new_chunks_and_scores_like_a_full_build(monkeypatch):
    old = LexicalIndex.build(["fr", "ar", "zh"], {k: TEXTS[k] for k in ("fr", "ar", "zh")})
    seen = []
    monkeypatch.setattr("qa.lexical.lexical_terms", lambda text: seen.append(text) or lexical_terms(text))
    updated = LexicalIndex.build(["ar", "zh", "en"], {"en": TEXTS["en"]}, reuse=old)  # "fr" removed, "en" added
    assert seen == [TEXTS["en"]]
    full = LexicalIndex.build(["ar", "zh", "en"], {k: TEXTS[k] for k in ("ar", "zh", "en")})
    for q in ("Who is Ashton Kutcher?", "Sora minute videos", "麦格理", "يوتيوب"):
        assert _hits(updated, q) == _hits(full, q)
    assert updated.idf("sora") == pytest.approx(full.idf("sora")) and updated.doc_share("Kutcher") == 0.0
    with pytest.raises(KeyError, match="neither a text"):
        LexicalIndex.build(["new"], {}, reuse=old)
