"""QAEngine: the Python query API that the CLI, the web UI and the evaluation all use."""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.response import Response
from llama_index.core.schema import NodeWithScore

from qa.answering import ExtractiveAnswerer, node_to_source, not_in_corpus
from qa.embeddings import LocalEmbedding, USEEmbedding, make_embedding
from qa.errors import ConfigError, LLMError, StoreError
from qa.llm import REFUSAL_TOKEN, LLMClient, MarkerFilter, build_messages, check_citations, endpoint_label
from qa.retrieval import DiversityPostprocessor, HybridRetriever, Snapshot, Timings, manifest_key
from qa.schema import Answer, Source
from qa.settings import Settings, load_settings
from qa.store import Store, describe_location
from qa.support import TermSupport
from qa.text import count_tokens, detect_language

History = list[tuple[str, str]] | list[list[str]] | None
FOLLOW_UP_TOKENS = 20
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


@dataclass
class CorpusStats:
    location: str
    embedding: str
    documents: int
    chunks: int
    languages: dict[str, int] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


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


class QAEngine:
    """Opens an existing store and answers questions with citations.

    >>> engine = QAEngine(Settings())
    >>> engine.ask("Why was Sora's release delayed?").citations[0].snippet
    """

    def __init__(self, settings: Settings | None = None, *, embed_model: LocalEmbedding | None = None):
        self.settings = settings or load_settings()
        self.embed_model = embed_model or make_embedding(self.settings)
        self.store = Store(self.settings)
        if not self.store.exists() or self.store.count() == 0:
            raise StoreError(
                f"no index at {describe_location(self.settings)} (collection {self.settings.collection!r}); "
                f"run `qa ingest` first"
            )
        self.store.check_model(self.embed_model.model_name, self.embed_model.dim)
        self.llm = LLMClient(self.settings) if self.settings.use_llm else None
        self._lock = threading.Lock()
        self._load()

    # --- state -------------------------------------------------------------------------------
    def _load(self, store: Store | None = None) -> None:
        store = store or self.store
        snapshot = Snapshot.load(store)
        if not snapshot.texts:
            raise StoreError(f"the index at {describe_location(self.settings)} has no documents; run `qa ingest`")
        self.store = store
        self.snapshot = snapshot
        self.retriever = HybridRetriever(store, snapshot, self.embed_model, e5_share=self.settings.retrieval_e5_share)
        support = None
        if self.settings.term_support:
            support = TermSupport(USEEmbedding(), snapshot.lexical.doc_share)
        self.answerer = ExtractiveAnswerer(store, self.settings.relevance_floor, idf=snapshot.lexical.idf,
                                           centroids=snapshot.centroids, support=support)

    def refresh(self) -> bool:
        """Reload after an ingestion; returns True when the store had changed."""
        with self._lock:
            if manifest_key(self.store.manifest()) == self.snapshot.manifest_key:
                return False
            # A fresh client: an embedded one keeps vector indexes in memory and would miss what another
            # process (`qa ingest` in a terminal) wrote. Questions in flight finish on the old one.
            fresh = Store(self.settings)
            fresh.reopen()
            self._load(fresh)
            return True

    def stats(self) -> CorpusStats:
        manifest = self.store.manifest()
        return CorpusStats(
            location=describe_location(self.settings),
            embedding=self.embed_model.model_name,
            documents=len(manifest),
            chunks=sum(len(r.chunk_ids) for r in manifest.values()),
            languages=dict(Counter(r.language for r in manifest.values())),
            titles={s: r.title for s, r in sorted(manifest.items())},
        )

    @property
    def mode_label(self) -> str:
        return f"LLM: {endpoint_label(self.settings)}" if self.llm else "offline extractive"

    # --- retrieval ---------------------------------------------------------------------------
    def _nodes(self, query: str, top_k: int, timings: Timings) -> tuple[list[NodeWithScore], np.ndarray]:
        t = time.perf_counter()
        q = self.embed_model.encode([query], is_query=True)[0]
        timings.add("embed_query", t)
        candidates = self.retriever.search(query, q, timings)
        t = time.perf_counter()
        nodes = DiversityPostprocessor(top_k=top_k).postprocess_nodes(candidates)
        timings.add("diversity", t)
        return nodes, q

    @staticmethod
    def _search_query(question: str, history: list[tuple[str, str]]) -> str:
        """Offline follow-ups ("and who funded it?") borrow the previous question's words.

        Only a short question in the same language as the previous one reads as a follow-up; a long or
        other-language question starts a new topic and would be blurred by the old one.
        """
        if not history:
            return question
        previous = history[-1][0]
        if count_tokens(question) > FOLLOW_UP_TOKENS or detect_language(previous) != detect_language(question):
            return question
        return f"{previous} {question}"

    def retrieve(self, question: str, top_k: int | None = None, history: History = None) -> list[Source]:
        question = clean_question(question, self.settings.max_question_chars)
        hist = normalize_history(history, self.settings.max_question_chars)
        nodes, _ = self._nodes(self._search_query(question, hist), top_k or self.settings.top_k, Timings())
        return [node_to_source(n) for n in nodes]

    # --- answering ---------------------------------------------------------------------------
    def ask(self, question: str, history: History = None, top_k: int | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history, top_k=top_k):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = None, top_k: int | None = None) -> Iterator[str | Answer]:
        """Yields text deltas, then the final Answer (whose text replaces what was streamed)."""
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        hist = normalize_history(history, self.settings.max_question_chars)
        language = detect_language(question)
        top_k = top_k or self.settings.top_k
        timings = Timings()
        answer: Answer | None = None
        notice = ""
        retrieved: dict = {}  # the LLM path leaves its retrieval here so a fallback does not redo it
        if self.llm is not None:
            try:
                answer = yield from self._stream_llm(question, hist, language, top_k, timings, retrieved)
            except LLMError as exc:
                notice = f"{exc}. Showing the offline answer instead."
                yield "\n\n"
        if answer is None:
            if not hist and "nodes" in retrieved:
                nodes, q = retrieved["nodes"], retrieved["q"]
            else:
                nodes, q = self._nodes(self._search_query(question, hist), top_k, timings)
            t = time.perf_counter()
            answer = self.answerer.answer(question, q, nodes, language)
            timings.add("answer", t)
            answer.notice = notice
            for i, part in enumerate(re.split(r"(?<=\]) ", answer.text)):
                yield (" " if i else "") + part
        timings.stages["total"] = time.perf_counter() - started
        answer.timings = dict(timings.stages)
        yield answer

    def _stream_llm(self, question, hist, language, top_k, timings, retrieved: dict) -> Iterator[str]:
        t = time.perf_counter()
        standalone = self.llm.condense(question, hist) if hist else question
        timings.add("condense", t)
        nodes, q = self._nodes(standalone, top_k, timings)
        retrieved.update(nodes=nodes, q=q)
        sources = [node_to_source(n) for n in nodes]
        if not sources:
            return Answer(not_in_corpus(language), refused=True, mode="llm", question=question, language=language)
        t = time.perf_counter()
        messages = build_messages(standalone, sources, language)
        filt = MarkerFilter(len(sources))
        raw = ""
        held = True  # hold output until it is clear the reply is not the refusal token
        for delta in self.llm.stream(messages):
            raw += delta
            if held and (REFUSAL_TOKEN.startswith(raw.strip()) or raw.strip().startswith(REFUSAL_TOKEN)):
                continue
            if held:
                held = False
                out = filt.feed(raw)
            else:
                out = filt.feed(delta)
            if out:
                yield out
        if not held:
            tail = filt.flush()
            if tail:
                yield tail
        timings.add("generate", t)
        # A reply cut short inside the token ("NOT_IN") is still the model declining.
        if REFUSAL_TOKEN in raw or (held and REFUSAL_TOKEN.startswith(raw.strip())):
            return Answer(not_in_corpus(language), refused=True, mode="llm", question=question, language=language,
                          sources=sources)
        text, citations = check_citations(raw, sources)
        answer = Answer(text, citations, refused=False, mode="llm", question=question, language=language,
                        sources=sources)
        if not citations:
            answer.unverified = True
            answer.notice = "This answer cites no source: treat it with care."
        return answer

    # --- LlamaIndex interop -------------------------------------------------------------------
    def as_query_engine(self) -> "CitedQueryEngine":
        return CitedQueryEngine(qa_engine=self)


class CitedQueryEngine(CustomQueryEngine):
    """QAEngine as a LlamaIndex query engine: the Response carries the cited passages as source nodes."""

    qa_engine: Any

    def custom_query(self, query_str: str) -> Response:
        from llama_index.core.schema import TextNode

        answer: Answer = self.qa_engine.ask(query_str)
        nodes = [
            NodeWithScore(node=TextNode(id_=c.chunk_id, text=c.passage, metadata={"source": c.source, "title": c.title,
                                                                                  "snippet": c.snippet}), score=c.score)
            for c in answer.citations
        ]
        return Response(response=answer.text, source_nodes=nodes,
                        metadata={"refused": answer.refused, "mode": answer.mode})
