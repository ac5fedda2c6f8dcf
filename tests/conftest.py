"""Shared fixtures: a real store built once per session from the real seeds with the real models."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

import qa
from qa.loadtest import free_port  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def seeded(tmp_path_factory) -> qa.Settings:
    """Settings of a store holding the five seeds, ingested once for the whole session (read-only use)."""
    base = tmp_path_factory.mktemp("seeded")
    corpus = base / "corpus"
    shutil.copytree(SEEDS, corpus)
    settings = qa.Settings(corpus_dir=corpus, persist_dir=base / "store", collection="seeds", mode="offline")
    qa.ingest(settings)
    return settings


@pytest.fixture(scope="session")
def engine(seeded) -> qa.QAEngine:
    return qa.QAEngine(seeded)


@pytest.fixture
def fresh(tmp_path) -> qa.Settings:
    """Settings of an empty corpus and store in a temporary folder, for tests that write."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    return qa.Settings(corpus_dir=corpus, persist_dir=tmp_path / "store", collection="test", mode="offline")


@contextmanager
def serve(settings: qa.Settings, embed_model):
    """The real web app on settings.port, closed afterwards: yields (url, settings, engine, demo)."""
    from qa import ui

    app_engine = qa.QAEngine(settings, embed_model=embed_model)
    demo = ui.build_app(app_engine, settings)
    _, url, _ = ui.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield url, settings, app_engine, demo
    finally:
        demo.close()
