"""Answerers: the protocol every answer mode follows, and the offline (extractive) one.

An answerer gets the analysed `Query` and the retrieved nodes and yields text deltas, then the final
`Answer` (whose text replaces what was streamed), like `llm`'s `Model.execute` yields a reply's chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from llama_index.core.schema import NodeWithScore

from qa.query import Query
from qa.schema import Answer, Citation, Source
from qa.settings import AnsweringSettings
from qa.store import Store
from qa.support import TermSupport
from qa.text import count_tokens, lexical_terms

NOT_IN_CORPUS = {
    "en": "The corpus does not contain the answer to this question.",
    "fr": "Le corpus ne contient pas la réponse à cette question.",
    "ar": "لا تحتوي المقالات على إجابة عن هذا السؤال.",
    "zh": "语料库中没有这个问题的答案。",
    "es": "El corpus no contiene la respuesta a esta pregunta.",
    "de": "Das Korpus enthält keine Antwort auf diese Frage.",
}

SentenceSource = Callable[[list[NodeWithScore]], Iterable[tuple[str, str, np.ndarray]]]


_BRACKETED_NUMBER = re.compile(r"\[(\d+)\]")


def defuse_markers(quote: str) -> str:
    """A quote's own bracketed numbers ("the [21]st century", footnotes) must not read as citation markers."""
    return _BRACKETED_NUMBER.sub(lambda m: f"［{m.group(1)}］", quote)


def not_in_corpus(language: str) -> str:
    return NOT_IN_CORPUS.get(language, NOT_IN_CORPUS["en"])


def refusal(query: Query, sources: list[Source], mode: str = "extractive", notice: str = "") -> Answer:
    return Answer(not_in_corpus(query.language), refused=True, mode=mode, question=query.question,
                  language=query.language, sources=sources, notice=notice)


def node_to_source(n: NodeWithScore) -> Source:
    md = n.node.metadata
    scores = getattr(n, "scores", {})
    return Source(
        source=md.get("source", ""),
        title=md.get("title", ""),
        text=n.node.get_content(),
        score=float(n.score or 0.0),
        language=md.get("language", ""),
        chunk_id=n.node.node_id,
        url=md.get("url", ""),
        date=md.get("date", ""),
        dense_score=float(scores.get("dense", 0.0)),
        lexical_score=float(scores.get("lexical", 0.0)),
    )


class Answerer(Protocol):
    mode: str

    def stream(self, query: Query, nodes: list[NodeWithScore]) -> Iterator[str | Answer]:
        """Text deltas, then the final Answer."""


def stream_text(answer: Answer) -> Iterator[str | Answer]:
    """An answer known in full, streamed one cited sentence at a time."""
    for i, part in enumerate(re.split(r"(?<=\]) ", answer.text)):
        yield (" " if i else "") + part
    yield answer


@dataclass
class ScoredSentence:
    text: str
    chunk_rank: int
    score: float
    similarity: float
    embedding: np.ndarray
    rank_score: float = 0.0


_LEADING_JUNK = re.compile(r"^[\s?•·*\-–—>]+")
_CLOSERS = " \"'»”’)）」』"


def quotable(snippet: str, title: str = "") -> bool:
    """Whether a sentence can stand as an answer: not a heading, a title, a lead-in or a question."""
    if count_tokens(snippet) < 4 or snippet == title.strip():
        return False
    end = snippet.rstrip(_CLOSERS)[-1:]
    if end in ("?", "？", "؟", ":", "："):
        return False
    # A short line with no closing punctuation is a heading ("L'impact sur OpenAI").
    return end in ".!。！…" or count_tokens(snippet) >= 8


class ExtractiveAnswerer:
    """Quotes the one to three retrieved sentences that best answer the question.

    score = cosine(question, sentence) + lexical_weight * (share of the question's rare terms in the
    sentence) + rank_prior / (1 + chunk rank). Evidence below the floor refuses.
    """

    mode = "extractive"

    def __init__(self, store: Store | None, config: AnsweringSettings, *, idf: Callable[[str], float] | None = None,
                 support: TermSupport | None = None, sentence_source: SentenceSource | None = None):
        self.store = store
        self.config = config
        self.idf = idf or (lambda term: 1.0)
        self.support = support
        # Where sentence vectors come from: the store (precomputed at ingestion) unless told otherwise.
        self.sentence_source = sentence_source or self._stored_sentences

    def _stored_sentences(self, nodes: list[NodeWithScore]):
        """(text, chunk id, embedding) of the nodes' sentences, as stored at ingestion."""
        got = self.store.read_sentences([n.node.node_id for n in nodes])
        return [(t, md["chunk_id"], e) for t, md, e in zip(got["documents"], got["metadatas"], got["embeddings"])]

    def score_sentences(self, query: Query, nodes: list[NodeWithScore]) -> list[ScoredSentence]:
        rank_of: dict[str, int] = {}
        for r, n in enumerate(nodes):
            rank_of.setdefault(n.node.node_id, r)
        q = query.vector
        q_terms = {t: self.idf(t) for t in set(query.question_terms)}
        q_weight = sum(q_terms.values()) or 1.0
        out = []
        for text, chunk_id, emb in self.sentence_source(nodes):
            snippet = _LEADING_JUNK.sub("", text).strip()
            if not quotable(snippet, nodes[rank_of[chunk_id]].node.metadata.get("title", "")):
                continue
            emb = np.asarray(emb, dtype=np.float32)
            sim = float(emb @ q)
            terms = set(lexical_terms(snippet))
            overlap = sum(w for t, w in q_terms.items() if t in terms) / q_weight
            rank = rank_of[chunk_id]
            score = sim + self.config.lexical_weight * overlap + self.config.rank_prior / (1 + rank)
            # Ranking uses the language-centred similarity (a Chinese question must not prefer Chinese
            # sentences for being Chinese); the refusal floor uses the raw score, which is comparable across
            # questions.
            md = nodes[rank].node.metadata
            bias = query.bias(md.get("language", ""), md.get("source", ""))
            out.append(ScoredSentence(snippet, rank, score, sim, emb, score - bias))
        out.sort(key=lambda s: s.rank_score, reverse=True)
        return out

    @staticmethod
    def evidence(sentences: list[ScoredSentence]) -> float:
        """How strongly the corpus supports an answer: the calibrated quantity compared with the floor."""
        return max((s.score for s in sentences[:3]), default=0.0)

    def stream(self, query: Query, nodes: list[NodeWithScore]) -> Iterator[str | Answer]:
        yield from stream_text(self.answer(query, nodes))

    def answer(self, query: Query, nodes: list[NodeWithScore]) -> Answer:
        sources = [node_to_source(n) for n in nodes]
        if not nodes:
            return refusal(query, sources)
        sentences = self.score_sentences(query, nodes)
        if self.evidence(sentences) < self.config.relevance_floor:
            return refusal(query, sources)
        chosen = self.choose(sentences, sources)
        if self.support is not None:
            cited = dict.fromkeys(sources[s.chunk_rank].chunk_id for s in chosen)
            evidence = "\n".join(f"{src.title}\n{src.text}" for src in sources if src.chunk_id in cited)
            if not self.support.check(query.question, evidence, question_words=query.words).supported:
                return refusal(query, sources)
        # One number per quoted sentence, so every [n] points at exactly the text it stands for.
        citations: list[Citation] = []
        parts = []
        for number, s in enumerate(chosen, start=1):
            src = sources[s.chunk_rank]
            citations.append(Citation(number, src.source, src.title, s.text, round(s.score, 4), src.language,
                                      src.text, src.chunk_id, src.url))
            parts.append(f"{defuse_markers(s.text)} [{number}]")
        return Answer(" ".join(parts), citations, refused=False, mode="extractive", question=query.question,
                      language=query.language, sources=sources)

    def choose(self, sentences: list[ScoredSentence], sources: list[Source]) -> list[ScoredSentence]:
        chosen: list[ScoredSentence] = []
        best = sentences[0].rank_score
        for s in sentences:
            if len(chosen) == self.config.max_sentences or s.rank_score < best - self.config.margin:
                break
            # A translation of a sentence already chosen adds nothing for the reader.
            if any(float(s.embedding @ c.embedding) > self.config.duplicate_similarity or s.text == c.text
                   for c in chosen):
                continue
            # Further sentences come from the first one's document: another article's sentence is more
            # often a near-miss than a second source.
            if self.config.same_document and chosen and sources[s.chunk_rank].source != sources[chosen[0].chunk_rank].source:
                continue
            chosen.append(s)
        return chosen
