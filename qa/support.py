"""Does the evidence mention what the question asks about? The check that refuses on-topic questions.

Sentence similarity cannot tell "What does a Sora subscription cost?" from a sentence about Sora's
production costs: both are about Sora and money, so the best sentence scores like a real answer. What
differs is a word the evidence never mentions ("subscription"). So most content words of the question
must be found in the evidence, literally or as a translation: multilingual USE places single words and their translations
close together (financial/financier/المالي/财务 about 0.85-0.95, unrelated words below 0.55), which
works as an offline cross-lingual dictionary. Numbers match only literally, and a number that is part of
a name ("Sora 2") must be in the evidence: Sora is not Sora 2.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qa.settings import AnsweringSettings
from qa.text import FUNCTION_WORDS, fold_word, words

_QUESTION_FOLDED = {fold_word(w) for w in FUNCTION_WORDS}
_HAS_DIGIT = re.compile(r"\d")


_NAME_NUMBER = re.compile(r"\b([A-Z][\w-]*)\s+(\d+(?:\.\d+)?)\b")


def _name_numbers(question: str) -> list[str]:
    """Numbers that complete a name, such as a version ("Sora 2", "GPT 4"), not "In 2024"."""
    return [n for name, n in _NAME_NUMBER.findall(question) if fold_word(name) not in _QUESTION_FOLDED]


@dataclass
class SupportReport:
    """How well the evidence covers the question's content words (1.0 = found literally)."""

    terms: dict[str, float] = field(default_factory=dict)
    coverage: float = 1.0
    missing_number: str = ""
    supported: bool = True


class TermSupport:
    """Checks a question's content words against evidence text, across languages.

    Terms that occur in more than `topic_share` of the chunks (the corpus topic: "Sora", "OpenAI") match
    everything and are left out. A term is supported when its best word similarity in the evidence
    reaches `min_similarity`; the evidence supports the question when at least `min_coverage` of the
    terms are supported and every number in the question occurs in it.
    """

    def __init__(self, word_model, doc_share: Callable[[str], float] | None = None,
                 config: AnsweringSettings | None = None, *, cache_size: int = 50_000):
        config = config or AnsweringSettings()
        self.word_model = word_model  # a LocalEmbedding; USE is fast on single words
        self.doc_share = doc_share or (lambda word: 0.0)
        self.min_similarity = config.support_similarity
        self.min_coverage = config.support_coverage
        self.topic_share = config.topic_share
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def key_terms(self, question: str, question_words: list[str] | None = None) -> list[str]:
        out = []
        for w in words(question) if question_words is None else question_words:
            f = fold_word(w)
            if f in _QUESTION_FOLDED or (len(f) < 2 and not f.isdigit()):
                continue
            if not _HAS_DIGIT.search(f) and self.doc_share(w) > self.topic_share:
                continue
            out.append(w)
        return list(dict.fromkeys(out))

    def _vectors(self, items: list[str]) -> np.ndarray:
        with self._lock:
            todo = [w for w in dict.fromkeys(items) if w not in self._cache]
            if todo:
                for w, v in zip(todo, self.word_model.encode(todo)):
                    self._cache[w] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return np.stack([self._cache[w] for w in items])

    def check(self, question: str, evidence: str, *, question_words: list[str] | None = None) -> SupportReport:
        """question_words: the question already split into words (a Query's `words`), to avoid doing it again."""
        terms = self.key_terms(question, question_words)
        if not terms:
            return SupportReport()
        ev_words = list(dict.fromkeys(words(evidence)))
        ev_folded = {fold_word(w) for w in ev_words}
        # Folded word by word: fold_word treats a whole text containing any Arabic as Arabic (no lower-casing).
        ev_text = " ".join(ev_folded)
        scores: dict[str, float] = {}
        for t in terms:
            f = fold_word(t)
            if f in ev_folded or (len(f) > 3 and f in ev_text):
                scores[t] = 1.0
            elif _HAS_DIGIT.search(f):
                scores[t] = 0.0
        rest = [t for t in terms if t not in scores]
        if rest and ev_words:
            best = (self._vectors(rest) @ self._vectors(ev_words).T).max(axis=1)
            scores.update({t: float(s) for t, s in zip(rest, best)})
        scores.update({t: 0.0 for t in rest if t not in scores})
        coverage = sum(s >= self.min_similarity for s in scores.values()) / len(scores)
        missing = next((n for n in _name_numbers(question) if scores.get(n, 1.0) < 1.0), "")
        return SupportReport(scores, coverage, missing, coverage >= self.min_coverage and not missing)
