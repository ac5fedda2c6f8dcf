"""BM25 over chunk texts (bm25s), with the script-aware terms of qa.text."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from qa.text import lexical_terms


class LexicalIndex:
    """In-memory BM25 index; rebuilt from the store when the engine opens or refreshes."""

    def __init__(self, ids: list[str], texts: list[str]):
        import bm25s

        self.ids = list(ids)
        self._bm25 = bm25s.BM25()
        corpus = [lexical_terms(t) or ["\u0000"] for t in texts]
        if self.ids:
            self._bm25.index(corpus, show_progress=False)
        self._df = Counter(term for terms in corpus for term in set(terms))
        self._terms = [frozenset(terms) for terms in corpus]
        self._vocab: dict[str, int] = dict(getattr(self._bm25, "vocab_dict", {}) or {})

    def __len__(self) -> int:
        return len(self.ids)

    def idf(self, term: str) -> float:
        """Inverse document frequency (BM25's form, floored at a small positive value)."""
        n, df = len(self.ids), self._df.get(term, 0)
        return max(0.05, math.log(1 + (n - df + 0.5) / (df + 0.5)))

    def doc_share(self, word: str) -> float:
        """Share of chunks containing the word (the least frequent of its terms, for multi-term words)."""
        terms = lexical_terms(word)
        if not terms or not self.ids:
            return 0.0
        return min(self._df.get(t, 0) for t in terms) / len(self.ids)

    def search(self, terms: list[str], k: int, mask: np.ndarray | None = None) -> list[tuple[str, float, float]]:
        """Top-k (chunk id, BM25 score, coverage) for the query's lexical terms, positive scores, best first.

        mask: a boolean per chunk (in `ids` order); only chunks where it is True can be returned (the
        others score 0 before the top k is taken, so a filter never empties the result by itself).

        coverage is the share of the query's IDF mass that the chunk contains: near 0 when only common
        words match (a cross-lingual question sharing just "Sora"), near 1 when its rare names all match.
        """
        q_terms = set(terms)
        term_ids = [self._vocab[t] for t in q_terms if t in self._vocab]
        if not term_ids or not self.ids:
            return []
        scores = self._bm25.get_scores_from_ids(term_ids)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        # Words absent from the corpus can match nothing, so they do not dilute the coverage (measured: letting
        # them dilute it, so that a chunk sharing only "Sora" gets little weight, lost 0.03-0.05 hit@1 on the
        # Sora dev set, where English questions share only names with French text, and gained nothing on XQuAD).
        weights = {t: self.idf(t) for t in q_terms if t in self._vocab}
        total = sum(weights.values()) or 1.0
        return [
            (self.ids[i], float(scores[i]), sum(w for t, w in weights.items() if t in self._terms[i]) / total)
            for i in top
            if scores[i] > 0
        ]
