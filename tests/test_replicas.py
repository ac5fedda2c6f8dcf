"""Scale-out on one real `chroma run`: two `app.py` replicas and a separate `qa ingest` share its collection.

A document the third process ingests becomes answerable in both apps without a restart; a replica with an
empty local cache derives its snapshot once (and says so); restarted with its cache, it derives nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, run_app_py, write_lantern_corpus

BRIDGE = "# The Zorvath bridge\n\nThe Zorvath footbridge over the Kessel river is 412 metres long and opened in 2019.\n"
LANTERNS = "How many lanterns did the harbour light?"
BRIDGE_QUESTION = "How long is the Zorvath footbridge?"
DERIVING = "deriving the index snapshot"


def ask(port: int, question: str) -> dict:
    """One question through the app's OpenAI-compatible endpoint (the same engine as the chat UI)."""
    r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120,
                   json={"model": "qa-news", "messages": [{"role": "user", "content": question}]})
    assert r.status_code == 200, r.text
    return r.json()


def answered_from(reply: dict, source: str, fact: str) -> bool:
    text = reply["choices"][0]["message"]["content"]
    return fact in text and any(c["source"] == source for c in reply["citations"])


def qa_ingest(env: dict, cwd: Path) -> str:
    proc = subprocess.run([str(Path(sys.executable).with_name("qa")), "ingest"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_two_app_replicas_and_a_separate_ingest_share_one_chroma_server(chroma_server, tmp_path):
    port, _ = chroma_server
    corpus = write_lantern_corpus(tmp_path / "corpus")
    base = {**os.environ, "QA_CHROMA_HOST": "127.0.0.1", "QA_CHROMA_PORT": str(port), "QA_CORPUS_DIR": str(corpus),
            "QA_COLLECTION": "shared", "QA_MODE": "offline", "QA_HOST": "127.0.0.1", "QA_REFRESH_SECONDS": "1"}
    base.pop("OPENAI_API_KEY", None)
    env = {name: {**base, "QA_PERSIST_DIR": str(tmp_path / name)} for name in ("ingest", "app1", "app2")}
    assert "1 added" in qa_ingest(env["ingest"], tmp_path)

    ports = {"app1": free_port(), "app2": free_port()}
    logs = {name: tmp_path / f"{name}.log" for name in ports}
    with run_app_py(["--port", str(ports["app1"])], env["app1"], tmp_path, logs["app1"],
                    f"http://127.0.0.1:{ports['app1']}/"), \
         run_app_py(["--port", str(ports["app2"])], env["app2"], tmp_path, logs["app2"],
                    f"http://127.0.0.1:{ports['app2']}/"):
        for name, p in ports.items():
            assert answered_from(ask(p, LANTERNS), "note.md", "900")
            assert DERIVING in logs[name].read_text()  # an empty local cache: derived once, and said
            assert list((tmp_path / name / "snapshots" / "shared").glob("v*-*"))
            assert not answered_from(ask(p, BRIDGE_QUESTION), "bridge.md", "412")

        (corpus / "bridge.md").write_text(BRIDGE, encoding="utf-8")
        assert "1 added" in qa_ingest(env["ingest"], tmp_path)  # a third process, while both apps serve

        deadline = time.monotonic() + 90
        pending = set(ports)
        while pending and time.monotonic() < deadline:
            pending = {name for name in pending if not answered_from(ask(ports[name], BRIDGE_QUESTION), "bridge.md", "412")}
            time.sleep(1)
        assert not pending, {name: logs[name].read_text()[-2000:] for name in pending}
        for name, p in ports.items():  # the first document is still answered
            assert answered_from(ask(p, LANTERNS), "note.md", "900")
            assert "Traceback" not in logs[name].read_text()

    # Restarted with its cache, a replica opens the saved snapshot: nothing derived again.
    restart_log = tmp_path / "app1-restart.log"
    with run_app_py(["--port", str(ports["app1"])], env["app1"], tmp_path, restart_log,
                    f"http://127.0.0.1:{ports['app1']}/"):
        assert answered_from(ask(ports["app1"], BRIDGE_QUESTION), "bridge.md", "412")
        output = restart_log.read_text()
        assert DERIVING not in output and "Traceback" not in output, output[-2000:]
