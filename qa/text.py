"""Script-aware text primitives: sentence splitting, token counting, lexical terms, language guess.

One place for everything that must behave the same for Latin, Arabic and CJK text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")

# A sentence ends at . ! ? … ؟ (followed by space or end), at 。！？ (no space needed in CJK), or at a newline.
# The whitespace after the end mark stays with the sentence, so sentences concatenate back to the text.
_SENTENCE_END = re.compile(
    r"""(?:
        [.!?…؟]+["'»”’)\]]*(?=\s|$)   # Latin and Arabic end marks before a space
      | [。！？]+[」』”’）)]*           # CJK end marks
      | \n                           # a line break ends a line-based sentence (headings, bullets)
    )\s*""",
    re.VERBOSE,
)
# Inside a sentence, clauses end at commas and semicolons of every script (used only for over-long sentences).
CLAUSE_REGEX = r"[^,;:،؛，；：、]+[,;:،؛，；：、]+\s*|[^,;:،؛，；：、]+$"

_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W_]+|[^\\w\\s]", re.UNICODE)
_WORD_RE = re.compile(f"[{_CJK}]+|[^\\W_]+", re.UNICODE)
_ARABIC_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_RE = re.compile("[\u0600-\u06ff]")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences; ''.join(result) == text, so every sentence is a verbatim substring."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > start:
            out.append(text[start : m.end()])
            start = m.end()
    if start < len(text):
        out.append(text[start:])
    return [s for s in out if s]


def tokens(text: str) -> list[str]:
    """Approximate model tokens: words, punctuation marks and single CJK characters."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    return len(tokens(text))


def _fold(word: str) -> str:
    word = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in word if not unicodedata.combining(c))


def _arabic(word: str) -> str:
    word = _ARABIC_DIACRITICS.sub("", word)
    word = re.sub("[أإآ]", "ا", word).replace("ة", "ه").replace("ى", "ي")
    for prefix in ("وال", "بال", "كال", "فال", "لل", "ال"):
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            return word[len(prefix) :]
    return word


def lexical_terms(text: str) -> list[str]:
    """Terms for BM25: folded Latin words, normalised Arabic words (article stripped), CJK bigrams.

    CJK has no spaces, so overlapping character bigrams (plus single characters for one-character runs)
    stand in for words; that matches 麦格理 inside 美国麦格理公司 without a segmenter.
    """
    terms: list[str] = []
    for run in _WORD_RE.findall(text):
        if _CJK_RE.match(run):
            if len(run) == 1:
                terms.append(run)
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
        elif _ARABIC_RE.search(run):
            terms.append(_arabic(run))
        else:
            w = _fold(run)
            # Elided French articles (l'IA, d'OpenAI) are split off by \w, so drop one-letter leftovers.
            if len(w) > 1 or w.isdigit():
                terms.append(w)
    return terms


_WORD_RUN_RE = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Words as a reader sees them: Latin and Arabic runs of letters and digits, Chinese words by jieba."""
    out: list[str] = []
    for run in _WORD_RUN_RE.findall(_ARABIC_DIACRITICS.sub("", text)):
        if _CJK_RE.match(run):
            out.extend(w for w in _segment_cjk(run) if w.strip())
        else:
            out.append(run)
    return out


def _segment_cjk(run: str) -> list[str]:
    return list(_segmented(run))


@functools.lru_cache(maxsize=16384)
def _segmented(run: str) -> tuple[str, ...]:
    # Cached: the same passages are split again for every check of a question against them.
    return tuple(_jieba().lcut(run))


@functools.cache
def _jieba():
    import logging

    import jieba  # loads its dictionary (about 1 s) on first use, only when Chinese text is met

    jieba.setLogLevel(logging.WARNING)
    return jieba


@functools.lru_cache(maxsize=65536)  # called for every word of every passage a question is checked against
def fold_word(word: str) -> str:
    """Comparable form of a word: lower case, no accents, Arabic letter variants and article unified."""
    if _ARABIC_RE.search(word):
        return _arabic(word)
    return _fold(word)


# Function words and the words questions use to point at the corpus ("according to the article"):
# they say nothing about the fact asked for.
FUNCTION_WORDS = set(
    """
    the a an and or of to in on at for from with by as is are was were be been being this that these those it
    its his her he she they them their there what who whom whose which when where why how much many does do did
    can could will would should has have had about into than then also other another per
    article articles corpus text piece report story mentioned mention mentions according say said says quoted
    quote named called name tell describe described give gives given
    le la les l de des du d et ou un une est sont a ont été être ce cet cette ces il elle ils elles en dans sur
    sous pour par avec que qu qui quoi quel quelle quels quelles où quand comment combien pourquoi se sa son
    ses leur leurs au aux y ne pas plus lors selon texte cite cité mentionné mentionne après dit indique nom
    ما ماذا من متى أين اين كيف كم لماذا هل في على إلى الى عن مع التي الذي الذين هو هي هم و أو ثم قد تم كان
    كانت يكون هذا هذه ذلك تلك وفقا حسب المقالة المقال مقالة النص ذكر يذكر اسم
    什么 哪 哪个 哪位 哪家 哪些 哪里 谁 多少 几 是 的 了 在 吗 呢 和 与 有 被 把 之 其 这 那 这个 那个 文章 根据 据
    提到 中 里 上 说 称 为 以 及 对 将 会 可以 怎么 如何 为什么 何时 什么时候 一个 他 她 它 他们 名字 叫
    el los las del y qué quién quiénes cuál cuáles cuándo dónde cómo cuánto cuántos por para con una es son fue
    der die das und im ist sind war wer was wann wo wie warum welche welcher ein eine einer von zu mit den dem
    что кто когда где как почему какой какая какие в на и с по из это был была были
    """.split()
)


_STOPWORDS = {
    "en": "the and of to in is that for it with as was on are be by this what who how why when which does did".split(),
    "fr": "le la les de des du et est une un que qui dans pour pas sur au aux avec ce cette sont été quel quelle".split(),
    "es": "el la los las de del y es una un que en por para con no se su al lo como más qué".split(),
    "de": "der die das und ist nicht ein eine zu den mit von sich auf für dem des im wie was wer".split(),
    "it": "il lo la gli le di e che è un una per non con del della sono come cosa chi".split(),
    "pt": "o a os as de do da e que em um uma para com não por se na no como quem qual".split(),
}


def detect_language(text: str) -> str:
    """Guess an ISO 639-1 code from the script, then from stopwords for Latin text ('und' if unsure)."""
    sample = text[:4000]
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return "und"
    n = len(letters)
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    kana = sum(1 for c in letters if "\u3040" <= c <= "\u30ff")
    hangul = sum(1 for c in letters if "\uac00" <= c <= "\ud7af")
    arabic = sum(1 for c in letters if "\u0600" <= c <= "\u06ff")
    cyrillic = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    hebrew = sum(1 for c in letters if "\u0590" <= c <= "\u05ff")
    if kana > 0.1 * n:
        return "ja"
    if hangul > 0.2 * n:
        return "ko"
    # CJK characters carry a word each, so a smaller share already means Chinese text with Latin names.
    if cjk > 0.15 * n:
        return "zh"
    if arabic > 0.3 * n:
        return "ar"
    if cyrillic > 0.3 * n:
        return "ru"
    if hebrew > 0.3 * n:
        return "he"
    words = Counter(w.lower() for w in re.findall(r"[^\W\d_]+", sample))
    scores = {lang: sum(words[w] for w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=scores.get)
    return best if scores[best] > 0 else "en"


def is_rtl(language: str) -> bool:
    return language in {"ar", "he", "fa", "ur"}
