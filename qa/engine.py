"""QAEngine: the Python query API that the CLI, the web UI and the evaluation all use.

A question goes through one `Pipeline`, built once per index snapshot: analyse (clean text, language,
follow-up context, vectors) -> fuse dense, sentence and BM25 retrievers -> de-duplicate -> answer.
`refresh()` builds the next pipeline and swaps it in as one reference, so a question always runs on a
single consistent snapshot, even while an ingestion is being picked up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.response import Response
from llama_index.core.schema import NodeWithScore

from qa.answering import Answerer, ExtractiveAnswerer, node_to_source
from qa.choice import choice_model_for
from qa.documents import CorpusDocument, from_records
from qa.embeddings import LocalEmbedding, USEEmbedding, make_embedding
from qa.errors import LLMError, QAError, StoreError
from qa.evidence import refusal_model_for
from qa.ingest import RemoveReport
from qa.llm import LLMClient, endpoint_label
from qa.loading import page_in
from qa.overview import OverviewAnswerer, overview_nodes, with_lead
from qa.postprocessors import DiversityPostprocessor
from qa.query import History, Query, QueryAnalyzer
from qa.rerank import PassageReranker, make_reranker
from qa.retrievers import DenseRetriever, FusionRetriever, LexicalRetriever, SentenceRetriever
from qa.schema import Answer, Source
from qa.settings import Settings, load_settings
from qa.snapshot import Snapshot, manifest_key
from qa.store import Store, describe_location
from qa.support import TermSupport
from qa.timing import Trace, stage, tracing

log = logging.getLogger(__name__)


@dataclass
class CorpusStats:
    location: str
    embedding: str
    documents: int
    chunks: int
    languages: dict[str, int] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pipeline:
    """Everything a question needs, over one snapshot of the index."""

    store: Store
    snapshot: Snapshot
    analyzer: QueryAnalyzer
    retriever: FusionRetriever
    answerer: Answerer  # the configured mode (the LLM wrapped in its offline fallback, or offline)
    offline: ExtractiveAnswerer
    overview: Answerer  # questions about the corpus as a whole, in the configured mode
    reranker: PassageReranker | None = None  # orders the first fused passages by the fitted passage model

    def nodes(self, query: Query, top_k: int, settings: Settings) -> list[NodeWithScore]:
        candidates = self.retriever.search(query)
        if query.overview:
            return overview_nodes(query, candidates, self.snapshot, top_k)
        if self.reranker is not None:
            candidates = self.reranker.postprocess_nodes(candidates, query_bundle=query)
        with stage("diversity"):
            nodes = DiversityPostprocessor(top_k=top_k, max_similarity=settings.retrieval.duplicate_similarity,
                                           max_per_source=settings.retrieval.max_per_source).postprocess_nodes(candidates)
        return with_lead(query, nodes, self.snapshot, top_k)


def build_pipeline(settings: Settings, store: Store, embed_model: LocalEmbedding, llm: LLMClient | None,
                   previous: Snapshot | None = None) -> Pipeline:
    r = settings.retrieval
    snapshot = Snapshot.load(store, r.min_language_chunks, settings.snapshot_folder(store.name), previous)
    if not snapshot.metadatas:
        raise StoreError(f"the index at {describe_location(settings)} has no documents; run `qa ingest`")
    analyzer = QueryAnalyzer(embed_model, snapshot.centroids, e5_share=r.e5_share,
                             max_chars=settings.max_question_chars, documents=snapshot.documents,
                             corpus_dir=settings.corpus_dir)
    parts = [
        (DenseRetriever(store, snapshot, analyzer, r.candidates, centering=r.centering), r.dense_weight),
        (SentenceRetriever(store, snapshot, analyzer, r.candidates), r.sentence_weight),
        (LexicalRetriever(store, snapshot, analyzer, r.candidates, coverage_power=r.coverage_power), r.lexical_weight),
    ]
    retriever = FusionRetriever(store, snapshot, analyzer, parts, k=r.rrf_k, candidates=r.candidates,
                                reference_boost=r.reference_boost)
    # The snapshot's sentence table: reading the store's sentence collection would load its whole HNSW index.
    sentences = snapshot.sentences
    support = None
    if settings.answering.term_support:
        support = TermSupport(USEEmbedding(), snapshot.lexical.doc_share, settings.answering)
    refusal = refusal_model_for(embed_model.model_name) if settings.answering.refusal_model else None
    # The fitted sentence choice orders offline answers only, like the re-ranker below (an LLM's floor keeps its
    # anchor); its scores are refusal evidence in every mode.
    offline = ExtractiveAnswerer(sentences, settings.answering, idf=snapshot.lexical.idf, support=support,
                                 part_dims=embed_model.part_dims, refusal=refusal,
                                 choice=choice_model_for(embed_model.model_name),
                                 order_by_choice=llm is None and settings.answering.sentence_choice)
    answerer: Answerer = offline
    overview: Answerer = OverviewAnswerer(sentences)
    if llm is not None:
        from qa.generation import FallbackAnswerer, LLMAnswerer
        from qa.guard import AnswerGuard

        generator = LLMAnswerer(llm, AnswerGuard(embed_model, settings.llm.guard_similarity), settings.llm,
                                floor=offline)
        answerer = FallbackAnswerer(generator, offline)
        overview = FallbackAnswerer(generator, overview)
    # Offline answers only: with an LLM the prompt keeps the fused order. The re-ranker was fitted and measured
    # on extractive answers; SmolLM2 (the real model of the tests) answers differently when the same sources
    # come in another order, and its floor's refusals moved on the LLM slice of the held-out set.
    reranker = None if llm is not None else make_reranker(sentences, support, embed_model.model_name, r.rerank_depth)
    return Pipeline(store, snapshot, analyzer, retriever, answerer, offline, overview, reranker)


def _traced(events: Iterator, trace: Trace) -> Iterator:
    """Run each step of a generator inside the trace (a generator may resume in another thread)."""
    while True:
        with tracing(trace):
            try:
                event = next(events)
            except StopIteration:
                return
        yield event


class QAEngine:
    """Opens an existing store and answers questions with citations.

    >>> engine = QAEngine(Settings())
    >>> engine.ask("Why was Sora's release delayed?").citations[0].snippet
    """

    def __init__(self, settings: Settings | None = None, *, embed_model: LocalEmbedding | None = None):
        self.settings = settings or load_settings()
        self.embed_model = embed_model or make_embedding(self.settings)
        store = Store(self.settings)
        if not store.exists() or store.count() == 0:
            raise StoreError(
                f"no index at {describe_location(self.settings)} (collection {self.settings.collection!r}); "
                f"run `qa ingest` first"
            )
        store.check_model(self.embed_model.model_name, self.embed_model.dim)
        self.llm = LLMClient(self.settings) if self.settings.use_llm else None
        self._lock = threading.Lock()
        self.pipeline = build_pipeline(self.settings, store, self.embed_model, self.llm)

    @property
    def store(self) -> Store:
        return self.pipeline.store

    @property
    def snapshot(self) -> Snapshot:
        return self.pipeline.snapshot

    def refresh(self) -> bool:
        """Reload after an ingestion; returns True when the store had changed."""
        with self._lock:
            if manifest_key(self.pipeline.store.manifest()) == self.pipeline.snapshot.manifest_key:
                return False
            # A fresh client: an embedded one keeps vector indexes in memory and would miss what another
            # process (`qa ingest` in a terminal) wrote. Questions in flight finish on the old pipeline.
            fresh = Store(self.settings)
            fresh.reopen()
            self.pipeline = build_pipeline(self.settings, fresh, self.embed_model, self.llm, self.pipeline.snapshot)
            return True

    def watch(self, every: float) -> threading.Thread | None:
        """Call refresh() every `every` seconds in a daemon thread (None when every is 0), so that a document
        another process ingests becomes answerable without a restart. A failed check is logged and retried."""
        if every <= 0:
            return None

        def loop() -> None:
            while True:
                time.sleep(every)
                try:
                    if self.refresh():
                        log.info("picked up a change of the index: %d documents", len(self.snapshot.documents))
                except QAError as exc:  # a server down for a while: the current snapshot keeps answering
                    log.warning("checking the index for changes failed: %s", exc)

        thread = threading.Thread(target=loop, name="index-watch", daemon=True)
        thread.start()
        return thread

    def documents(self) -> list[CorpusDocument]:
        """The documents questions are answered from (this engine's snapshot; refresh() after an ingestion)."""
        return from_records(self.snapshot.records.values())

    def languages(self) -> list[str]:
        """The languages of the documents, for `languages=` filters."""
        return sorted({d.language for d in self.snapshot.documents.values()})

    def remove(self, sources: list[str], *, delete_files: bool = True) -> RemoveReport:
        """Remove documents (qa.ingest.remove_documents, strict: an unknown name removes nothing and raises
        ConfigError), then refresh so that the next question no longer sees them."""
        from qa.ingest import remove_documents

        report = remove_documents(self.settings, list(sources), delete_files=delete_files, strict=True)
        if report.removed:
            self.refresh()
        return report

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

    # --- the query API -----------------------------------------------------------------------
    # sources= / languages= (every method): answer only from these documents (source keys, paths in the
    # corpus or unique file names) and/or languages; an unknown value raises ConfigError listing the valid ones.
    def analyse(self, question: str, history: History = None, *, sources: list[str] | None = None,
                languages: list[str] | None = None) -> Query:
        """The question as every component sees it (offline follow-up handling, no LLM call)."""
        return self.pipeline.analyzer.analyse(question, history, sources=sources, languages=languages)

    def retrieve(self, question: str, top_k: int | None = None, history: History = None, *,
                 sources: list[str] | None = None, languages: list[str] | None = None) -> list[Source]:
        p = self.pipeline
        query = p.analyzer.analyse(question, history, sources=sources, languages=languages)
        nodes = p.nodes(query, top_k or self.settings.retrieval.top_k, self.settings)
        return [node_to_source(n) for n in nodes]

    def ask(self, question: str, history: History = None, top_k: int | None = None, *,
            sources: list[str] | None = None, languages: list[str] | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history, top_k=top_k, sources=sources, languages=languages):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = None, top_k: int | None = None, *,
               progress: bool = False, sources: list[str] | None = None,
               languages: list[str] | None = None) -> Iterator[str | Answer]:
        """Yields text deltas, then the final Answer (whose text replaces what was streamed).

        progress=True also yields qa.Progress events while an LLM server reads the prompt and writes.
        """
        started = time.perf_counter()
        p = self.pipeline  # one snapshot for the whole question, whatever refresh() does meanwhile
        trace = Trace()
        notice = ""
        filters = dict(sources=sources, languages=languages)
        with tracing(trace):
            condense = self.llm.condense if self.llm is not None else None
            p.analyzer.allowed(sources, languages)  # a bad filter fails before any LLM call
            try:
                query = p.analyzer.analyse(question, history, condense=condense, **filters)
            except LLMError as exc:  # the endpoint failed on the follow-up already: answer offline
                notice = f"{exc}. Showing the offline answer instead."
                query = p.analyzer.analyse(question, history, **filters)
            nodes = p.nodes(query, top_k or self.settings.retrieval.top_k, self.settings)
        if query.overview:
            answerer = p.overview.fallback if notice and hasattr(p.overview, "fallback") else p.overview
        else:
            answerer = p.offline if notice else p.answerer
        answer_started = time.perf_counter()
        answer: Answer | None = None
        for event in _traced(answerer.stream(query, nodes), trace):
            if isinstance(event, Answer):
                answer = event
            elif isinstance(event, str) or progress:
                yield event
        assert answer is not None
        trace.add("answer", time.perf_counter() - answer_started - trace.stages.get("generate", 0.0))
        if notice:
            answer.notice = notice
        pages = {s.chunk_id: s.pages for s in answer.sources if s.pages}
        for c in answer.citations:  # a PDF citation names the page its snippet is on
            if c.chunk_id in pages:
                c.page = page_in(pages[c.chunk_id], c.passage, c.snippet)
        trace.stages["total"] = time.perf_counter() - started
        answer.timings = dict(trace.stages)
        yield answer

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
