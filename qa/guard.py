"""The answer guard: a generated answer shows only the sentences its cited passages support.

Small local models (the project tests against SmolLM2-135M on a llama.cpp server) invent prices,
dates and names, cite nothing, or cite a passage that says something else. So every sentence of a
generated answer is checked on its own:

- it carries at least one valid [n] marker; a sentence without one is given the source that supports it best
  (by the checks below), or dropped when none does;
- every number in it occurs in a cited passage or in the question ("$1", "2025" must be quoted, not made);
- every Latin-script name in it (capitalised word, or a Latin word inside Arabic or Chinese text) occurs in
  a cited passage or the question (names are written the same way across languages);
- its meaning is close to a sentence of a cited passage: the best similarity of the sentence to the cited
  passages' sentences reaches `min_similarity`, calibrated on parallel sentences (a translation or
  paraphrase of a passage sentence passes, a different statement about the same topic does not).

A reply that declines ("not in the sources", "je ne sais pas", "لا أعرف", "没有相关信息") counts as the
refusal, in any language. What remains is plain text: tags and Markdown never reach the page as markup.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from qa.llm import MARKER as _MARKER
from qa.schema import Source
from qa.text import detect_language, lexical_terms, split_sentences

_TAG = re.compile(r"</?[A-Za-z!][^>]{0,200}>|<\|[^|>]{0,40}\|>")
_MD = re.compile(r"!\[[^\]]*\]\([^)]*\)|\[([^\]]+)\]\((?:https?|mailto):[^)]*\)|(?<!\w)[*_`#]{1,3}(?=\S)|(?<=\S)[*_`]{1,3}(?!\w)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_LATIN_NAME = re.compile(r"\b[A-Z][\w'’-]*[a-z][\w'’-]*|\b[A-Z]{2,}\b")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_NON_LATIN = re.compile(r"[\u0600-\u06ff\u0400-\u04ff\u4e00-\u9fff\u3040-\u30ff]")

DECLINES = re.compile(
    r"NOT_IN_SOURCES|not (?:in|found in|mentioned in|stated in|contained in) the (?:sources|passages|articles|text)"
    r"|(?:sources|passages|articles) (?:do not|don't|does not) (?:contain|mention|say|provide|state)"
    r"|\bI (?:do not|don't) know\b|\bno information\b|\bcannot (?:find|answer)\b|\bnot enough information\b"
    r"|je ne sais pas|ne (?:contiennent|contient|mentionnent|mentionne) pas|pas d'information|aucune information"
    r"|no (?:lo )?sé\b|no (?:contienen|menciona)|ninguna información|weiß (?:es )?nicht|keine information"
    r"|لا أعرف|لا اعرف|لا تحتوي|لا يحتوي|لا توجد معلومات|لا تذكر|غير مذكور|ليس في المصادر"
    r"|不知道|没有提到|未提及|没有相关信息|没有提供|无法回答|无法找到|不包含|没有说明|未说明",
    re.IGNORECASE)

# A restatement in the passage's own language reuses most of its words; a sentence in that language made mostly
# of words the passage never uses is not one (small models write fluent-looking word salad in Arabic or Chinese,
# which an embedding still finds close). Fixed by that rule, not fitted: half of the sentence's terms.
MIN_SAME_LANGUAGE_COVERAGE = 0.5


def _coverage(body: str, cited: str) -> float:
    terms = set(lexical_terms(body))
    if len(terms) < 3:
        return 1.0
    return len(terms & set(lexical_terms(cited))) / len(terms)


# Numbers so common in prose that quoting them proves nothing either way (list items, "one of").
_TRIVIAL_NUMBERS = {"1", "2", "3"}


def plain_text(text: str) -> str:
    """Generated text as plain text: no tags, no Markdown emphasis, links or images, no control tokens."""
    text = _TAG.sub("", text)
    text = _MD.sub(lambda m: m.group(1) or "", text)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    return re.sub(r"[ \t]+", " ", text).strip()


def declines(text: str) -> bool:
    """Whether a reply (or its first sentence) is the model saying the sources do not answer."""
    first = split_sentences(text.strip())[:1]
    if first and DECLINES.search(first[0]):
        return True
    # "The sources do not say." after a line of preamble; a cited answer that mentions a gap is still an answer
    return bool(DECLINES.search(text[:400])) and not _MARKER.search(text)


_MARKER_AFTER_STOP = re.compile(r"([.!?。！？؟])(\s*)((?:\[\d+(?:\s*[,;]\s*\d+)*\]\s*)+)")


def attach_markers(text: str) -> str:
    """ "A. [1] B. [2]" -> "A [1]. B [2].": a marker after the full stop belongs to the sentence before it."""
    return _MARKER_AFTER_STOP.sub(lambda m: f" {m.group(3).strip()}{m.group(1)} ", text).strip()


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c))


def _numbers(text: str) -> set[str]:
    return {n.replace(",", ".").rstrip(".") for n in _NUMBER.findall(unicodedata.normalize("NFKC", text))}


# Capitalised only because they start a sentence: not names ("The actor ...", "Selon OpenAI ...").
_SENTENCE_STARTS = set("""
the a an it its this that these those they there then he she his her we our you in on at of for from with by as
according after before during since while when where what which who why how however also but and so yes no
is are was were be been do does did has have had can could will would should may might must not some many most
all each every both one two only even just still yet now today here such other another my your their first last
le la les l un une des il elle ils elles ce cet cette ces selon dans en au aux du de d pour par avec sur mais et
oui non c qui que quand où pourquoi comment depuis après avant lors
el los las una unos según con sin pero der die das ein eine es er sie nach mit im
""".split())


def _names(sentence: str) -> set[str]:
    if _NON_LATIN.search(sentence):
        words = _LATIN_WORD.findall(sentence)
    else:
        words = _LATIN_NAME.findall(sentence)
        first = re.match(r"\W*([\w'’-]+)", sentence)
        if first and words and words[0] == first.group(1) and _fold(re.split(r"['’]", words[0])[0]) in _SENTENCE_STARTS:
            words = words[1:]
    return {re.sub(r"['’]s$", "", _fold(w)).strip("'’-") for w in words if len(w) > 1}


def _valid_marker(m: re.Match, count: int) -> str:
    numbers = [x for x in re.split(r"\s*[,;]\s*", m.group(1)) if 1 <= int(x) <= count]
    return f"[{', '.join(numbers)}]" if numbers else ""


@dataclass
class SentenceCheck:
    text: str  # the sentence as shown, markers included
    markers: list[int]
    supported: bool
    reason: str = ""  # why it was dropped: "no citation", "number 20 not in [1]", "not what [2] says" ...
    similarity: float = 0.0
    quotes: dict[int, str] = field(default_factory=dict)  # marker -> the passage sentence closest to it


@dataclass
class GuardReport:
    shown: str  # the supported sentences, in order
    checks: list[SentenceCheck] = field(default_factory=list)
    declined: bool = False
    pending: str = ""  # a streaming reply's unfinished last sentence

    @property
    def dropped(self) -> list[SentenceCheck]:
        return [c for c in self.checks if not c.supported]

    @property
    def faithfulness(self) -> float:
        """Share of the generated sentences that were supported (1.0 for an empty reply)."""
        return sum(c.supported for c in self.checks) / len(self.checks) if self.checks else 1.0


class AnswerGuard:
    """Checks a generated answer sentence by sentence against the passages it cites."""

    def __init__(self, embed_model, min_similarity: float):
        self.embed_model = embed_model
        self.min_similarity = min_similarity
        self._vectors: dict[str, np.ndarray] = {}  # a streamed answer is checked again as it grows

    def _encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            if len(self._vectors) > 4000:
                self._vectors.clear()
            self._vectors.update(zip(missing, self.embed_model.encode(missing, is_query=False)))
        return np.stack([self._vectors[t] for t in texts])

    def check(self, raw: str, sources: list[Source], question: str, final: bool = True) -> GuardReport:
        """final=False checks only the sentences known to be complete (a streaming reply); `shown` then holds
        those, and `pending` what is left to check once more text arrives."""
        text = plain_text(raw)
        if not text or (final and declines(text)):
            return GuardReport("", declined=bool(text) or final)
        text = attach_markers(text)
        sentences = [s.strip() for s in split_sentences(text) if s.strip()]
        pending = ""
        if not final:  # the last sentence may still grow, or get its marker: check it with the next one
            pending = sentences.pop() if sentences else ""
        # A marker alone after a sentence ("... Hollywood. [1]") belongs to the sentence before it.
        merged: list[str] = []
        for s in sentences:
            if merged and _MARKER.fullmatch(s.rstrip(". ")):
                merged[-1] = f"{merged[-1]} {s}"
            else:
                merged.append(s)
        checks = [self._literal(s, sources, question) for s in merged]
        seen: set[str] = set()
        for c in checks:  # small models loop: a sentence said twice is shown once
            key = _fold(_MARKER.sub("", c.text)).strip(" .")
            if key in seen:
                c.supported, c.reason = False, "repeated"
            seen.add(key)
        for i, c in enumerate(checks):
            if c.reason == "no valid citation":
                checks[i] = self._attribute(c.text, sources, question) or c
        self._semantic([c for c in checks if c.supported], sources)
        shown = " ".join(c.text for c in checks if c.supported)
        return GuardReport(shown, checks, pending=pending)

    def _literal(self, sentence: str, sources: list[Source], question: str) -> SentenceCheck:
        markers = []
        for m in _MARKER.finditer(sentence):
            markers += [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        valid = [n for n in dict.fromkeys(markers) if 1 <= n <= len(sources)]
        body = _MARKER.sub("", sentence).strip()
        # markers to no source are removed from the sentence as shown ("[1][7]" -> "[1]")
        sentence = _MARKER.sub(lambda m: _valid_marker(m, len(sources)), sentence)
        sentence = re.sub(r" {2,}", " ", re.sub(r"\s+([.!?。！？؟,;:])", r"\1", sentence)).strip()
        check = SentenceCheck(sentence, valid, False)
        if not valid:
            check.reason = "no valid citation"
            return check
        if len(_fold(body)) < 2:
            check.reason = "empty"
            return check
        if re.search(r"[?？؟]\s*$", body):
            check.reason = "a question, not an answer"
            return check
        cited = " ".join(sources[n - 1].text for n in valid)
        known_numbers = _numbers(cited) | _numbers(question)
        missing = sorted(n for n in _numbers(body) - known_numbers if n not in _TRIVIAL_NUMBERS)
        if missing:
            check.reason = f"number {missing[0]} is not in {''.join(f'[{n}]' for n in valid)}"
            return check
        known = _fold(cited + " " + question)
        names = sorted(n for n in _names(body) if n not in known)
        if names:
            check.reason = f"'{names[0]}' is not in {''.join(f'[{n}]' for n in valid)}"
            return check
        languages = {sources[n - 1].language for n in valid}
        if len(languages) == 1 and detect_language(body) in languages:
            covered = _coverage(body, cited)
            if covered < MIN_SAME_LANGUAGE_COVERAGE:
                check.reason = f"in the language of {''.join(f'[{n}]' for n in valid)} but {covered:.0%} of its words"
                return check
        check.supported = True
        return check

    def _attribute(self, sentence: str, sources: list[Source], question: str) -> SentenceCheck | None:
        """A sentence the model left uncited gets the source that supports it best, if one does: small models
        often state a fact from a passage without the marker. The marker is then the guard's, not the model's."""
        body = re.sub(r"\s+([.!?。！？؟,;:])", r"\1", _MARKER.sub("", sentence)).strip()
        candidates = [c for n in range(1, len(sources) + 1)
                      if (c := self._literal(f"{body} [{n}]", sources, question)).supported]
        if not candidates:
            return None
        self._semantic(candidates, sources, drop=False)
        best = max(candidates, key=lambda c: c.similarity)
        if best.similarity < self.min_similarity:
            return None
        end = re.search(r"[.!?。！？؟]+$", body)
        best.text = f"{body[: end.start()]} [{best.markers[0]}]{end.group(0)}" if end else f"{body} [{best.markers[0]}]"
        best.reason = "cited by the guard"
        return best

    def _semantic(self, checks: list[SentenceCheck], sources: list[Source], drop: bool = True) -> None:
        """Drop sentences whose meaning is far from every sentence of the passages they cite."""
        if not checks:
            return
        bodies = [_MARKER.sub("", c.text).strip() for c in checks]
        units: list[tuple[int, str]] = []  # (source number, passage sentence)
        for n in sorted({n for c in checks for n in c.markers}):
            units += [(n, s.strip()) for s in split_sentences(sources[n - 1].text) if len(s.strip()) > 3]
        if not units:
            for c in checks:
                c.supported, c.reason = False, "the cited passage is empty"
            return
        vectors = self._encode(bodies + [u for _, u in units])
        sims = vectors[: len(bodies)] @ vectors[len(bodies):].T
        owner = np.array([n for n, _ in units])
        for i, c in enumerate(checks):
            mask = np.isin(owner, c.markers)
            c.similarity = float(sims[i][mask].max()) if mask.any() else 0.0
            for n in c.markers:
                own = np.flatnonzero(owner == n)
                if own.size:
                    c.quotes[n] = units[int(own[np.argmax(sims[i][own])])][1]
            if drop and c.similarity < self.min_similarity:
                c.supported = False
                c.reason = f"not what {''.join(f'[{n}]' for n in c.markers)} says (similarity {c.similarity:.2f})"
