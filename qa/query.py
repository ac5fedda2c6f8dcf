"""A question analysed once: clean text, language, follow-up context, lexical terms and vectors.

Every component of the query path (retrievers, answerers, the support check) reads the same `Query`
instead of re-detecting the language, re-tokenizing or re-embedding the question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from llama_index.core.schema import QueryBundle

from qa.answer_types import defined_term, question_slot
from qa.errors import ConfigError
from qa.references import asks_for_overview, named_languages, named_sites
from qa.snapshot import Bias, Centroids, DocumentInfo
from qa.text import count_tokens, detect_language, lexical_terms, words
from qa.timing import stage

History = list[tuple[str, str]] | list[list[str]] | None
FOLLOW_UP_TOKENS = 20  # a longer question starts a new topic
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


def clean_question(question: Any, max_chars: int) -> str:
    """Normalise a question; raise ConfigError for empty or over-long input."""
    if not isinstance(question, str):
        raise ConfigError("the question must be text")
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", question))
    text = "".join(c if c in "\n\t" or unicodedata.category(c)[0] != "C" else " " for c in text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise ConfigError("the question is empty; type a question about the articles")
    if len(text) > max_chars:
        raise ConfigError(
            f"the question is {len(text)} characters long; the limit is {max_chars} (QA_MAX_QUESTION_CHARS)"
        )
    return text


def normalize_history(history: History, max_chars: int) -> list[tuple[str, str]]:
    """Keep well-formed turns, each cut to the question limit: a client-sent history is input too."""
    out = []
    for turn in history or []:
        if isinstance(turn, (list, tuple)) and len(turn) >= 2 and isinstance(turn[0], str):
            out.append((turn[0][:max_chars], str(turn[1] or "")[: 4 * max_chars]))
    return out


@dataclass
class Query(QueryBundle):
    """`query_str` is the text searched for (the question, or it with its follow-up context)."""

    question: str = ""  # the cleaned question as asked
    language: str = "und"
    history: tuple[tuple[str, str], ...] = ()
    vector: np.ndarray | None = None  # even mix of the models: scores sentences
    ranking_vector: np.ndarray | None = None  # e5-weighted: ranks passages
    bias: Bias = field(default_factory=Bias.constant)  # (language, source) -> vector . that language's mean chunk
    ranking_bias: Bias = field(default_factory=Bias.constant)  # the same for ranking_vector
    prefer: frozenset[str] = frozenset()  # sources the question names ("the Chinese article", "RFI")
    overview: bool = False  # asks about the corpus as a whole ("Summarize the articles")
    allowed: frozenset[str] | None = None  # the only sources every retriever may return (None: all of them)

    def permits(self, source: str) -> bool:
        return self.allowed is None or source in self.allowed

    @property
    def where(self) -> dict | None:
        """The Chroma metadata filter of `allowed` (for chunk and sentence collections alike)."""
        return None if self.allowed is None else {"source": {"$in": sorted(self.allowed)}}

    @cached_property
    def search_terms(self) -> list[str]:
        return lexical_terms(self.query_str)

    @cached_property
    def question_terms(self) -> list[str]:
        return lexical_terms(self.question)

    @cached_property
    def words(self) -> list[str]:
        return words(self.question)

    @cached_property
    def slot(self) -> str:
        """The kind of answer asked for (qa.answer_types.SLOTS)."""
        return question_slot(self.question)

    @cached_property
    def defines(self) -> str:
        """What the question only names, to be introduced ("Sora" for "What is Sora?"), or ""."""
        return defined_term(self.question)


def follow_up_text(question: str, language: str, history: list[tuple[str, str]]) -> str:
    """Offline follow-ups ("and who funded it?", "Et pourquoi ?") borrow the previous question's words.

    A short question reads as a follow-up in any language pair (the models are multilingual, so "Which
    group leaked Sora?" then "Qu'ont-ils reproché à OpenAI ?" retrieves from both); a long one starts a
    new topic and would be blurred by the old one.
    """
    if not history or count_tokens(question) > FOLLOW_UP_TOKENS:
        return question
    return f"{history[-1][0]} {question}"


class QueryAnalyzer:
    """Turns a raw question (and history) into a `Query`; built once per index snapshot (it knows its centroids)."""

    def __init__(self, embed_model, centroids: Centroids | None, *, e5_share: float, max_chars: int,
                 documents: dict[str, DocumentInfo] | None = None, corpus_dir=None):
        self.embed_model = embed_model
        self.corpus_dir = corpus_dir
        self.centroids = centroids
        self.documents = documents or {}
        self.e5_share = e5_share
        self.max_chars = max_chars

    def analyse(self, question: Any, history: History = None,
                condense: Callable[[str, list[tuple[str, str]]], str] | None = None, *,
                sources: list[str] | None = None, languages: list[str] | None = None) -> Query:
        """condense, when given, rewrites a follow-up into a standalone question (an LLM call).

        sources / languages restrict every retriever to those documents (both: documents matching both);
        an unknown value raises ConfigError naming it and listing the valid ones.
        """
        text = clean_question(question, self.max_chars)
        allowed = self.allowed(sources, languages)
        hist = normalize_history(history, self.max_chars)
        language = detect_language(text)
        if hist and condense is not None:
            with stage("condense"):
                search = condense(text, hist)
        else:
            search = follow_up_text(text, language, hist)
        prefer = self.named_documents(text)
        if allowed is not None:
            prefer = prefer & allowed
        query = Query(query_str=search, question=text, language=language, history=tuple(hist),
                      prefer=prefer, overview=asks_for_overview(text), allowed=allowed)
        return self.with_vectors(query)

    def allowed(self, sources: list[str] | None = None, languages: list[str] | None = None) -> frozenset[str] | None:
        """The sources a question filtered by `sources` / `languages` may use (None when not filtered)."""
        from qa.documents import allowed_sources

        return allowed_sources(self.documents, self.corpus_dir, sources, languages)

    def named_documents(self, question: str) -> frozenset[str]:
        """Documents the question names by language or site; none when it would name them all."""
        langs = named_languages(question)
        sites = named_sites(question, {d.site for d in self.documents.values()})
        named = frozenset(s for s, d in self.documents.items() if d.language in langs or d.site in sites)
        return named if len(named) < len(self.documents) else frozenset()

    def with_vectors(self, query: Query) -> Query:
        with stage("embed_query"):
            q = self.embed_model.encode([query.query_str], is_query=True)[0]
            # Ranking favours e5 (better at finding the document); sentences are scored with the even mix.
            ranking = self.embed_model.mix(np.asarray(q, dtype=np.float32), self.e5_share)
        query.vector, query.ranking_vector = q, ranking
        query.embedding = ranking.tolist()
        if self.centroids is not None:
            query.bias, query.ranking_bias = self.centroids.bias(q), self.centroids.bias(ranking)
        return query

    def from_bundle(self, bundle: QueryBundle) -> Query:
        """A plain LlamaIndex QueryBundle (a caller outside the engine) becomes a Query."""
        if isinstance(bundle, Query):
            return bundle
        return self.analyse(bundle.query_str)
