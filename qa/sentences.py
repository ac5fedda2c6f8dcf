"""The sentences of the committed chunks, as a snapshot keeps them: texts and int8 vectors, read per question.

Chroma's sentence collection stays the store of record (ingestion writes it; a replica derives this table
from it once), but a reader never opens it: Chroma loads a collection's whole HNSW index on any access, and
at 100k chunks the sentences' is ~1.7 GB. Here a question reads only the rows of its candidate chunks.
Vectors are quantised per row to int8 (cosines move by ~1e-3), a quarter of float32.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class SentenceReader(Protocol):
    """Where the sentences of chunks are read from: a snapshot's SentenceTable, or the Store itself."""

    def read_sentences(self, chunk_ids: list[str]) -> dict[str, Any]: ...


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of float vectors -> (int8 rows, one float32 scale per row) with row ≈ int8 * scale."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    scales = np.abs(vectors).max(axis=1) / 127.0 if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    return np.rint(vectors / scales[:, None]).astype(np.int8), scales


class _Bytes:
    """A byte string in memory, or a span of a file read on demand with pread.

    Not a memory map: the kernel maps the neighbours of every touched page of a cached file into the process
    ("fault-around"), and a few hundred scattered rows per question then grew a 100k-chunk engine by ~400 MB.
    """

    def __init__(self, data: bytes | np.ndarray = b"", path: Path | None = None, offset: int = 0, size: int = 0):
        self.data, self.offset, self.size = data, offset, size if path is not None else len(data)
        self.fd = None
        if path is not None:
            self.fd = os.open(path, os.O_RDONLY)
            weakref.finalize(self, os.close, self.fd)

    def read(self, a: int, b: int) -> bytes:
        if self.fd is None:
            return bytes(self.data[a:b])  # a slice of an array is copied, never the whole
        return os.pread(self.fd, b - a, self.offset + a) if b > a else b""


def _npy_data(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """(offset of the data, shape, dtype) of a .npy file, without reading the data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        if fortran:
            raise ValueError(f"{path}: Fortran order is not expected")
        return f.tell(), shape, dtype


class SentenceTable:
    """For the chunk in row r of a snapshot's chunk table: sentences chunk_offsets[r]:chunk_offsets[r + 1]."""

    def __init__(self, row: dict[str, int], vectors: _Bytes, dim: int, scales: np.ndarray, text: _Bytes,
                 text_offsets: np.ndarray, chunk_offsets: np.ndarray):
        self.row = row  # chunk id -> its row (the snapshot's ChunkTable.row)
        self.vectors, self.dim, self.scales = vectors, dim, scales  # int8 rows, dim bytes each
        self.text, self.text_offsets, self.chunk_offsets = text, text_offsets, chunk_offsets

    @classmethod
    def build(cls, row: dict[str, int], chunks: list["ChunkSentences"], dim: int) -> "SentenceTable":
        """chunks[r]: the sentences of row r's chunk, in their order in the chunk."""
        counts = np.fromiter((len(c.texts) for c in chunks), dtype=np.int64, count=len(chunks))
        chunk_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        vectors = np.concatenate([c.vectors.reshape(-1, dim) for c in chunks]) if chunks else np.zeros((0, dim), np.int8)
        scales = np.concatenate([c.scales for c in chunks]).astype(np.float32) if chunks else np.zeros(0, np.float32)
        encoded = [t.encode("utf-8") for c in chunks for t in c.texts]
        text_offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded], dtype=np.int64)]).astype(np.int64)
        return cls(row, _Bytes(vectors.astype(np.int8, copy=False).reshape(-1).view(np.uint8)), dim, scales,
                   _Bytes(b"".join(encoded)), text_offsets, chunk_offsets)

    @property
    def in_memory(self) -> bool:
        return self.vectors.fd is None

    def save(self, folder: Path) -> None:
        """Write a built table (one read from files is never saved again: the next snapshot builds its own)."""
        if not self.in_memory:
            raise ValueError("only a built sentence table is saved")
        folder.mkdir(parents=True, exist_ok=True)
        n = len(self.scales)
        np.save(folder / "vectors.npy", np.asarray(self.vectors.data).view(np.int8).reshape(n, self.dim))
        np.save(folder / "scales.npy", self.scales)
        (folder / "text.bin").write_bytes(self.text.data)
        np.save(folder / "text_offsets.npy", self.text_offsets)
        np.save(folder / "chunk_offsets.npy", self.chunk_offsets)

    @classmethod
    def load(cls, folder: Path, row: dict[str, int]) -> "SentenceTable":
        """The offsets and scales in memory (a few bytes per sentence); vectors and texts read per question."""
        offset, shape, dtype = _npy_data(folder / "vectors.npy")
        if dtype != np.int8 or len(shape) != 2:
            raise ValueError(f"the sentence vectors in {folder} are not int8 rows")
        text_path = folder / "text.bin"
        table = cls(row, _Bytes(path=folder / "vectors.npy", offset=offset, size=shape[0] * shape[1]), int(shape[1]),
                    np.load(folder / "scales.npy"), _Bytes(path=text_path, size=text_path.stat().st_size),
                    np.load(folder / "text_offsets.npy"), np.load(folder / "chunk_offsets.npy"))
        if (len(table.chunk_offsets) != len(row) + 1 or len(table.text_offsets) != shape[0] + 1
                or len(table.scales) != shape[0]):
            raise ValueError(f"the sentence table in {folder} does not match its chunk table")
        return table

    def _span(self, chunk_id: str) -> range:
        r = self.row.get(chunk_id)
        if r is None:
            return range(0)
        return range(int(self.chunk_offsets[r]), int(self.chunk_offsets[r + 1]))

    def _rows(self, span: range) -> np.ndarray:
        """The int8 rows of a span of sentences (one read)."""
        raw = self.vectors.read(span.start * self.dim, span.stop * self.dim)
        return np.frombuffer(raw, dtype=np.int8).reshape(len(span), self.dim)

    def _texts(self, span: range) -> list[str]:
        if not len(span):
            return []
        base = int(self.text_offsets[span.start])
        raw = self.text.read(base, int(self.text_offsets[span.stop]))
        cuts = [int(self.text_offsets[i]) - base for i in range(span.start, span.stop + 1)]
        return [raw[a:b].decode("utf-8") for a, b in zip(cuts, cuts[1:])]

    def _vectors(self, span: range) -> np.ndarray:
        return self._rows(span).astype(np.float32) * self.scales[span.start:span.stop, None]

    def read_sentences(self, chunk_ids: list[str]) -> dict[str, Any]:
        """What Store.read_sentences returns (ids, documents, metadatas, embeddings), from this table."""
        out: dict[str, list] = {"ids": [], "documents": [], "metadatas": [], "embeddings": []}
        for cid in dict.fromkeys(chunk_ids):
            span = self._span(cid)
            out["ids"].extend(f"{cid}:{j}" for j in range(len(span)))
            out["documents"].extend(self._texts(span))
            out["metadatas"].extend({"chunk_id": cid, "index": j} for j in range(len(span)))
            out["embeddings"].extend(self._vectors(span))
        return out

    def best(self, q: np.ndarray, chunk_ids: list[str], sentences: int | None = None) -> dict[str, float]:
        """chunk id -> cosine of its best sentence with q, best first, for the chunks that have one of the
        `sentences` best sentences of them all (None: every chunk with a sentence)."""
        owners, blocks = [], []
        for cid in dict.fromkeys(chunk_ids):
            span = self._span(cid)
            if len(span):
                owners.extend([cid] * len(span))
                blocks.append(self._vectors(span))
        if not blocks:
            return {}
        q = np.asarray(q, dtype=np.float32)
        sims = np.concatenate(blocks) @ (q / (np.linalg.norm(q) or 1.0))
        order = np.argsort(-sims, kind="stable")[: sentences if sentences is not None else len(sims)]
        out: dict[str, float] = {}
        for k in order:
            out.setdefault(owners[k], float(sims[k]))
        return out

    def chunk(self, chunk_id: str) -> "ChunkSentences":
        """One chunk's sentences as stored here, to copy into the next snapshot unchanged."""
        span = self._span(chunk_id)
        return ChunkSentences(self._texts(span), self._rows(span).copy(), self.scales[span.start:span.stop].copy())


@dataclass
class ChunkSentences:
    texts: list[str]
    vectors: np.ndarray  # int8, one row per sentence
    scales: np.ndarray  # float32, one per row

    @classmethod
    def of(cls, texts: list[str], vectors: list | np.ndarray, dim: int) -> "ChunkSentences":
        q, scales = quantise(np.asarray(vectors, dtype=np.float32).reshape(len(texts), dim))
        return cls(list(texts), q, scales)
