"""The public result types of the query API (names and fields are a stable contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class Source:
    """A retrieved passage."""

    source: str  # path relative to corpus_dir
    title: str
    text: str
    score: float  # fused retrieval score (higher is better)
    language: str
    chunk_id: str = ""
    url: str = ""
    date: str = ""
    dense_score: float = 0.0  # cosine similarity with the question
    lexical_score: float = 0.0  # BM25 score
    pages: str = ""  # PDF: "page:offset,..." where pages begin in the text (qa.loading.chunk_pages)


@dataclass
class Citation:
    """What an answer's [number] points to: the passage and the exact supporting text in it."""

    number: int
    source: str
    title: str
    snippet: str  # verbatim text of the passage
    score: float
    language: str = ""
    passage: str = ""  # the whole passage the snippet sits in
    chunk_id: str = ""
    url: str = ""
    page: int = 0  # the page of the snippet, for documents with pages (PDF); 0 otherwise


@dataclass
class Progress:
    """What an answer is waiting for, streamed by `QAEngine.stream(..., progress=True)` (the UI shows it).

    stage: "reading" (the LLM server reads the prompt: `tokens` is the prompt's estimated size) or
    "writing" (`tokens` generated so far, not yet all checked against the sources).
    """

    stage: str
    tokens: int = 0
    seconds: float = 0.0  # since the question arrived


@dataclass
class Answer:
    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    mode: Literal["extractive", "llm"] = "extractive"
    question: str = ""
    language: str = ""
    sources: list[Source] = field(default_factory=list)  # everything retrieved, cited or not
    notice: str = ""  # e.g. "the LLM endpoint failed; this is the offline answer"
    unverified: bool = False  # an LLM answer that kept no valid citation
    dropped: list[str] = field(default_factory=list)  # generated sentences left out, each with why (LLM mode)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)
