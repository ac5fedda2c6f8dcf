"""The web UI: rendering and upload checks as units, then the real app served on a free port and driven
with gradio_client, and `python app.py` itself as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import qa
from qa import ui
from qa.schema import Answer, Citation, Progress

from conftest import ROOT, free_port, run_app_py, serve, write_lantern_corpus


def cite(n=1, **kw) -> Citation:
    base = dict(number=n, source="a/doc.txt", title="Title", snippet="The quoted sentence.", score=0.7,
                language="en", passage="Before it. The quoted sentence. After it.")
    return Citation(**{**base, **kw})

def test_history_accepts_pairs_and_chatbot_messages():
    assert ui.history_pairs([["q1", "a1"], ("q2", None)]) == [("q1", "a1"), ("q2", "")]
    messages = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": [{"type": "text", "text": "a1"}]}]
    assert ui.history_pairs(messages) == [("q1", "a1")]
    assert ui.history_pairs(None) == []
    with pytest.raises(qa.ConfigError):
        ui.history_pairs([42])


def test_short_errors_never_show_internals():
    assert ui.short_error(RuntimeError("Traceback secret /etc/x")) == ui.GENERIC_ERROR
    assert "empty" in ui.short_error(qa.ConfigError("the question is empty"))
    assert ui.short_error(qa.LLMError("timed out")).startswith("The language model failed")


# --- the chat handler, on a stub engine -----------------------------------------------------------------

class StubEngine:
    """Streams two parts then a final Answer, or raises what it is told to."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls = []

    def stream(self, question, history=None, progress=False):
        self.calls.append((question, list(history or [])))
        if progress:  # what an LLM answer reports while the server reads the prompt
            yield Progress("reading", 812, 1.5)
        yield "First part [1]"
        if self.error:
            raise self.error
        yield " second part [2]"
        yield Answer("First part [1] second part [2]", [cite(1), cite(2)], question=question, language="en")


def run(handler, *args):
    return list(handler.respond(*args))


def test_respond_streams_then_shows_sources_and_keeps_history():
    engine = StubEngine()
    handler = ui.UI(engine, qa.Settings(max_question_chars=50))
    steps = run(handler, "  What happened?  ", [], [])
    textbox, messages, sources, turns, notice = steps[-1]
    assert steps[0][0] == ""  # the textbox is cleared as soon as the question is taken
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "reading 812 tokens of sources" in steps[1][2]  # the sources panel says what the answer waits for
    assert "qa-typing" in steps[2][1][-1]["content"] and "qa-typing" not in messages[-1]["content"]
    assert sources.count('class="qa-source"') == 2 and notice == ""
    assert turns[0].question == "What happened?" and turns[0].answer.citations
    # The next question carries the finished turn as history.
    run(handler, "And then?", messages, turns)
    assert engine.calls[-1] == ("And then?", [("What happened?", "First part [1] second part [2]")])


@pytest.mark.parametrize("question,expected", [("", "the question is empty"), ("x" * 51, "the limit is 50")])
def test_respond_refuses_politely_without_touching_the_chat(question, expected):
    engine = StubEngine()
    steps = run(ui.UI(engine, qa.Settings(max_question_chars=50)), question, [{"role": "user", "content": "old"}], [])
    assert len(steps) == 1 and not engine.calls
    _, messages, _, _, notice = steps[0]
    assert messages == [{"role": "user", "content": "old"}]
    assert "Sorry, I can&#x27;t take this question" in notice and expected in notice


@pytest.mark.parametrize(
    "error,shown",
    [
        (qa.StoreError("the index at x is gone"), "The index is unavailable: the index at x is gone."),
        (qa.LLMError("the LLM endpoint timed out"), "The language model failed: the LLM endpoint timed out."),
        (RuntimeError("secret internals"), ui.GENERIC_ERROR),
    ],
)
def test_respond_turns_errors_into_short_messages(error, shown, caplog):
    steps = run(ui.UI(StubEngine(error), qa.Settings()), "Why?", [], [])
    _, messages, sources, _, notice = steps[-1]
    assert ui.esc(shown) in notice and ui.esc(shown) in messages[-1]["content"]
    assert "First part" in messages[-1]["content"]  # what was streamed stays visible
    assert "secret internals" not in notice + sources + messages[-1]["content"]
    if isinstance(error, RuntimeError):
        assert "secret internals" in caplog.text  # the traceback goes to the server log


def test_stop_marks_the_unfinished_answer_and_select_shows_a_turns_sources():
    handler = ui.UI(StubEngine(), qa.Settings())
    steps = run(handler, "Why?", [], [])
    partial_messages = steps[2][1]  # as if stopped during streaming (steps[1] is the progress line)
    unfinished = [ui.Turn("Why?", None, "First part [1]")]
    messages, turns, sources = ui.UI.stopped(partial_messages, unfinished)
    assert "Stopped." in messages[-1]["content"] and "First part" in messages[-1]["content"]
    assert "Stopped before" in sources
    _, messages, _, turns, _ = steps[-1]
    assert ui.UI.stopped(messages, turns)[0] == messages  # a finished answer is left as it is
    import gradio as gr

    event = gr.SelectData(None, {"index": 1, "value": "x"})
    assert "qa-source" in ui.UI.select(turns, event)


# --- upload checks ----------------------------------------------------------------------------------
def test_status_shows_llm_model_and_host_never_the_key(seeded, engine):
    settings = qa.Settings(corpus_dir=seeded.corpus_dir, persist_dir=seeded.persist_dir, collection=seeded.collection,
                           mode="llm", llm_base_url="http://127.0.0.1:9/v1", llm_api_key="sk-test-SECRET")
    llm_engine = qa.QAEngine(settings, embed_model=engine.embed_model)
    html = ui.render_status_html(llm_engine)
    assert "gpt-4o-mini @ 127.0.0.1:9" in html and "SECRET" not in html and "sk-" not in html
    offline = ui.render_status_html(engine)
    assert "offline extractive" in offline
    assert re.search(r'class="qa-docs">5<', offline) and re.search(r'class="qa-chunks">\d+<', offline)
    assert "fr (3)" in offline and "zh (1)" in offline and "ar (1)" in offline


# --- the real app, served and called with gradio_client ------------------------------------------------

def copy_store(seeded: qa.Settings, base: Path, **overrides) -> qa.Settings:
    """A private, writable copy of the seeded corpus and store."""
    shutil.copytree(seeded.corpus_dir, base / "corpus")
    shutil.copytree(seeded.persist_dir, base / "store")
    return qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection=seeded.collection,
                       mode="offline", **overrides)


@pytest.fixture(scope="module")
def served(seeded, engine, tmp_path_factory):
    settings = copy_store(seeded, tmp_path_factory.mktemp("ui"), max_upload_bytes=20_000, port=free_port())
    with serve(settings, engine.embed_model) as served_app:
        yield served_app


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0], verbose=False, download_files=False)


def check_cited(result: dict) -> None:
    assert result["done"] is True and not result["refused"]
    numbers = [c["number"] for c in result["citations"]]
    assert numbers and sorted(set(int(n) for n in re.findall(r"\[(\d+)\]", result["text"]))) == sorted(numbers)
    for c in result["citations"]:
        assert c["snippet"] and c["snippet"] in c["passage"] and c["title"] and c["source"] and c["language"]


@pytest.mark.slow
def test_chat_streams_cited_answers_in_two_languages(client):
    job = client.submit("Why was Sora's release delayed?", None, api_name="/chat")
    final = job.result(timeout=120)
    outputs = job.outputs()
    assert any(o.get("done") is False and o["text"] for o in outputs[:-1]), "the answer was not streamed"
    check_cited(final)
    assert final["language"] == "en"

    final = client.predict("Sora 可以生成多长的视频？", [], api_name="/chat")
    check_cited(final)
    assert final["language"] == "zh"
    assert any(s in final["text"] for s in ("60 秒", "一分钟")), final["text"]


@pytest.mark.slow
def test_ask_returns_the_answer_as_a_dict(client):
    result = client.predict("Which Hollywood actor is testing OpenAI's Sora model?", api_name="/ask")
    assert set(qa.Answer("").to_dict()) <= set(result)
    assert result["citations"] and result["mode"] == "extractive"


@pytest.mark.slow
def test_follow_up_uses_history(client):
    first_q = "Which Hollywood actor is testing Sora?"
    first = client.predict(first_q, None, api_name="/ask")
    follow_up = "When did he test it?"
    alone = client.predict(follow_up, None, api_name="/ask")
    with_history = client.predict(follow_up, [[first_q, first["text"]]], api_name="/ask")
    check_cited(with_history)
    seen = with_history["text"] + " ".join(c["passage"] for c in with_history["citations"])
    # The previous turn is about Hollywood actors: only the follow-up that knows it finds Ashton Kutcher.
    assert "Kutcher" in seen and "Kutcher" not in alone["text"]
    assert with_history["text"] != alone["text"]


@pytest.mark.slow
def test_empty_and_over_long_questions_are_refused_politely(client, served):
    settings = served[1]
    for question in ("", "   \n\t ", "\u200b"):
        with pytest.raises(AppError, match=r"Sorry, I can't take this question: the question is empty"):
            client.predict(question, None, api_name="/chat")
    with pytest.raises(AppError, match=rf"limit is {settings.max_question_chars}") as info:
        client.predict("why " * settings.max_question_chars, None, api_name="/ask")
    assert "Traceback" not in str(info.value)
    with pytest.raises(AppError, match="history must be a list"):
        client.predict("Why?", [1, 2], api_name="/ask")


def corpus_state(settings: qa.Settings, engine: qa.QAEngine):
    files = sorted(str(p.relative_to(settings.corpus_dir)) for p in Path(settings.corpus_dir).rglob("*"))
    manifest = {s: r.file_hash for s, r in engine.store.manifest().items()}
    return files, manifest, engine.store.count()


@pytest.mark.slow
def test_bad_uploads_change_nothing(client, served, tmp_path):
    _, settings, app_engine, _ = served
    before = corpus_state(settings, app_engine)
    bad = {
        "image.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "report.pdf": b"%PDF-1.4 not a text file",
        "latin1.md": "caf\u00e9".encode("latin-1") * 20,
        "empty.html": b"<html><body>   </body></html>",
        "duplicate.txt": (Path(settings.corpus_dir) / "000_5eaa805196ca9fd9.txt").read_bytes(),
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        message = client.predict([handle_file(str(tmp_path / name))], api_name="/upload")[0]
        assert f"Rejected {name}:" in message and "Nothing was changed" in message, message
        assert "Added" not in message
    assert "already in the corpus as 000_5eaa805196ca9fd9.txt" in message
    # Over the size limit: the client refuses it, and so does the server's upload route (max_file_size).
    big = "word " * 10_000
    (tmp_path / "big.txt").write_text(big)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 20000 bytes"):
        client.predict([handle_file(str(tmp_path / "big.txt"))], api_name="/upload")
    response = httpx.post(served[0] + "gradio_api/upload", files={"files": ("big.txt", big.encode())}, timeout=30)
    assert response.status_code == 413
    assert corpus_state(settings, app_engine) == before


@pytest.mark.slow
def test_upload_makes_a_new_document_answerable(client, served, tmp_path):
    _, settings, app_engine, _ = served
    docs_before = app_engine.stats().documents
    path = tmp_path / "Zorblax festival (report).txt"
    path.write_text(
        "Zorblax festival report\n\nThe Zorblax festival in Quentaria was attended by 4,200 lantern makers "
        "this spring.\nThe Zorblax lantern parade lasted exactly seven hours and ended at the harbour.\n",
        encoding="utf-8",
    )
    message, status, _ = client.predict([handle_file(str(path))], api_name="/upload")
    assert "Added uploads/Zorblax_festival_report.txt" in message, message
    stored = Path(settings.corpus_dir) / "uploads" / "Zorblax_festival_report.txt"
    assert stored.read_bytes() == path.read_bytes()
    assert app_engine.stats().documents == docs_before + 1
    assert f'class="qa-docs">{docs_before + 1}<' in status

    answer = client.predict("How long did the Zorblax lantern parade last?", None, api_name="/ask")
    check_cited({**answer, "done": True})
    assert answer["citations"][0]["source"] == "uploads/Zorblax_festival_report.txt"
    assert "seven hours" in answer["citations"][0]["snippet"]

    # The same name again with other content gets a new name; nothing is overwritten.
    path.write_text("Zorblax festival, second report: the fireworks lasted twenty minutes.\n", encoding="utf-8")
    message = client.predict([handle_file(str(path))], api_name="/upload")[0]
    assert "Added uploads/Zorblax_festival_report-2.txt" in message
    assert "seven hours" in stored.read_text(encoding="utf-8")


@pytest.mark.slow
def test_several_people_can_ask_at_once(served):
    url, settings, _, demo = served
    assert demo._queue.default_concurrency_limit == settings.ui.concurrency_limit > 1
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values() if fn.api_name}
    assert limits["upload"] == 1  # ingestion runs one at a time
    questions = ["Why was Sora's release delayed?", "Sora 可以生成多长的视频？",
                 "Who leaked access to Sora on Hugging Face?", "Which Hollywood actor is testing Sora?"]

    def ask(q):
        return Client(url, verbose=False).predict(q, None, api_name="/ask")

    started = time.perf_counter()
    with ThreadPoolExecutor(len(questions)) as pool:
        results = list(pool.map(ask, questions))
    assert all(r["citations"] for r in results)
    assert time.perf_counter() - started < 60


@pytest.mark.slow
def test_one_slow_llm_answer_does_not_block_the_others(served, engine):
    """LLM mode: while one question waits on a slow LLM reply, other people's questions are answered."""
    from test_llm import quoted

    from fake_llm import FakeLLM

    gate = threading.Event()

    def reply(messages):
        if messages[-1]["content"].rstrip().endswith("Why was Sora's release delayed?"):
            gate.wait(60)  # the slow one
        return quoted(messages, "[1]")  # a faithful reply: the guard shows it

    settings = served[1]
    with FakeLLM(reply=reply) as fake:
        llm_settings = settings.replace(**{"mode": "llm", "llm_base_url": fake.url + "/v1",
                                                   "llm_model": "fake-model", "llm_timeout": 60.0})
        llm_engine = qa.QAEngine(llm_settings, embed_model=engine.embed_model)
        demo = ui.build_app(llm_engine, llm_settings)
        _, url, _ = ui.launch(demo, llm_settings, server_port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            assert f"LLM: fake-model @ 127.0.0.1:{fake.port}" in ui.render_status_html(llm_engine)
            slow = Client(url, verbose=False).submit("Why was Sora's release delayed?", None, api_name="/chat")
            deadline = time.monotonic() + 30
            while not fake.chat_requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fake.chat_requests, "the slow question never reached the LLM"
            fast = Client(url, verbose=False).predict("Which Hollywood actor is testing Sora?", None, api_name="/ask")
            assert fast["mode"] == "llm" and fast["citations"] and not slow.done()
            # A follow-up sends the earlier turn to the LLM.
            Client(url, verbose=False).predict("And what does he think of it?", [["Which Hollywood actor is testing Sora?", fast["text"]]],
                                               api_name="/ask")
            assert any("Which Hollywood actor is testing Sora?" in m["content"] for r in fake.chat_requests[2:] for m in r.messages)
            gate.set()
            final = slow.result(timeout=60)
            assert final["mode"] == "llm" and final["citations"][0]["number"] == 1
        finally:
            gate.set()
            demo.close()


@pytest.mark.slow
def test_page_is_served_without_api_page_or_outside_links(served):
    url = served[0]
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "News QA" in page.text
    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    assert config["footer_links"] == [] and config["analytics_enabled"] is False
    assert "fonts.googleapis" not in page.text


# --- python app.py --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_app_py_ingests_an_empty_store_then_serves(tmp_path):
    corpus = write_lantern_corpus(tmp_path / "corpus")
    port = free_port()
    env = {**os.environ, "QA_CORPUS_DIR": str(corpus), "QA_PERSIST_DIR": str(tmp_path / "store"),
           "QA_COLLECTION": "apptest", "QA_MODE": "offline", "QA_HOST": "127.0.0.1"}
    env.pop("OPENAI_API_KEY", None)
    url = f"http://127.0.0.1:{port}/"
    with run_app_py(["--port", str(port)], env, tmp_path, tmp_path / "app.log", url):
        answer = Client(url, verbose=False).predict("How many lanterns did the harbour light?", api_name="/ask")
        assert answer["citations"] and answer["citations"][0]["source"] == "note.md"
        assert "900" in answer["text"]
        output = (tmp_path / "app.log").read_text()
        assert "1 added" in output and "offline extractive" in output
        assert "Traceback" not in output


def test_app_py_reports_a_bad_setting_in_one_line(tmp_path):
    env = {**os.environ, "QA_PORT": "99999"}
    proc = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "QA_PORT" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
