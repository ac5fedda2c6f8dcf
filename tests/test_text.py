"""Script-aware primitives: sentence splitting, lexical terms, language detection."""

from qa.text import count_tokens, detect_language, lexical_terms, split_sentences


def test_sentences_concatenate_back_to_the_text():
    text = "Sora est prêt. Vraiment ? Oui!\nلم يتم الإصدار بعد؟ وقالت موراتي. 它可以生成视频。真的吗？好的！"
    parts = split_sentences(text)
    assert "".join(parts) == text
    stripped = [p.strip() for p in parts]
    assert stripped == [
        "Sora est prêt.", "Vraiment ?", "Oui!", "لم يتم الإصدار بعد؟", "وقالت موراتي.", "它可以生成视频。", "真的吗？", "好的！",
    ]


def test_decimal_points_and_names_do_not_split():
    assert len(split_sentences("Runway a levé 2.5 millions auprès de Google.")) == 1


def test_cjk_characters_count_as_tokens():
    assert count_tokens("生成视频") == 4
    assert count_tokens("Sora peut générer") == 3


def test_lexical_terms_fold_and_segment():
    assert "generateur" in lexical_terms("Générateur")  # accents folded
    assert "麦格" in lexical_terms("美国麦格理公司") and "格理" in lexical_terms("美国麦格理公司")  # CJK bigrams
    assert lexical_terms("والذكاء") == ["ذكاء"]  # Arabic conjunction + article stripped
    assert lexical_terms("l'IA d'OpenAI") == ["ia", "openai"]  # elided articles dropped


def test_detect_language():
    assert detect_language("Pourquoi la sortie de Sora a-t-elle été retardée ?") == "fr"
    assert detect_language("Why was the release of Sora delayed?") == "en"
    assert detect_language("لماذا تأخر إصدار Sora؟") == "ar"
    assert detect_language("Sora 可以生成多长的视频？") == "zh"
    assert detect_language("1234 !!!") == "und"
