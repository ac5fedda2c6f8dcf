"""The systems `qa eval` compares: ours (the engine) and three baselines on the same store and model.

The baselines answer with our extractive selection, so the comparison isolates retrieval and chunking:
BM25 alone, dense alone (the default embedding, plain top-k), and the LlamaIndex quick-start
(`VectorStoreIndex` over the raw files, its default 1024-token chunking, `similarity_top_k=2`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SystemOutput:
    retrieved: list[str]
    text: str
    citations: list[dict]
    refused: bool
    passages: list[str] = field(default_factory=list)  # texts of the retrieved passages, in order
    mode: str = ""  # how the answer was made: "llm", or "extractive" (offline, or the LLM's fallback)
    first_text_ms: float = 0.0  # until the first text was streamed (0: nothing streamed)
    dropped: int = 0  # generated sentences the guard left out


System = Callable[[Any], SystemOutput]  # a test case in, what the system answered out


def ours(engine, top_k: int) -> System:
    def run(case) -> SystemOutput:
        started, first = time.perf_counter(), 0.0
        for event in engine.stream(case.question, history=case.history or None, top_k=top_k):
            if isinstance(event, str) and event.strip() and not first:
                first = (time.perf_counter() - started) * 1000
            ans = event
        return SystemOutput([s.source for s in ans.sources], ans.text, [asdict(c) for c in ans.citations], ans.refused,
                            [s.text for s in ans.sources], ans.mode, first, len(ans.dropped))

    return run


def _query(engine, case, *, plain: bool = False):
    """The case's question as the engine analyses it; plain: the even-mix vector, no language bias (baselines)."""
    from dataclasses import replace

    from qa.snapshot import Bias

    query = engine.analyse(case.question, [tuple(t) for t in case.history])
    if plain:
        query = replace(query, ranking_vector=query.vector, embedding=query.vector.tolist(), bias=Bias.constant(),
                        ranking_bias=Bias.constant())
    return query


def _answer_with(answerer, query, nodes) -> SystemOutput:
    ans = answerer.answer(query, nodes)
    return SystemOutput([n.node.metadata.get("source", "") for n in nodes], ans.text,
                        [asdict(c) for c in ans.citations], ans.refused, [n.node.get_content() for n in nodes])


def single_retriever_baseline(engine, top_k: int, dense: bool) -> System:
    """Plain dense or plain BM25 over our chunks: top-k, with no fusion, sentence vectors, language
    centring or de-duplication; answered by our extractive answerer."""
    from qa.retrievers import DenseRetriever, LexicalRetriever

    p = engine.pipeline
    candidates = engine.settings.retrieval.candidates
    retriever = (DenseRetriever(p.store, p.snapshot, p.analyzer, candidates) if dense
                 else LexicalRetriever(p.store, p.snapshot, p.analyzer, candidates, coverage_power=0.0))

    def run(case) -> SystemOutput:
        query = _query(engine, case, plain=True)
        nodes = retriever.search(query)[:top_k]
        return _answer_with(p.offline, _query(engine, case), nodes)

    return run


def llamaindex_default_baseline(engine, corpus_dir: Path) -> System:
    """What the LlamaIndex quick-start gives: raw files, default SentenceSplitter (1024/200), top-2 dense.

    Same embedding model; answers use our extractive selection on its passages so that only retrieval
    and chunking differ.
    """
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from qa.answering import ExtractiveAnswerer
    from qa.loading import list_corpus
    from qa.text import split_sentences, tokens

    docs = []
    for p in list_corpus(corpus_dir):
        try:
            docs.append(Document(text=p.read_text(encoding="utf-8"), metadata={"source": p.relative_to(corpus_dir).as_posix()}))
        except (OSError, UnicodeDecodeError):
            continue
    # tokenizer=tokens only avoids tiktoken's download; chunk sizes stay LlamaIndex's defaults.
    index = VectorStoreIndex.from_documents(docs, embed_model=engine.embed_model,
                                            transformations=[SentenceSplitter(tokenizer=tokens)])
    retriever = index.as_retriever(similarity_top_k=2)
    cache: dict[str, np.ndarray] = {}

    def sentences(nodes):
        out = []
        for n in nodes:
            parts = [s.strip() for s in split_sentences(n.node.get_content()) if s.strip()]
            todo = [s for s in parts if s not in cache]
            if todo:
                cache.update(zip(todo, engine.embed_model.encode(todo)))
            out.extend((s, n.node.node_id, cache[s]) for s in parts)
        return out

    config = engine.settings.answering.model_copy(update={"same_document": True})
    answerer = ExtractiveAnswerer(None, config, idf=engine.snapshot.lexical.idf, sentence_source=sentences)

    def run(case) -> SystemOutput:
        query = _query(engine, case, plain=True)
        nodes = retriever.retrieve(query.query_str)
        return _answer_with(answerer, query, nodes)

    return run
