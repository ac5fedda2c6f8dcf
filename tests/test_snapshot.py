"""The snapshot readers see: only committed chunks, their metadata, and language centroids."""

from __future__ import annotations

import numpy as np
import pytest

from qa.snapshot import Bias, Centroids, Snapshot, manifest_key
from qa.store import DocRecord

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


# --- saved snapshots (qa.snapshot.Snapshot.load with a folder) ---------------------------------------------------

WORDS = ["Sora", "vidéo", "Hollywood", "minute", "OpenAI", "fuite", "artistes", "prix", "lancement", "modèle"]


def _chunks(n_docs: int, per_doc: int = 3) -> list[dict]:
    return [{"id": f"d{d}c{i}", "source": f"d{d}.txt", "language": "fr" if d % 2 else "en",
             "text": f"{WORDS[(d + i) % 10]} {WORDS[(3 * d + i) % 10]} {WORDS[d % 10]} texte {d} {i}.",
             "vector": unit(1, d, i, 0.5)} for d in range(n_docs) for i in range(per_doc)]


class CountingReads:
    """Counts the chunk ids the snapshot reads from the store."""

    def __init__(self, store, monkeypatch):
        self.ids: list[str] = []
        original = store.read_chunks

        def read(ids=None, with_embeddings=False):
            self.ids += list(ids or [])
            return original(ids, with_embeddings)

        monkeypatch.setattr(store, "read_chunks", read)


def _same(a: Snapshot, b: Snapshot) -> None:
    assert list(a.metadatas) == list(b.metadatas) and a.manifest_key == b.manifest_key
    assert [a.metadatas[c] for c in a.metadatas] == [b.metadatas[c] for c in b.metadatas]
    for terms in (["sora", "hollywood"], ["fuite", "prix", "texte"], ["absent"]):
        hits = [{cid: (round(score, 5), round(cov, 5)) for cid, score, cov in x.lexical.search(terms, 30)} for x in (a, b)]
        assert hits[0] == hits[1]
    assert a.lexical.idf("sora") == pytest.approx(b.lexical.idf("sora"))
    assert sorted(a.sample) == sorted(b.sample)
    q = np.asarray(unit(1, 2, 3, 4), dtype=np.float32)
    assert a.centroids.bias(q)("fr") == pytest.approx(b.centroids.bias(q)("fr"))
    assert a.documents == b.documents and a.records == b.records


def test_a_saved_snapshot_reopens_without_reading_any_chunk(tmp_path, monkeypatch):
    chunks = _chunks(6)
    store = memory_store(chunks)
    first = Snapshot.load(store, 1, tmp_path)
    assert first.folder is not None and (first.folder / "snapshot.json").is_file()
    reads = CountingReads(store, monkeypatch)
    again = Snapshot.load(store, 1, tmp_path)
    assert again.folder == first.folder and reads.ids == []
    _same(again, first)
    text = next(c["text"] for c in chunks if c["id"] == "d2c1")
    assert again.texts["d2c1"] == text and reads.ids == ["d2c1"]  # fetched when first used


def test_a_new_manifest_reads_only_the_documents_that_changed_and_equals_a_full_build(tmp_path, monkeypatch):
    chunks = _chunks(8)
    store = memory_store(chunks, committed={c["id"] for c in chunks if c["source"] != "d7.txt"})
    old = Snapshot.load(store, 1, tmp_path)
    assert "d7.txt" not in old.documents
    store.commit_document(DocRecord("d7.txt", "hash-d7.txt", "sig", "d7.txt", "fr", "", "", ["d7c0", "d7c1", "d7c2"]))
    store.forget_document("d0.txt")
    reads = CountingReads(store, monkeypatch)
    new = Snapshot.load(store, 1, tmp_path)
    assert sorted(reads.ids) == ["d7c0", "d7c1", "d7c2"]
    assert "d7.txt" in new.documents and "d0.txt" not in new.documents and "d0c0" not in new.texts
    _same(new, Snapshot.load(store, 1))  # the same as built from scratch, in memory
    assert len(list(tmp_path.glob("v*-*"))) == 2  # the previous one is kept for readers still on it


def test_a_damaged_or_half_written_snapshot_is_rebuilt_not_trusted(tmp_path):
    store = memory_store(_chunks(4))
    snap = Snapshot.load(store, 1, tmp_path)
    (snap.folder / "snapshot.json").write_text('{"manifest_key": ', encoding="utf-8")  # cut short
    (tmp_path / ".tmp-killed-writer").mkdir()  # what a writer killed mid-save leaves
    again = Snapshot.load(store, 1, tmp_path)
    _same(again, Snapshot.load(store, 1))


def test_chunks_written_but_not_committed_stay_invisible_in_a_saved_snapshot(tmp_path):
    chunks = _chunks(3)
    store = memory_store(chunks, committed={c["id"] for c in chunks if c["source"] == "d0.txt"})
    Snapshot.load(store, 1, tmp_path)
    snap = Snapshot.load(store, 1, tmp_path)
    assert set(snap.texts) == {"d0c0", "d0c1", "d0c2"} and len(snap.lexical) == 3


def test_an_unwritable_snapshot_folder_leaves_the_snapshot_in_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = memory_store(_chunks(2))
    snap = Snapshot.load(store, 1, blocker / "snapshots")
    assert snap.folder is None and len(snap.texts) == 6
