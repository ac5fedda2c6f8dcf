"""BM25 over chunk texts (bm25s), with the script-aware terms of qa.text: built, updated, saved and memory-mapped.

The vocabulary (term -> id) and each chunk's term ids are kept with the BM25 matrix, so an update after an
ingestion tokenizes only the new chunks, and a reader opens the saved index without reading any text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from qa.text import lexical_terms

EMPTY = "\u0000"  # the one term of a chunk without any (bm25s needs every document to hold a term)


class LexicalIndex:
    """BM25 scores of chunks in `ids` order; `doc_terms[i]` is chunk i's term ids (a view into one array)."""

    def __init__(self, ids: list[str], terms: np.ndarray, offsets: np.ndarray, vocab: dict[str, int], bm25=None):
        import bm25s

        self.ids = list(ids)
        self.vocab = vocab
        self._flat, self._offsets = terms, offsets
        if bm25 is None:
            bm25 = bm25s.BM25()
            if self.ids:
                corpus = [self.doc_terms(i).tolist() for i in range(len(self.ids))]
                bm25.index((corpus, vocab), create_empty_token=False, show_progress=False)
        self._bm25 = bm25
        indptr = bm25.scores["indptr"] if self.ids else np.zeros(1, dtype=np.int64)
        self._df = np.diff(np.asarray(indptr, dtype=np.int64))  # chunks holding each term id

    @classmethod
    def build(cls, ids: list[str], texts: Mapping[str, str], reuse: "LexicalIndex | None" = None) -> "LexicalIndex":
        """Index chunks `ids`: those in `texts` are tokenized; the others keep their term ids from `reuse`.

        The vocabulary only grows (a term of a removed chunk keeps its id, held by no chunk), so the term ids
        kept from `reuse` stay valid.
        """
        vocab = dict(reuse.vocab) if reuse is not None else {}
        known = {cid: i for i, cid in enumerate(reuse.ids)} if reuse is not None else {}
        rows: list[np.ndarray] = []
        for cid in ids:
            if cid not in texts:
                if cid not in known:
                    raise KeyError(f"chunk {cid!r} has neither a text nor terms to reuse")
                rows.append(np.asarray(reuse.doc_terms(known[cid])))
                continue
            terms = lexical_terms(texts[cid]) or [EMPTY]
            rows.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), dtype=np.int32, count=len(terms)))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=offsets[1:])
        flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
        return cls(ids, flat, offsets, vocab)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "terms.npy", self._flat)
        np.save(folder / "offsets.npy", self._offsets)
        (folder / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")
        if self.ids:
            self._bm25.save(str(folder / "bm25"), show_progress=False)  # also writes the vocabulary
        else:
            (folder / "vocab.json").write_text(json.dumps(self.vocab), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        """The saved index, memory-mapped: opening costs the same whatever the corpus size."""
        import bm25s

        ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        terms = np.load(folder / "terms.npy", mmap_mode="r")
        offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        if not ids:
            return cls([], terms, offsets, json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
        bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
        return cls(ids, terms, offsets, bm25.vocab_dict, bm25)

    def __len__(self) -> int:
        return len(self.ids)

    def doc_terms(self, i: int) -> np.ndarray:
        return self._flat[self._offsets[i] : self._offsets[i + 1]]

    def _doc_freq(self, term: str) -> int:
        tid = self.vocab.get(term)
        return int(self._df[tid]) if tid is not None and tid < len(self._df) else 0

    def idf(self, term: str) -> float:
        """Inverse document frequency (BM25's form, floored at a small positive value)."""
        n, df = len(self.ids), self._doc_freq(term)
        return max(0.05, math.log(1 + (n - df + 0.5) / (df + 0.5)))

    def doc_share(self, word: str) -> float:
        """Share of chunks containing the word (the least frequent of its terms, for multi-term words)."""
        terms = lexical_terms(word)
        if not terms or not self.ids:
            return 0.0
        return min(self._doc_freq(t) for t in terms) / len(self.ids)

    def search(self, terms: list[str], k: int, mask: np.ndarray | None = None) -> list[tuple[str, float, float]]:
        """Top-k (chunk id, BM25 score, coverage) for the query's lexical terms, positive scores, best first.

        mask: a boolean per chunk (in `ids` order); only chunks where it is True can be returned (the
        others score 0 before the top k is taken, so a filter never empties the result by itself).

        coverage is the share of the query's IDF mass that the chunk contains: near 0 when only common
        words match (a cross-lingual question sharing just "Sora"), near 1 when its rare names all match.
        """
        # Words absent from the corpus can match nothing, so they do not dilute the coverage (measured: letting
        # them dilute it, so that a chunk sharing only "Sora" gets little weight, lost 0.03-0.05 hit@1 on the
        # Sora dev set, where English questions share only names with French text, and gained nothing on XQuAD).
        weights = {self.vocab[t]: self.idf(t) for t in set(terms) if self._doc_freq(t) > 0}
        if not weights or not self.ids:
            return []
        scores = self._bm25.get_scores_from_ids(list(weights))
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        total = sum(weights.values()) or 1.0
        wanted = np.fromiter(weights, dtype=np.int32)
        out = []
        for i in top:
            if scores[i] <= 0:
                continue
            held = wanted[np.isin(wanted, self.doc_terms(int(i)))]
            out.append((self.ids[i], float(scores[i]), sum(weights[int(t)] for t in held) / total))
        return out
