"""Questions about the corpus itself: which documents a question names, and whether it asks for an overview.

"According to the Chinese article ...", "l'article de RFI", "المقالة الصينية", "那篇中文文章" name a
document by its language or its site; retrieval then prefers that document. "Summarize the articles",
"De quoi parle ce corpus ?", "ما موضوع المقالات؟", "这些文章讲了什么？" ask about the corpus as a whole
and get an overview built from the documents' titles and lead sentences instead of a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Words for "article" in the languages of the UI; a language or site named next to one of these names a document.
_DOCUMENT_WORDS = re.compile(
    r"\b(articles?|piece|story|stories|report|text|document|source|post|artículo|artículos|texto|artikel"
    r"|bericht|статья|статье|статьи|текст)\b|(المقالة|المقال|مقالة|مقال|النص|التقرير|文章|报道|这篇|那篇|原文|新闻)",
    re.IGNORECASE)

LANGUAGE_NAMES: dict[str, tuple[str, ...]] = {
    "zh": ("chinese", "chinois", "chinoise", "chino", "chinesisch", "китайск", "الصينية", "الصيني", "中文", "汉语",
           "华语", "中国"),
    "fr": ("french", "français", "française", "francés", "französisch", "французск", "الفرنسية", "الفرنسي",
           "法语", "法文", "法国"),
    "ar": ("arabic", "arabe", "árabe", "arabisch", "арабск", "العربية", "العربي", "阿拉伯"),
    "en": ("english", "anglais", "anglaise", "inglés", "englisch", "английск", "الإنجليزية", "الإنكليزية", "英文", "英语"),
    "es": ("spanish", "espagnol", "espagnole", "español", "spanisch", "испанск", "الإسبانية", "西班牙"),
    "de": ("german", "allemand", "allemande", "alemán", "deutsch", "немецк", "الألمانية", "德语", "德文", "德国"),
    "ru": ("russian", "russe", "ruso", "russisch", "русск", "الروسية", "俄语", "俄文", "俄罗斯"),
}

_OVERVIEW = re.compile(
    r"\b(summari[sz]\w*|summary|overview|what (?:is|are) (?:this|the|these) (?:corpus|articles?|documents?|texts?)"
    r"(?: all)? about|what do (?:the|these) (?:articles|documents|texts) (?:say|cover|discuss)|main (?:topics|points)"
    r"|what does the \w+ (?:article|piece|text|report) say|résum\w*|de quoi (?:parle|parlent|traite|traitent)"
    r"|que disent (?:les|ces) (?:articles|textes|documents)|que dit l'article|sujets? (?:principal|principaux)"
    r"|resum\w*|de qué (?:trata|tratan)|zusammenfass\w*|worum geht|о чём|о чем|кратко)\b"
    r"|(لخص|لخّص|ملخص|تلخيص|عن ماذا تتحدث|ما موضوع|ما هي مواضيع|ماذا تقول المقال|总结|概括|摘要|概述|讲了什么|说了什么|讲的是什么"
    r"|主要内容|主要讲|关于什么|写了什么)",
    re.IGNORECASE)


def named_languages(question: str) -> set[str]:
    """Languages the question names next to a word for "article" ("the Chinese article" -> {"zh"})."""
    if not _DOCUMENT_WORDS.search(question):
        return set()
    low = question.lower()
    return {code for code, names in LANGUAGE_NAMES.items() if any(n in low for n in names)}


def named_sites(question: str, sites: Iterable[str]) -> set[str]:
    """Site names ("rfi" for rfi.fr) that occur in the question as whole words."""
    words = {w.lower() for w in re.findall(r"[^\W_]+", question)}
    return {s for s in sites if s and s.lower() in words}


def asks_for_overview(question: str) -> bool:
    """A request for a digest of the corpus, not a question about one fact ("Who summarized it?" is not one)."""
    from qa.answer_types import question_slot

    return bool(_OVERVIEW.search(question)) and question_slot(question) in ("thing", "manner")


def site_name(url: str) -> str:
    """The distinctive part of a document's host: 'rfi' for https://www.rfi.fr/cn/..., '' without a URL."""
    from urllib.parse import urlparse

    host = urlparse(url).netloc.lower().removeprefix("www.") if url else ""
    parts = [p for p in host.split(".") if p]
    return parts[-2] if len(parts) >= 2 else (parts[0] if parts else "")
