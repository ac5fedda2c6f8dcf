"""The snapshot readers see: only committed chunks, their metadata, and language centroids."""

from __future__ import annotations

import numpy as np
import pytest

from qa.snapshot import Bias, Centroids, Snapshot, manifest_key

from memstore import memory_store, unit


def test_the_bias_is_the_median_similarity_of_a_language_so_one_true_match_barely_moves_it():
    rng = np.random.default_rng(0)
    background = rng.normal(size=(9, 8))
    q = rng.normal(size=8)
    match = 10 * q / np.linalg.norm(q)  # one chunk that truly matches the question
    vectors = np.vstack([background, match])
    bias = Centroids(vectors, ["fr"] * 10, min_chunks=5).bias(q)
    assert bias("fr") == pytest.approx(float(np.median(vectors.astype(np.float16).astype(np.float32) @ q)), rel=1e-4)
    assert bias("fr") < float(np.mean(vectors @ q))  # a mean would be pulled up by the match


def test_a_small_language_is_measured_on_all_chunks():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 8))
    q = rng.normal(size=8)
    bias = Centroids(vectors, ["fr"] * 5 + ["en"], min_chunks=5).bias(q)
    overall = float(np.median(vectors.astype(np.float16).astype(np.float32) @ q))
    assert bias("en") == pytest.approx(overall, rel=1e-4) and bias("de") == pytest.approx(overall, rel=1e-4)
    assert Bias.constant({"fr": 0.3})("fr") == 0.3 and Bias.constant()("fr") == 0.0


def test_only_committed_chunks_are_visible():
    chunks = [{"id": f"c{i}", "source": f"d{i % 2}.txt", "language": "fr", "text": f"Texte {i}.",
               "vector": unit(1, i, 0)} for i in range(4)]
    store = memory_store(chunks, committed={"c0", "c2"})  # d1.txt's chunks were written but never committed
    snap = Snapshot.load(store, min_language_chunks=1)
    assert set(snap.texts) == {"c0", "c2"} and len(snap.lexical) == 2
    assert snap.metadatas["c0"]["source"] == "d0.txt"
    assert len(snap.centroids.by_language["fr"]) == 2
    node = snap.node("c2", unit(1, 2, 0))
    assert node.get_content() == "Texte 2." and node.metadata["language"] == "fr"
    assert snap.manifest_key == manifest_key(store.manifest()) and "d0.txt" in snap.manifest_key
