"""Ingestion under faults: an exception mid-run, SIGKILL mid-run, and two ingestions at once.

The promise under test (qa/store.py): every document is either fully its old version or fully its new one,
readers only ever see committed chunks, and the next ingestion finishes the work and leaves no orphans.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import chromadb.api.models.Collection as chroma_collection
import pytest
from chromadb.errors import InternalError

import qa
from qa.chunking import chunk_text, make_splitter
from qa.embeddings import LocalEmbedding
from qa.ingest import writer_lock
from qa.loading import parse
from qa.store import Store
from qa.text import split_sentences

ingest_module = importlib.import_module("qa.ingest")  # `qa.ingest` is the function

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def seed_sentences(name: str) -> list[str]:
    text = parse((SEEDS / name).read_bytes(), name).text
    return [s.strip() for s in split_sentences(text) if len(s.strip()) > 30]


DELAY_FR = seed_sentences("000_5eaa805196ca9fd9.txt")
DELAY_AR = seed_sentences("001_63c18d8f06ac5383.txt")
LEAK_FR = seed_sentences("003_2a6568c6f07e6f37.txt")
POOL = DELAY_FR + LEAK_FR + DELAY_AR


def write(corpus: Path, name: str, sentences: list[str]) -> None:
    (corpus / name).write_text(" ".join(sentences) + "\n", encoding="utf-8")


def quiet(*_args) -> None:
    pass


def expected_ids(settings: qa.Settings, name: str) -> list[str]:
    text = parse((settings.corpus_dir / name).read_bytes(), name).text
    return [c.id for c in chunk_text(name, text, make_splitter(settings.chunk_size, settings.chunk_overlap))]


def assert_committed_chunks_complete(store: Store) -> None:
    """Every chunk a committed document lists is in the store, with its sentence vectors."""
    listed = [cid for r in store.manifest().values() for cid in r.chunk_ids]
    assert listed, "nothing committed"
    assert store.existing_chunk_ids(listed) == set(listed)
    with_sentences = {md["chunk_id"] for md in store.read_sentences(listed)["metadatas"]}
    assert with_sentences == set(listed), "a committed chunk has no sentence vectors"


def assert_no_orphans(store: Store) -> None:
    manifest = store.manifest()
    listed = [cid for r in manifest.values() for cid in r.chunk_ids]
    assert store.count() == len(listed) == len(set(listed))
    assert set(store.all_chunk_ids()) == set(listed)
    assert_committed_chunks_complete(store)
    per_chunk = Counter(md["chunk_id"] for md in store.read_sentences(listed)["metadatas"])
    assert store._get("__sent").count() == sum(per_chunk.values()), "sentences of no chunk are left"


def visible_ids_of(engine: qa.QAEngine, source: str) -> set[str]:
    return {cid for cid, md in engine.snapshot.metadatas.items() if md["source"] == source}


# --- an exception in the middle of a run -------------------------------------------------------


@pytest.fixture
def changed(fresh):
    """Three documents ingested, then a.txt and b.txt changed (b grows to more chunks); returns (settings, old)."""
    corpus = fresh.corpus_dir
    write(corpus, "a.txt", DELAY_FR[:4])
    write(corpus, "b.txt", DELAY_FR[4:8])
    write(corpus, "c.txt", DELAY_AR[:4])
    settings = fresh.replace(**{"embedding": "use"})
    qa.ingest(settings, progress=quiet)
    old = Store(settings).manifest()
    write(corpus, "a.txt", DELAY_FR[:4] + DELAY_FR[10:11])
    write(corpus, "b.txt", DELAY_FR[4:8] + LEAK_FR[:10])
    assert len(expected_ids(settings, "b.txt")) > len(old["b.txt"].chunk_ids)
    return settings, old


def fail_on_second(calls: list[int], exc: Exception):
    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise exc
    return check


@pytest.mark.parametrize("fault", ["embedding model", "manifest swap", "store write"])
def test_failure_mid_run_keeps_previous_version_and_next_run_completes(changed, fault, monkeypatch):
    settings, old = changed
    calls: list[int] = []
    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "GROUP_TEXTS", 1)  # one document per encode call, so one fails mid-run
        if fault == "embedding model":  # raises while embedding b.txt, the 2nd document to write
            check = fail_on_second(calls, RuntimeError("model crashed"))
            original = LocalEmbedding.encode

            def encode(self, texts, is_query=False):
                check()
                return original(self, texts, is_query)

            patch.setattr(LocalEmbedding, "encode", encode)
            expected = RuntimeError
        elif fault == "manifest swap":  # b.txt's new chunks are written, its manifest record is not
            check = fail_on_second(calls, RuntimeError("crashed before the swap"))
            original_commit = Store.commit_document

            def commit_document(self, record):
                check()
                return original_commit(self, record)

            patch.setattr(Store, "commit_document", commit_document)
            expected = RuntimeError
        else:  # Chroma fails while writing b.txt's chunks (after its sentences): a disk or server fault
            original_upsert = chroma_collection.Collection.upsert

            def upsert(self, *args, **kwargs):
                if not self.name.endswith(("__sent", "__docs")):
                    fail_on_second(calls, InternalError("disk I/O error"))()
                return original_upsert(self, *args, **kwargs)

            patch.setattr(chroma_collection.Collection, "upsert", upsert)
            expected = qa.StoreError
        with pytest.raises(expected):
            qa.ingest(settings, progress=quiet)

    store = Store(settings)
    manifest = store.manifest()
    assert manifest["a.txt"].file_hash != old["a.txt"].file_hash  # the 1st document was done
    assert manifest["b.txt"] == old["b.txt"] and manifest["c.txt"] == old["c.txt"]
    assert_committed_chunks_complete(store)

    engine = qa.QAEngine(settings)
    old_b = set(old["b.txt"].chunk_ids)
    assert visible_ids_of(engine, "b.txt") == old_b  # the old version, whole
    assert visible_ids_of(engine, "a.txt") == set(manifest["a.txt"].chunk_ids)
    committed = {cid for r in manifest.values() for cid in r.chunk_ids}
    for question in (LEAK_FR[0], DELAY_FR[5]):  # new-only text of b.txt, then text of its old version
        sources = engine.retrieve(question, top_k=10)
        assert sources and {s.chunk_id for s in sources} <= committed
        assert {s.chunk_id for s in sources if s.source == "b.txt"} <= old_b
    assert not engine.ask(DELAY_FR[5]).refused

    report = qa.ingest(settings, progress=quiet)

    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 1, 2, 0)
    assert store.manifest()["b.txt"].chunk_ids == expected_ids(settings, "b.txt")
    assert_no_orphans(store)
    engine.refresh()
    assert visible_ids_of(engine, "b.txt") == set(expected_ids(settings, "b.txt"))


def test_failed_rebuild_keeps_the_old_index(changed, monkeypatch):
    settings, old = changed
    calls: list[int] = []
    check = fail_on_second(calls, RuntimeError("model crashed"))
    original = LocalEmbedding.encode

    def encode(self, texts, is_query=False):
        check()
        return original(self, texts, is_query)

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "GROUP_TEXTS", 1)
        patch.setattr(LocalEmbedding, "encode", encode)
        with pytest.raises(RuntimeError):
            qa.ingest(settings, rebuild=True, progress=quiet)

    store = Store(settings)
    assert store.manifest() == old
    assert not qa.QAEngine(settings).ask(DELAY_FR[1]).refused
    report = qa.ingest(settings, rebuild=True, progress=quiet)
    assert (report.added, report.documents_total) == (3, 3)
    names = {c if isinstance(c, str) else c.name for c in store.client.list_collections()}
    assert names == {"test", "test__sent", "test__docs"}
    assert_no_orphans(store)


# --- SIGKILL in the middle of a run (a real separate process) ----------------------------------

DRIVER = r"""
import os, signal, sys, time
import chromadb.api.models.Collection as C
import qa

kill_at = os.environ.get("KILL_AT", "")  # "upsert:N" / "delete:N": SIGKILL itself at the N-th such Chroma call
if kill_at:
    method, n = kill_at.split(":")
    original, calls = getattr(C.Collection, method), []

    def hooked(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    setattr(C.Collection, method, hooked)
pause = float(os.environ.get("PAUSE_AFTER_DOC", "0"))
if os.environ.get("GROUP_TEXTS"):  # documents per encode call: small groups commit early
    import importlib
    importlib.import_module("qa.ingest").GROUP_TEXTS = int(os.environ["GROUP_TEXTS"])


def progress(done, total, source):
    print("progress", done, total, source, flush=True)
    time.sleep(pause)


report = qa.ingest(qa.load_settings(), progress=progress)
print("done", report.added, report.updated, report.unchanged, flush=True)
"""


def start_ingest(settings: qa.Settings, kill_at: str = "", pause: float = 0.0, group: int = 0) -> subprocess.Popen:
    env = dict(os.environ, GROUP_TEXTS=str(group or ""), QA_CORPUS_DIR=str(settings.corpus_dir), QA_PERSIST_DIR=str(settings.persist_dir),
               QA_COLLECTION=settings.collection, QA_EMBEDDING=settings.embedding, QA_MODE="offline",
               KILL_AT=kill_at, PAUSE_AFTER_DOC=str(pause), ANONYMIZED_TELEMETRY="False")
    return subprocess.Popen([sys.executable, "-c", DRIVER], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def synthetic_corpus(corpus: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        start = (i * 3) % (len(POOL) - 4)
        names.append(f"doc{i:02d}.txt")
        write(corpus, names[-1], [f"Dépêche numéro {i} sur Sora."] + POOL[start : start + 4])
    return names


def check_after_kill(settings: qa.Settings, names: list[str]) -> None:
    store = Store(settings)
    manifest = store.manifest()
    assert "doc00.txt" in manifest and len(manifest) < len(names), sorted(manifest)
    assert_committed_chunks_complete(store)

    engine = qa.QAEngine(settings)
    assert set(engine.snapshot.texts) == {cid for r in manifest.values() for cid in r.chunk_ids}
    answer = engine.ask(POOL[0])  # doc00's text, committed first
    assert not answer.refused and answer.citations[0].source == "doc00.txt"

    report = qa.ingest(settings, progress=quiet)
    assert report.documents_total == len(names) and report.added == len(names) - len(manifest)
    assert sorted(store.manifest()) == names
    for name in names:
        assert store.manifest()[name].chunk_ids == expected_ids(settings, name)
    assert_no_orphans(store)


@pytest.mark.parametrize("kill_at", ["upsert:5", "timed"])
def test_sigkill_during_first_ingestion(fresh, kill_at):
    """upsert:5 dies between doc01's sentence and chunk writes; 'timed' dies wherever it is just after doc00."""
    settings = fresh.replace(**{"embedding": "use"})
    names = synthetic_corpus(settings.corpus_dir, 16 if kill_at == "timed" else 3)
    if kill_at == "timed":
        proc = start_ingest(settings, group=8)  # a few documents per group: the kill lands mid-run
        for line in proc.stdout:
            if line.startswith("progress"):
                time.sleep(0.1)
                os.kill(proc.pid, signal.SIGKILL)
                break
        out = finish(proc)
    else:
        proc = start_ingest(settings, kill_at=kill_at)
        out = finish(proc)
    assert proc.returncode == -signal.SIGKILL, out
    check_after_kill(settings, names)


def test_sigkill_between_manifest_swap_and_cleanup(fresh):
    """A changed document is committed, then the process dies before deleting its old chunks."""
    settings = fresh.replace(**{"embedding": "use"})
    names = synthetic_corpus(settings.corpus_dir, 3)
    assert qa.ingest(settings, progress=quiet).added == 3
    write(settings.corpus_dir, "doc01.txt", LEAK_FR[:6])

    proc = start_ingest(settings, kill_at="delete:1")
    out = finish(proc)
    assert proc.returncode == -signal.SIGKILL, out

    store = Store(settings)
    store.reopen()  # this process had the store open while the other one wrote
    manifest = store.manifest()
    new_ids = expected_ids(settings, "doc01.txt")
    assert manifest["doc01.txt"].chunk_ids == new_ids
    assert_committed_chunks_complete(store)
    assert store.count() > sum(len(r.chunk_ids) for r in manifest.values())  # old chunks left behind
    engine = qa.QAEngine(settings)
    assert visible_ids_of(engine, "doc01.txt") == set(new_ids)
    old_text = POOL[3]  # a sentence of doc01's old version only
    assert all(s.chunk_id in engine.snapshot.texts for s in engine.retrieve(old_text, top_k=10))

    report = qa.ingest(settings, progress=quiet)
    assert (report.unchanged, report.updated) == (3, 0)
    assert sorted(store.manifest()) == names
    assert_no_orphans(store)


# --- two ingestions at once --------------------------------------------------------------------


@pytest.fixture
def served(fresh):
    settings = fresh.replace(**{"embedding": "use"})
    synthetic_corpus(settings.corpus_dir, 2)
    qa.ingest(settings, progress=quiet)
    return settings


def test_second_ingestion_is_refused_while_the_lock_is_held(served):
    engine = qa.QAEngine(served)
    write(served.corpus_dir, "doc09.txt", LEAK_FR[:3])
    with writer_lock(served):
        started = time.monotonic()
        with pytest.raises(qa.StoreError, match="another ingestion is writing"):
            qa.ingest(served, progress=quiet)
        assert time.monotonic() - started < 5  # refused at once, not after waiting
        answer = engine.ask(POOL[0])
        assert not answer.refused and answer.citations[0].source == "doc00.txt"
        assert not qa.QAEngine(served).ask(POOL[0]).refused
    assert qa.ingest(served, progress=quiet).added == 1  # the lock is released with its holder


def test_ingestion_in_another_process_refuses_a_second_one_while_readers_answer(served):
    engine = qa.QAEngine(served)
    names = synthetic_corpus(served.corpus_dir, 6)
    proc = start_ingest(served, pause=1.0)  # slow on purpose: ~1 s per document
    try:
        line = proc.stdout.readline()
        assert line.startswith("progress"), line + finish(proc)
        with pytest.raises(qa.StoreError, match="another ingestion is writing"):
            qa.ingest(served, progress=quiet)
        answered = 0
        while proc.poll() is None:
            answer = engine.ask(POOL[0])
            assert not answer.refused and answer.citations[0].source == "doc00.txt"
            answered += 1
        out = line + finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "done 4 0 2" in out, out
    assert answered >= 1

    engine.store.reopen()  # another process wrote: the embedded client must re-read the disk
    assert engine.refresh()
    assert engine.stats().documents == len(names)
    answer = engine.ask(POOL[5 * 3 + 1])  # text of doc05, added by the other process
    assert not answer.refused and answer.citations[0].source == "doc05.txt"
    assert_no_orphans(Store(served))


def test_refresh_sees_an_ingestion_by_another_process(served):
    engine = qa.QAEngine(served)
    write(served.corpus_dir, "late.txt", LEAK_FR[:4])
    proc = start_ingest(served)
    out = finish(proc)
    assert proc.returncode == 0, out
    assert engine.refresh()
    answer = engine.ask(LEAK_FR[0])
    assert not answer.refused and answer.citations[0].source == "late.txt"
