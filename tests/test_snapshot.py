"""The snapshot readers see: only committed chunks, their metadata, and language centroids."""

from __future__ import annotations

import numpy as np

from qa.snapshot import Snapshot, language_centroids, manifest_key

from memstore import memory_store, unit


class _Vectors:
    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def read_chunks(self, ids, with_embeddings=False):
        return {"ids": ids, "embeddings": [self.vectors[i] for i in ids]}


def test_a_small_language_uses_the_mean_of_all_chunks():
    rng = np.random.default_rng(0)
    vectors = {f"fr{i}": rng.normal(size=8) for i in range(5)} | {"en0": rng.normal(size=8)}
    metas = {cid: {"language": cid[:2]} for cid in vectors}
    centroids = language_centroids(_Vectors(vectors), list(vectors), metas, min_chunks=5)
    overall = np.mean(list(vectors.values()), axis=0)
    assert np.allclose(centroids["en"], overall)
    assert np.allclose(centroids["fr"], np.mean([vectors[f"fr{i}"] for i in range(5)], axis=0))


def test_only_committed_chunks_are_visible():
    chunks = [{"id": f"c{i}", "source": f"d{i % 2}.txt", "language": "fr", "text": f"Texte {i}.",
               "vector": unit(1, i, 0)} for i in range(4)]
    store = memory_store(chunks, committed={"c0", "c2"})  # d1.txt's chunks were written but never committed
    snap = Snapshot.load(store, min_language_chunks=1)
    assert set(snap.texts) == {"c0", "c2"} and len(snap.lexical) == 2
    assert snap.metadatas["c0"]["source"] == "d0.txt"
    assert np.allclose(snap.centroids["fr"], np.mean([unit(1, 0, 0), unit(1, 2, 0)], axis=0), atol=1e-5)
    node = snap.node("c2", unit(1, 2, 0))
    assert node.get_content() == "Texte 2." and node.metadata["language"] == "fr"
    assert snap.manifest_key == manifest_key(store.manifest()) and "d0.txt" in snap.manifest_key
