"""Load: 20 concurrent chat sessions against `python app.py` (a subprocess on a free loopback port, offline
mode, a private copy of the seeded store) for a bounded time, through qa.loadtest; plus the load
generator's own checks against a scripted fake server, so that its verdicts can be trusted.

No latency is asserted (the machine is shared); docs/load.md has the measured figures.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from benchmarks import loadtest
from benchmarks.loadtest import AppServer, Step, ask_once, percentile, run_load

SESSIONS = 20
DURATION = 15.0  # seconds during which questions are sent; answers in flight are then awaited
RSS_GROWTH_LIMIT_MB = 300


# --- the real app -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_server(seeded, tmp_path_factory):
    server = AppServer.from_copy(seeded.corpus_dir, seeded.persist_dir, seeded.collection,
                                 tmp_path_factory.mktemp("load"))
    with server:
        yield server


@pytest.mark.slow
def test_twenty_sessions_are_all_answered_and_memory_stays_bounded(app_server):
    with httpx.Client() as client:  # a first answer loads the lazy parts, as the first visitor would
        warm, _ = ask_once(client, app_server.url, "Why was Sora's release delayed?", timeout=120)
    assert warm.kind == "answered", warm.detail

    report = run_load(app_server.url, sessions=SESSIONS, duration=DURATION, pid=app_server.pid, timeout=120)
    print("\n" + report.summary())

    assert report.errors == 0, report.error_samples
    assert report.clean and report.requests == report.answered + report.refused + report.rejected
    assert min(report.per_session) >= 1, report.per_session  # every session was served
    assert report.answered > 0 and report.rejected > 0  # cited answers, and the invalid question refused
    assert report.elapsed < DURATION + 120 + 30  # bounded
    assert report.rss_before_kb and report.rss_after_kb
    growth_mb = report.rss_growth_kb / 1024
    assert growth_mb < RSS_GROWTH_LIMIT_MB, report.summary()

    # The server is still healthy, bound to loopback only, and logged no traceback.
    assert app_server.proc.poll() is None
    with httpx.Client() as client:
        after, answer = ask_once(client, app_server.url, "Which Hollywood actor is testing OpenAI's Sora model?")
    assert after.kind == "answered" and answer["citations"], after.detail
    assert loadtest.listening_addresses(app_server.port) == ["127.0.0.1"]
    assert "Traceback" not in app_server.log_path.read_text(errors="replace"), app_server.log_tail()


# --- the load generator, against a scripted fake --------------------------------------------------------

class FakeGradio:
    """Speaks the two requests of Gradio's /gradio_api/call/ask; what it answers depends on the question."""

    def __init__(self, stall: float = 0.0):
        self.stall = stall
        self.questions: dict[str, str] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, kind="application/json"):
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers["content-length"])))["data"]
                if data[0] == "http500":
                    return self._send(500, b"Internal Server Error")
                with fake.lock:
                    event_id = f"e{len(fake.questions)}"
                    fake.questions[event_id] = data[0]
                self._send(200, json.dumps({"event_id": event_id}).encode())

            def do_GET(self):
                question = fake.questions.get(self.path.rsplit("/", 1)[-1], "")
                if question == "stall":
                    time.sleep(fake.stall)
                if question.strip() == "":
                    event = 'event: error\ndata: {"error": "Sorry, I can\'t take this question: the question is empty."}'
                elif question == "boom":
                    event = 'event: error\ndata: {"error": null}'
                elif question == "generic":
                    event = 'event: error\ndata: {"error": "Something went wrong while answering"}'
                elif question == "unknown":
                    event = 'event: complete\ndata: [{"text": "Not in the articles.", "refused": true}]'
                else:
                    event = 'event: complete\ndata: [{"text": "An answer [1].", "refused": false, "citations": []}]'
                self._send(200, f"event: heartbeat\ndata: null\n\n{event}\n\n".encode(), "text/event-stream")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_load_generator_counts_answers_refusals_and_polite_rejections():
    script = (Step("Why?"), Step("unknown"), Step("  ", invalid=True), Step("And then?", follow_up=True))
    with FakeGradio() as fake:
        report = run_load(fake.url, sessions=3, duration=30, max_requests=8, script=script, pid=None, timeout=10)
    assert report.requests == 24 and report.per_session == [8, 8, 8]
    assert (report.answered, report.refused, report.rejected, report.errors) == (12, 6, 6, 0)
    assert report.clean and report.throughput > 0 and report.latency_p50 is not None


@pytest.mark.parametrize("question,invalid,detail", [
    ("boom", False, "error event"),
    ("generic", False, "Something went wrong"),
    ("http500", False, "HTTP 500"),
    ("Why?", True, "invalid question was answered"),  # an invalid question must not be answered
    ("", False, "error event"),  # a polite refusal of a question meant to be valid is an error
])
def test_load_generator_reports_every_kind_of_failure(question, invalid, detail):
    with FakeGradio() as fake:
        report = run_load(fake.url, sessions=2, duration=30, max_requests=2, pid=None, timeout=10,
                          script=(Step(question, invalid=invalid),))
    assert report.errors == 4 and not report.clean
    assert detail in report.error_samples[0], report.error_samples


def test_load_generator_is_bounded_when_the_server_stalls():
    with FakeGradio(stall=30) as fake:
        started = time.monotonic()
        report = run_load(fake.url, sessions=4, duration=1, pid=None, timeout=2, script=(Step("stall"),))
    assert time.monotonic() - started < 15
    assert report.requests == 4 and report.errors == 4 and "ReadTimeout" in report.error_samples[0]


def test_load_generator_refuses_remote_targets_and_reads_memory():
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://192.0.2.1:7860/", sessions=1, duration=1)
    assert loadtest.main(["--url", "http://example.com/", "--duration", "1", "--quiet"]) == 1

    assert loadtest.rss_kb(os.getpid()) > 0 and loadtest.hwm_kb(os.getpid()) >= loadtest.rss_kb(os.getpid())
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and percentile([1.0] * 19 + [9.0], 95) == 1.0
    assert percentile(list(range(1, 101)), 95) == 95 and percentile([], 50) is None


def test_per_session_state_kept_by_the_server_is_capped():
    import qa
    from qa import ui

    capacity = ui.launch_kwargs(qa.Settings(_env_file=None)).get("state_session_capacity", 10_000)
    assert capacity <= 2000
