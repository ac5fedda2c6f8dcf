"""Chunking with LlamaIndex's SentenceSplitter, taught sentence ends of Latin, Arabic and CJK scripts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from llama_index.core.node_parser import SentenceSplitter

from qa.text import CLAUSE_REGEX, split_sentences, tokens


@dataclass
class Chunk:
    id: str
    source: str
    position: int  # order within the document
    text: str
    sentences: list[str]  # the chunk's sentences; each is a verbatim substring of text


def make_splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    # Passing our tokenizer also keeps LlamaIndex from fetching tiktoken's vocabulary over the network.
    return SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=tokens,
        chunking_tokenizer_fn=split_sentences,
        secondary_chunking_regex=CLAUSE_REGEX,
        paragraph_separator="\n\n",
        separator=" ",
    )


def chunk_id(source: str, text: str, occurrence: int = 0) -> str:
    """Content-derived id: the same text in the same file always gets the same id."""
    digest = hashlib.sha256(f"{source}\x00{text}\x00{occurrence}".encode()).hexdigest()
    return digest[:32]


def chunk_text(source: str, text: str, splitter: SentenceSplitter) -> list[Chunk]:
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for position, piece in enumerate(p.strip() for p in splitter.split_text(text)):
        if not piece:
            continue
        occurrence = seen.get(piece, 0)
        seen[piece] = occurrence + 1
        sentences = [s.strip() for s in split_sentences(piece) if s.strip()]
        chunks.append(Chunk(chunk_id(source, piece, occurrence), source, position, piece, sentences))
    return chunks
