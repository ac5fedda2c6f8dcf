"""The snapshot's sentence table: what a reader uses instead of Chroma's sentence collection."""

from __future__ import annotations

import numpy as np
import pytest

import qa
from qa.sentences import ChunkSentences, SentenceTable, quantise
from qa.snapshot import Snapshot
from qa.store import DocRecord, Store

from memstore import memory_store, unit


def test_int8_rows_keep_cosines_within_a_hundredth_and_survive_a_copy():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(200, 896)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q, scales = quantise(v)
    back = q.astype(np.float32) * scales[:, None]
    probe = v[0]
    assert q.dtype == np.int8 and np.abs(back @ probe - v @ probe).max() < 0.01
    q2, scales2 = quantise(back)  # copied into the next snapshot: the same bytes, not a second rounding
    assert np.array_equal(q, q2) and np.allclose(scales, scales2)


def _chunks():
    return [{"id": f"c{i}", "source": f"d{i % 2}.txt", "language": "fr", "text": f"Phrase un {i}. Phrase deux {i}.",
             "vector": unit(1, i, 0), "sentences": [(f"Phrase un {i}.", unit(1, i, 0)), (f"Phrase deux {i}.", unit(0, 1, i))]}
            for i in range(4)]


def test_the_table_reads_what_the_store_holds_and_reloads_from_disk(tmp_path):
    store = memory_store(_chunks())
    snap = Snapshot.load(store, min_language_chunks=1, folder=tmp_path)
    ids = ["c2", "c0", "missing"]
    mine, theirs = snap.sentences.read_sentences(ids), store.read_sentences(["c2", "c0"])
    stored = {(md["chunk_id"], md["index"]): (t, np.asarray(e))
              for t, md, e in zip(theirs["documents"], theirs["metadatas"], theirs["embeddings"])}
    assert [(md["chunk_id"], md["index"]) for md in mine["metadatas"]] == [("c2", 0), ("c2", 1), ("c0", 0), ("c0", 1)]
    for t, md, e in zip(mine["documents"], mine["metadatas"], mine["embeddings"]):
        text, vec = stored[(md["chunk_id"], md["index"])]
        assert t == text and np.abs(e - vec).max() < 0.01
    assert not snap.sentences.in_memory  # once saved, read from the files (the built copy is freed)
    reopened = Snapshot.load(store, min_language_chunks=1, folder=tmp_path)
    assert not reopened.sentences.in_memory
    assert reopened.sentences.read_sentences(ids)["documents"] == mine["documents"]
    q = np.asarray(unit(0, 1, 3))
    best = reopened.sentences.best(q, ["c3", "c1"])
    assert best["c3"] == pytest.approx(max(float(np.dot(unit(1, 3, 0), q)), float(np.dot(unit(0, 1, 3), q))), abs=0.01)
    assert set(best) == {"c3", "c1"} and reopened.sentences.best(q, []) == {}
    assert list(reopened.sentences.best(q, ["c1", "c3"], sentences=1)) == ["c3"]  # the chunk of the best sentence


def test_a_table_that_does_not_match_its_chunks_is_refused(tmp_path):
    table = SentenceTable.build({"a": 0}, [ChunkSentences.of(["x."], [[1.0, 0.0]], 2)], 2)
    table.save(tmp_path)
    with pytest.raises(ValueError, match="does not match"):
        SentenceTable.load(tmp_path, {"a": 0, "b": 1})


def test_a_new_snapshot_copies_unchanged_documents_and_reads_only_the_new_one(tmp_path, monkeypatch):
    chunks = _chunks()
    store = memory_store(chunks, committed={"c0", "c2"})
    first = Snapshot.load(store, min_language_chunks=1, folder=tmp_path)
    store.commit_document(DocRecord("d1.txt", "hash-d1.txt", "sig", "d1.txt", "fr", "", "", ["c1", "c3"]))
    asked: list[list[str]] = []
    real = Store.read_sentences
    monkeypatch.setattr(Store, "read_sentences", lambda self, ids: asked.append(sorted(ids)) or real(self, ids))
    second = Snapshot.load(store, min_language_chunks=1, folder=tmp_path, previous=first)
    assert asked == [["c1", "c3"]]
    assert second.sentences.read_sentences(["c0"])["documents"] == first.sentences.read_sentences(["c0"])["documents"]
    assert second.sentences.read_sentences(["c3"])["documents"] == ["Phrase un 3.", "Phrase deux 3."]


def test_answering_never_opens_the_store_sentence_collection(seeded, monkeypatch):
    """Chroma loads a collection's whole HNSW index on any access: readers go through the snapshot's table."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("a reader opened the sentence collection")

    qa.QAEngine(seeded)  # derives and saves the snapshot if no one has yet (that reads the store of record)
    monkeypatch.setattr(Store, "read_sentences", refuse)
    engine = qa.QAEngine(seeded)
    answer = engine.ask("Qui a divulgué Sora ?")
    assert answer.citations and "Sora PR Puppets" in answer.text
    assert engine.ask("Summarize the articles").citations
