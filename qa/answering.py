"""Answerers: the protocol every answer mode follows, and the offline (extractive) one.

An answerer gets the analysed `Query` and the retrieved nodes and yields text deltas, then the final
`Answer` (whose text replaces what was streamed), like `llm`'s `Model.execute` yields a reply's chunks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from llama_index.core.schema import NodeWithScore

from qa.answer_types import Offer, offers
from qa.choice import sentence_features
from qa.evidence import FEATURES, RefusalModel, reciprocal_agreement
from qa.query import Query
from qa.rerank import PassageModel
from qa.schema import Answer, Citation, Source
from qa.sentences import SentenceReader
from qa.settings import AnsweringSettings
from qa.support import SupportReport, TermSupport
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
        pages=md.get("pages", "") or "",
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
    parts: np.ndarray | None = None  # similarity per embedding model (one value for a single model)
    index: int = 0  # position in its chunk
    offer: Offer | None = None
    centred: float = 0.0  # similarity minus the question's typical similarity to the sentence's language
    overlap: float = 0.0  # idf-weighted share of the question's words in the sentence
    choice: float | None = None  # the fitted choice model's score (qa.choice), when there is one


@dataclass
class Assessment:
    """Everything the answerer decided on, for the answer and for fitting the refusal model."""

    sentences: list[ScoredSentence]
    chosen: list[ScoredSentence]
    support: SupportReport | None
    features: dict[str, float]
    probability: float | None  # P(answerable) from the refusal model (None: no model, the floor rule applies)
    refused: bool


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
    """Quotes the one to four retrieved sentences that best answer the question.

    score = cosine(question, sentence) + lexical_weight * (share of the question's rare terms in the
    sentence) + rank_prior / (1 + chunk rank). Evidence below the floor refuses.
    """

    mode = "extractive"

    def __init__(self, store: SentenceReader | None, config: AnsweringSettings, *, idf: Callable[[str], float] | None = None,
                 support: TermSupport | None = None, sentence_source: SentenceSource | None = None,
                 part_dims: tuple[int, ...] = (), refusal: RefusalModel | None = None,
                 choice: PassageModel | None = None, order_by_choice: bool = True):
        self.store = store
        # The fitted sentence choice (qa.choice): its scores are refusal evidence whenever there is a model, and
        # order the sentences to quote when order_by_choice (offline answers); else the hand-set rank_score does.
        self.choice = choice
        self.order_by_choice = order_by_choice and choice is not None
        self.config = config
        self.part_dims = part_dims  # the embedding's models side by side, for per-model similarities
        self.refusal = refusal
        self.idf = idf or (lambda term: 1.0)
        self.support = support
        # Where sentence vectors come from: the snapshot or the store (computed at ingestion) unless told otherwise.
        self.sentence_source = sentence_source or self._stored_sentences

    def _stored_sentences(self, nodes: list[NodeWithScore]):
        """(text, chunk id, embedding, index in chunk) of the nodes' sentences, as stored at ingestion."""
        got = self.store.read_sentences([n.node.node_id for n in nodes])
        return [(t, md["chunk_id"], e, md.get("index", 0))
                for t, md, e in zip(got["documents"], got["metadatas"], got["embeddings"])]

    def _parts(self, q: np.ndarray, e: np.ndarray) -> np.ndarray:
        if len(self.part_dims) < 2 or sum(self.part_dims) != len(q):
            return np.array([float(e @ q)])
        out, start = [], 0
        for d in self.part_dims:  # each part is scaled by 1/sqrt(n): its cosine is n times its share
            out.append(len(self.part_dims) * float(e[start:start + d] @ q[start:start + d]))
            start += d
        return np.array(out)

    def score_sentences(self, query: Query, nodes: list[NodeWithScore]) -> list[ScoredSentence]:
        rank_of: dict[str, int] = {}
        for r, n in enumerate(nodes):
            rank_of.setdefault(n.node.node_id, r)
        q = query.vector
        q_terms = {t: self.idf(t) for t in set(query.question_terms)}
        q_weight = sum(q_terms.values()) or 1.0
        out = []
        for text, chunk_id, emb, *index in self.sentence_source(nodes):
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
            out.append(ScoredSentence(snippet, rank, score, sim, emb, score - bias, self._parts(q, emb),
                                      index[0] if index else 0, offers(snippet), sim - bias, overlap))
        out.sort(key=lambda s: s.rank_score, reverse=True)
        if self.choice is not None and out:
            beside = [neighbour(s, out, query.slot) for s in out]
            for s, value in zip(out, self.choice.scores(sentence_features(query, out, self.support, beside))):
                s.choice = float(value)
            if self.order_by_choice:
                out.sort(key=lambda s: s.choice, reverse=True)
        return out

    @staticmethod
    def evidence(sentences: list[ScoredSentence]) -> float:
        """The hand-set evidence score (used with the floor when no refusal model is fitted)."""
        return max((s.score for s in sentences[:3]), default=0.0)

    def stream(self, query: Query, nodes: list[NodeWithScore]) -> Iterator[str | Answer]:
        yield from stream_text(self.answer(query, nodes))

    def answer(self, query: Query, nodes: list[NodeWithScore]) -> Answer:
        sources = [node_to_source(n) for n in nodes]
        if not nodes:
            return refusal(query, sources)
        if not query.words:  # only emoji or punctuation: it asks about nothing the articles could hold
            return refusal(query, sources)
        a = self.assess(query, nodes, sources)
        if a.refused:
            return refusal(query, sources)
        # One number per quoted sentence, so every [n] points at exactly the text it stands for.
        citations: list[Citation] = []
        parts = []
        for number, s in enumerate(a.chosen, start=1):
            src = sources[s.chunk_rank]
            citations.append(Citation(number, src.source, src.title, s.text, round(s.score, 4), src.language,
                                      src.text, src.chunk_id, src.url))
            parts.append(f"{defuse_markers(s.text)} [{number}]")
        return Answer(" ".join(parts), citations, refused=False, mode="extractive", question=query.question,
                      language=query.language, sources=sources)

    def assess(self, query: Query, nodes: list[NodeWithScore], sources: list[Source] | None = None) -> Assessment:
        """Score the sentences, choose the quote, check its support and decide whether to refuse."""
        sources = sources if sources is not None else [node_to_source(n) for n in nodes]
        sentences = self.score_sentences(query, nodes) if nodes else []
        positions = [int(n.node.metadata.get("position") or 0) for n in nodes]
        chosen = self.choose(sentences, sources, query.slot, query.defines, positions) if sentences else []
        report = quoted = None
        if self.support is not None and chosen:
            cited = dict.fromkeys(sources[s.chunk_rank].chunk_id for s in chosen)
            passage = "\n".join(f"{src.title}\n{src.text}" for src in sources if src.chunk_id in cited)
            report = self.support.check(query.question, passage, question_words=query.words)
            # The same check on the quote alone: an absent fact's question often names terms the passage has
            # somewhere (same topic) but not in the sentence that would have to hold the answer.
            quoted = self.support.check(query.question, " ".join(s.text for s in chosen), question_words=query.words)
        features = self.features(query, nodes, sentences, chosen, report, quoted)
        if not chosen:
            return Assessment(sentences, chosen, report, features, 0.0, True)
        if self.refusal is not None:
            p = self.refusal.probability(features)
            return Assessment(sentences, chosen, report, features, p, p < self.refusal.threshold)
        refused = self.evidence(sentences) < self.config.relevance_floor or (report is not None and not report.supported)
        return Assessment(sentences, chosen, report, features, None, refused)

    def features(self, query: Query, nodes: list[NodeWithScore], sentences: list[ScoredSentence],
                 chosen: list[ScoredSentence], report: SupportReport | None,
                 quoted: SupportReport | None = None) -> dict[str, float]:
        """The refusal model's inputs (qa.evidence.FEATURES), from what answering computed anyway."""
        f = dict.fromkeys(FEATURES, 0.0)
        if not sentences:
            return f
        per_model = np.stack([s.parts for s in sentences])
        top = sentences[0]
        other = [s.rank_score for s in sentences if nodes[s.chunk_rank].node.metadata.get("source")
                 != nodes[top.chunk_rank].node.metadata.get("source")]
        first = getattr(nodes[0], "scores", {})
        scores = [float(n.score or 0.0) for n in nodes]
        lexical = [(getattr(n, "scores", {}).get("lexical", 0.0), i) for i, n in enumerate(nodes)]
        best_lexical = max(lexical)
        sims = np.sort([s.similarity for s in sentences])[::-1]
        firsts = np.sort(per_model[:, 0])[::-1]
        f.update(
            sim_margin=float(sims[0] - sims[1]) if len(sims) > 1 else 0.1,
            sim_peak=float(sims[0] - sims[:10].mean()),
            first_peak=float(firsts[0] - firsts[:10].mean()),
            top_sim=max(s.similarity for s in sentences),
            evidence=self.evidence(sentences),
            first_sim=float(per_model[:, 0].max()),
            last_sim=float(per_model[:, -1].max()),
            model_agreement=reciprocal_agreement(per_model),
            doc_gap=top.rank_score - max(other) if other else 0.3,
            top_dense=first.get("dense", 0.0),
            top_sentence=first.get("sentence", 0.0),
            fused_margin=(scores[0] - scores[1]) / scores[0] if len(scores) > 1 and scores[0] > 0 else 1.0,
            lexical_coverage=max(getattr(n, "scores", {}).get("coverage", 0.0) for n in nodes),
            lexical_agrees=float(best_lexical[0] > 0 and nodes[best_lexical[1]].node.metadata.get("source")
                                 == nodes[0].node.metadata.get("source")),
        )
        if top.choice is not None:
            choices = sorted((s.choice for s in sentences), reverse=True)
            shares = np.exp(np.array(choices) - choices[0])
            f.update(choice_share=float(1.0 / shares.sum()))
        if report is not None:
            terms = list(report.terms.values())
            f.update(
                terms_found=report.coverage,
                terms_mean=float(np.mean(terms)) if terms else 1.0,
                terms_min=min(terms) if terms else 1.0,
                terms_literal=float(np.mean([t >= 0.999 for t in terms])) if terms else 1.0,
                number_missing=float(bool(report.missing_number)),
                log_key_terms=math.log1p(len(terms)),
            )
        if quoted is not None:
            terms = list(quoted.terms.values())
            f.update(quote_terms_found=quoted.coverage, quote_terms_mean=float(np.mean(terms)) if terms else 1.0)
        if query.slot != "thing" and chosen:
            fills = [s.offer.fills(query.slot) if s.offer else None for s in chosen]
            f.update(slot_filled=float(fills[0] is True), slot_unfilled=float(fills[0] is False),
                     slot_in_quote=float(any(x is True for x in fills)),
                     slot_with_terms=float(fills[0] is True) * f["quote_terms_found"])
        return f

    def choose(self, sentences: list[ScoredSentence], sources: list[Source], slot: str = "thing", defines: str = "",
               positions: list[int] | None = None) -> list[ScoredSentence]:
        chosen: list[ScoredSentence] = []
        # The order the sentences came in, and how far below the best a further one may score.
        if self.order_by_choice:
            key, margin = (lambda s: s.choice), self.config.choice_margin
        else:
            key, margin = (lambda s: s.rank_score), self.config.margin
        best = key(sentences[0])
        for s in sentences:
            if len(chosen) == self.config.max_sentences or key(s) < best - margin:
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
        intro = introduction(defines, chosen[0], sentences, sources, positions) if defines and chosen else None
        if intro is not None:  # "What is Sora?": how the best document introduces it, then its best sentence
            doc = sources[intro.chunk_rank].source
            return [intro] + [s for s in chosen if s is not intro and sources[s.chunk_rank].source == doc][:1]
        return self._with_neighbour(chosen, sentences, slot)

    def _with_neighbour(self, chosen: list[ScoredSentence], sentences: list[ScoredSentence],
                        slot: str) -> list[ScoredSentence]:
        """When the best sentence lacks the kind of answer asked for and the next or previous sentence of its
        passage has it (a name introduced in the following sentence, a number in the previous one), quote both."""
        if not chosen or not self.config.neighbours:
            return chosen
        first = chosen[0]
        s = neighbour(first, sentences, slot)
        if s is None:
            return chosen
        ordered = sorted([first, s], key=lambda x: x.index)  # read in the document's order
        rest = [c for c in chosen[1:] if c is not s][: max(0, self.config.max_sentences - 2)]
        return ordered + rest


def introduction(term: str, first: ScoredSentence, sentences: list[ScoredSentence], sources: list[Source],
                 positions: list[int] | None) -> ScoredSentence | None:
    """The earliest retrieved sentence of first's document that names `term` (news text introduces a name at
    its first mention), or None when none names it literally."""
    doc = sources[first.chunk_rank].source
    named = [s for s in sentences if sources[s.chunk_rank].source == doc and names(term, s.text)]
    position = positions or [0] * len(sources)
    return min(named, key=lambda s: (position[s.chunk_rank], s.index), default=None)


def names(term: str, text: str) -> bool:
    """Whether text holds every word of term, literally (folded)."""
    want = set(lexical_terms(term))
    return bool(want) and want <= set(lexical_terms(text))


def neighbour(first: ScoredSentence, sentences: list[ScoredSentence], slot: str) -> ScoredSentence | None:
    """The next or previous sentence of first's passage when first lacks the kind of answer asked for and
    that sentence has it (quoted together), else None."""
    if first.offer is None or slot == "thing" or first.offer.fills(slot) is True:
        return None
    for s in sentences:
        if s.chunk_rank == first.chunk_rank and abs(s.index - first.index) == 1 and s.offer \
                and s.offer.fills(slot) is True and s is not first:
            return s
    return None
