"""A real Chroma store in memory, filled with hand-made vectors, for fast component tests."""

from __future__ import annotations

import itertools

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

import qa
from qa.store import DocRecord, Store

_names = itertools.count()


def unit(*xs: float) -> list[float]:
    v = np.asarray(xs, dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


def memory_store(chunks: list[dict], committed: set[str] | None = None) -> Store:
    """chunks: dicts with id, source, language, text, vector and sentences [(text, vector), ...].

    Only the documents of `committed` chunk ids (default: all) are listed in the manifest.
    """
    settings = qa.Settings(_env_file=None, collection=f"mem{next(_names)}", mode="offline")
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    store = Store(settings, client=client)
    dim = len(chunks[0]["vector"])
    store.create("test-model", dim)
    committed = {c["id"] for c in chunks} if committed is None else committed
    for c in chunks:
        md = {"source": c["source"], "title": c.get("title", c["source"]), "language": c["language"], "url": "",
              "date": "", "position": 0, "chunk_id": c["id"]}
        sentences = c.get("sentences", [(c["text"], c["vector"])])
        rows = ([f"{c['id']}:{i}" for i in range(len(sentences))], [s for s, _ in sentences],
                [v for _, v in sentences], [{"chunk_id": c["id"], "source": c["source"], "index": i}
                                            for i in range(len(sentences))])
        store.write_chunks([c["id"]], [c["text"]], [c["vector"]], [md], rows)
    by_source: dict[str, list[str]] = {}
    for c in chunks:
        if c["id"] in committed:
            by_source.setdefault(c["source"], []).append(c["id"])
    for source, ids in by_source.items():
        lang = next(c["language"] for c in chunks if c["source"] == source)
        store.commit_document(DocRecord(source, f"hash-{source}", "sig", source, lang, "", "", ids))
    return store
