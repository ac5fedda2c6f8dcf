"""Start-up: the page is served while the engine loads in the background (qa.loader.EngineLoader); questions
asked meanwhile wait and are answered, and a failed start ends in one clear line, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import qa
from qa import ui
from qa.loader import LOADING, EngineLoader

from conftest import ROOT, free_port


def test_loader_waits_for_the_engine_and_reads_through():
    gate = threading.Event()

    class Engine:
        mode_label = "offline extractive"

    loader = EngineLoader(lambda: (gate.wait(10), Engine())[1]).start()
    assert not loader.done and not loader.ready
    with pytest.raises(qa.StoreError, match="still loading"):
        loader.result(timeout=0.05)
    gate.set()
    assert loader.mode_label == "offline extractive"  # attribute reads wait for the engine
    assert loader.ready and loader.error is None and loader.seconds > 0
    assert loader.start() is loader  # a second start does nothing


def test_loader_turns_an_unexpected_error_into_one_line():
    def broken():
        raise RuntimeError("disk on fire")

    loader = EngineLoader(broken).start()
    loader.wait(10)
    assert loader.done and not loader.ready
    with pytest.raises(qa.StoreError, match="could not be opened") as info:
        loader.result()
    assert "\n" not in str(info.value) and "disk on fire" in str(info.value)
    with pytest.raises(qa.StoreError):
        loader.stream("anything")


def copy_store(seeded, base):
    shutil.copytree(seeded.corpus_dir, base / "corpus")
    shutil.copytree(seeded.persist_dir, base / "store")
    return qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection=seeded.collection,
                       mode="offline", port=free_port())


@pytest.mark.slow
def test_page_is_served_while_the_engine_loads_and_the_first_question_waits(seeded, embedding, tmp_path):
    settings = copy_store(seeded, tmp_path)
    gate = threading.Event()

    def slow_open():
        gate.wait(60)
        return qa.QAEngine(settings, embed_model=embedding)

    loader = EngineLoader(slow_open).start()
    demo = ui.build_app(loader, settings)
    _, url, _ = ui.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "Loading the index" in page.text  # the status line says so
        client = Client(url, verbose=False)
        job = client.submit("Why was Sora's release delayed?", None, api_name="/chat")
        deadline = time.monotonic() + 30
        while not job.outputs() and time.monotonic() < deadline:  # the first streamed event: "loading"
            time.sleep(0.1)
        assert job.outputs() and job.outputs()[0]["status"] == LOADING and not job.done()
        gate.set()
        answer = job.result(timeout=120)
        assert answer["done"] and answer["citations"] and not answer["refused"]
        assert "Corpus:" in demo.qa_ui.status_html()  # once open, the header shows the corpus
        # The browser handler shows the same note in the sources panel while it waits.
        assert client.predict("Which Hollywood actor is testing Sora?", None, api_name="/ask")["citations"]
    finally:
        gate.set()
        demo.close()


def test_browser_handler_says_the_index_is_loading(seeded, embedding):
    gate = threading.Event()
    loader = EngineLoader(lambda: (gate.wait(60), qa.QAEngine(seeded, embed_model=embedding))[1]).start()
    handler = ui.UI(loader, seeded)
    steps = handler.respond("Why was Sora's release delayed?", [], [])
    first = next(steps)
    assert LOADING in first[2]  # the sources panel
    gate.set()
    *_, last = steps
    turns = last[3]
    assert turns[-1].answer is not None and turns[-1].answer.citations


@pytest.mark.slow
def test_a_store_error_during_the_load_is_shown_clearly(seeded, tmp_path):
    settings = copy_store(seeded, tmp_path)

    def bad_store():
        raise qa.StoreError("the store at /nowhere cannot be read")

    demo = ui.build_app(EngineLoader(bad_store).start(), settings)
    _, url, _ = ui.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(AppError, match="The index is unavailable: the store at /nowhere cannot be read"):
            Client(url, verbose=False).predict("Why was Sora's release delayed?", None, api_name="/ask")
        assert "The index is unavailable" in demo.qa_ui.status_html()
    finally:
        demo.close()


@pytest.mark.slow
def test_app_py_exits_with_one_line_when_the_store_is_bad(tmp_path):
    (tmp_path / "store").write_text("not a folder")  # neither openable nor ingestable
    env = {**os.environ, "QA_PERSIST_DIR": str(tmp_path / "store"), "QA_CORPUS_DIR": str(ROOT / "seeds"),
           "QA_MODE": "offline", "QA_PORT": str(free_port())}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "writable folder" in errors[0]
    assert "Traceback" not in proc.stderr
