"""Shared fixtures: a real store built once per session from the real seeds with the real models."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from qa.settings import apply_process_defaults

apply_process_defaults()  # the test run is an entry point like app.py: no telemetry, no hub downloads

import qa  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_heartbeat(port: int, proc: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chroma run exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("chroma run did not answer its heartbeat in time")


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` on a free loopback port; yields (port, stop) where stop() ends it early."""
    port = free_port()
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    log = tmp_path / "chroma-server.log"  # a file, not a pipe: the server logs every request and would block
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("chroma")), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "chroma-server")],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    try:
        wait_for_heartbeat(port, proc, log, time.monotonic() + 60)
        yield port, stop
    finally:
        stop()


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


@pytest.fixture(scope="session")
def embedding():
    """The default local embedding model (real weights from site-packages), loaded once."""
    from qa.embeddings import make_embedding

    return make_embedding(qa.Settings())


# Debian's Chromium, headless, with nothing that calls out of this machine (its closed network refuses it).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_lantern_corpus(folder: Path) -> Path:
    """A one-article corpus with a fact found nowhere else (900 lanterns), for tests of a fresh app.py."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "note.md").write_text(
        "# Harbour lanterns\n\nThe harbour of Quentaria lit 900 paper lanterns for the winter solstice.\n",
        encoding="utf-8",
    )
    return folder


@contextmanager
def run_app_py(args: list[str], env: dict, cwd: Path, log_path: Path, ready_url: str,
               ready_status: tuple[int, ...] = (200,), timeout: float = 240):
    """`python app.py ARGS` as a user runs it, until ready_url answers one of ready_status; stopped afterwards.
    Yields the process; its output goes to log_path."""
    import subprocess
    import sys
    import time

    import httpx

    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(ready_url, timeout=2).status_code in ready_status:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                pytest.fail("app.py did not serve in time:\n" + log_path.read_text())
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
