"""A bounded load generator for the chat app: N concurrent chat sessions asking through the ``/ask`` API.

    python benchmarks/loadtest.py --sessions 20 --duration 30          # starts its own `python app.py`
    python benchmarks/loadtest.py --sessions 20 --duration 30 --url http://127.0.0.1:7860/

Each session is a thread with its own HTTP connection (like one browser tab) that asks questions one
after another through Gradio's queue (``POST /gradio_api/call/ask`` then the event stream of the
answer), carrying the conversation history so that follow-ups are asked as a person would. A session
stops starting questions when the duration is over (or after ``--max-requests``); questions already
sent are waited for, each at most ``--timeout`` seconds, so a run is always bounded.

Every answer is classified: *answered* (a cited answer), *refused* (the corpus has no answer),
*rejected* (a question meant to be invalid, refused with the polite message) or *error* (anything
else: an HTTP error, an error event for a valid question, a generic "something went wrong", a
timeout, a connection failure). Latency is measured by the client from sending the question to the
final event. The server's resident memory (VmRSS in /proc/<pid>/status) is read before and after the
run and sampled during it; VmHWM gives the peak. Without ``--url`` the server is ``python app.py``
started on a free loopback port with a temporary copy of the corpus and store (QA_MODE=offline), so
the run changes nothing; with ``--url`` on this machine the server's pid is found from its listening
socket (or given with ``--pid``).

Only loopback addresses are accepted for ``--url``: this is a test tool, not a way to load someone
else's server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

APP = Path(__file__).resolve().parent.parent / "app.py"  # the checkout's app unless --app says otherwise
POLITE_PREFIX = "Sorry, I can't take this question:"
GENERIC_ERROR_START = "Something went wrong"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Step:
    """One question of a session's script."""

    question: str
    follow_up: bool = False  # sent with the previous turn as history
    invalid: bool = False  # expected to be refused with the polite message


# A chat session's script: the seed articles' topics in four languages, follow-ups, a question the
# corpus cannot answer, and one invalid question (whitespace only) that must be refused politely.
SCRIPT: tuple[Step, ...] = (
    Step("Why was Sora's release delayed?"),
    Step("What did Mira Murati say about it?", follow_up=True),
    Step("Which Hollywood actor is testing OpenAI's Sora model?"),
    Step("When did he test it?", follow_up=True),
    Step("Sora 可以生成多长的视频？"),
    Step("Pourquoi la sortie de Sora a-t-elle été retardée ?"),
    Step("Who leaked access to Sora on Hugging Face?"),
    Step("   \n\t ", invalid=True),
    Step("من هو الممثل الهوليوودي الذي يختبر نموذج Sora؟"),
    Step("What is the boiling point of tungsten on Mars?"),
)


@dataclass
class Outcome:
    kind: str  # answered | refused | rejected | error
    latency: float  # seconds, client side
    detail: str = ""
    started: float = 0.0  # seconds since the run started


@dataclass
class LoadReport:
    url: str
    sessions: int
    duration: float  # the requested duration (seconds)
    max_requests: int | None
    elapsed: float = 0.0  # from the first question sent to the last answer received
    requests: int = 0
    answered: int = 0
    refused: int = 0
    rejected: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    throughput: float = 0.0  # completed requests per second of elapsed time
    answer_throughput: float = 0.0  # answered or refused questions per second (invalid ones left out)
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_max: float | None = None
    latency_mean: float | None = None
    server_pid: int | None = None
    rss_before_kb: int | None = None
    rss_after_kb: int | None = None
    rss_peak_sampled_kb: int | None = None
    vm_hwm_kb: int | None = None  # the server's peak RSS since it started
    per_session: list[int] = field(default_factory=list)  # requests completed by each session
    started_at: str = ""
    load_average: tuple[float, float, float] | None = None  # of the machine, before the run
    cpus: int | None = None

    @property
    def rss_growth_kb(self) -> int | None:
        if self.rss_before_kb is None or self.rss_after_kb is None:
            return None
        return self.rss_after_kb - self.rss_before_kb

    @property
    def clean(self) -> bool:
        """Every request was answered, refused or (when meant to be invalid) rejected politely."""
        return self.errors == 0 and self.requests == self.answered + self.refused + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rss_growth_kb": self.rss_growth_kb, "clean": self.clean}

    def summary(self) -> str:
        def s(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f} s"

        def mb(kb: int | None) -> str:
            return "n/a" if kb is None else f"{kb / 1024:.0f} MB"

        growth = self.rss_growth_kb
        lines = [
            f"load test of {self.url}: {self.sessions} sessions for {self.duration:g} s"
            + (f" (at most {self.max_requests} requests each)" if self.max_requests else ""),
            f"requests: {self.requests} in {self.elapsed:.1f} s = {self.throughput:.2f} req/s "
            f"(answered {self.answered}, refused {self.refused}, rejected as invalid {self.rejected}, "
            f"errors {self.errors}); {self.answer_throughput:.2f} answers/s",
            f"latency: p50 {s(self.latency_p50)}, p95 {s(self.latency_p95)}, mean {s(self.latency_mean)}, "
            f"max {s(self.latency_max)}",
            f"server RSS (pid {self.server_pid}): before {mb(self.rss_before_kb)}, after {mb(self.rss_after_kb)}"
            + ("" if growth is None else f" ({'+' if growth >= 0 else ''}{growth / 1024:.0f} MB)")
            + f", peak sampled {mb(self.rss_peak_sampled_kb)}, VmHWM {mb(self.vm_hwm_kb)}",
            f"requests per session: min {min(self.per_session, default=0)}, max {max(self.per_session, default=0)}",
        ]
        if self.load_average:
            lines.append(f"machine: {self.cpus} CPUs, load average before the run "
                         + ", ".join(f"{x:.2f}" for x in self.load_average))
        lines += [f"error: {e}" for e in self.error_samples]
        return "\n".join(lines)


# --- the server's memory --------------------------------------------------------------------------------

def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB (None when it is gone or not readable)."""
    return _status_kb(pid, "VmRSS")


def hwm_kb(pid: int) -> int | None:
    """VmHWM (peak resident set) of a process in kB."""
    return _status_kb(pid, "VmHWM")


def listening_inodes(port: int, files=("/proc/net/tcp", "/proc/net/tcp6")) -> dict[str, str]:
    """{socket inode: local address (hex)} of the sockets listening on a TCP port."""
    found = {}
    for name in files:
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            address, _, port_hex = parts[1].rpartition(":")
            if parts[3] == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found[parts[9]] = address
    return found


def listening_addresses(port: int) -> list[str]:
    """The local addresses (dotted or IPv6 text) of the sockets listening on a TCP port."""
    out = []
    for address in listening_inodes(port).values():
        raw = bytes.fromhex(address)
        if len(raw) == 4:
            out.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
        else:  # /proc/net/tcp6 prints four little-endian 32-bit words
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
            out.append(socket.inet_ntop(socket.AF_INET6, words))
    return out


def find_listener_pid(port: int) -> int | None:
    """The pid of the process listening on a local TCP port (processes this user can inspect only)."""
    inodes = {f"socket:[{i}]" for i in listening_inodes(port)}
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


# --- the server under test -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``python app.py --port P`` on 127.0.0.1 with a private copy of a corpus and store, offline mode.

    >>> with AppServer.from_copy(corpus, store, "news", workdir) as server:
    ...     run_load(server.url, 20, 30, pid=server.pid)
    """

    def __init__(self, corpus_dir: Path, persist_dir: Path, collection: str, workdir: Path,
                 port: int | None = None, extra_env: dict[str, str] | None = None, app: Path = APP):
        self.corpus_dir = Path(corpus_dir)
        self.persist_dir = Path(persist_dir)
        self.collection = collection
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.extra_env = extra_env or {}
        self.app = Path(app)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "app.log"
        self._log = None

    @classmethod
    def from_copy(cls, corpus_dir: Path, persist_dir: Path, collection: str, workdir: Path, **kw) -> "AppServer":
        """Copy the corpus and the store into workdir first, so the run cannot change the originals."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        corpus, store = workdir / "corpus", workdir / "store"
        shutil.copytree(corpus_dir, corpus)
        if Path(persist_dir).exists():
            shutil.copytree(persist_dir, store)
        for p in (corpus, *([store] if store.exists() else [])):  # seeds may be read-only
            for sub in (p, *p.rglob("*")):
                sub.chmod(sub.stat().st_mode | 0o200)
        return cls(corpus, store, collection, workdir, **kw)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
        env.pop("OPENAI_API_KEY", None)
        env.update(QA_CORPUS_DIR=str(self.corpus_dir), QA_PERSIST_DIR=str(self.persist_dir),
                   QA_COLLECTION=self.collection, QA_MODE="offline", QA_HOST="127.0.0.1")
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 600.0) -> "AppServer":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(self.app), "--port", str(self.port)],
                                     cwd=self.workdir, env=self.env(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app.py did not serve within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "AppServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- one question -------------------------------------------------------------------------------------

def _events(lines) -> Any:
    """(event, data) pairs of a Server-Sent Events stream."""
    event, data = None, []
    for line in lines:
        if line == "":
            if event is not None or data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if event is not None or data:
        yield event, "\n".join(data)


def ask_once(client: httpx.Client, base_url: str, question: str, history: list | None = None,
             *, timeout: float = 120.0, invalid: bool = False) -> tuple[Outcome, dict | None]:
    """Ask one question through Gradio's queue (``/gradio_api/call/ask``); returns the outcome and answer."""
    base = base_url.rstrip("/") + "/gradio_api/call/ask"
    started = time.perf_counter()

    def done(kind: str, detail: str = "", answer: dict | None = None):
        return Outcome(kind, time.perf_counter() - started, detail[:300]), answer

    try:
        r = client.post(base, json={"data": [question, history]}, timeout=timeout)
        if r.status_code != 200:
            return done("error", f"HTTP {r.status_code} on POST: {r.text[:200]}")
        event_id = r.json()["event_id"]
        left = max(1.0, timeout - (time.perf_counter() - started))
        with client.stream("GET", f"{base}/{event_id}", timeout=httpx.Timeout(left, read=left)) as stream:
            if stream.status_code != 200:
                return done("error", f"HTTP {stream.status_code} on the event stream")
            for event, data in _events(stream.iter_lines()):
                if time.perf_counter() - started > timeout:
                    return done("error", f"no answer within {timeout:.0f} s")
                if event == "complete":
                    payload = json.loads(data)
                    answer = payload[0] if isinstance(payload, list) and payload else None
                    if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
                        return done("error", f"malformed answer: {data[:200]}")
                    if invalid:
                        return done("error", f"an invalid question was answered: {question!r}", answer)
                    if "Traceback" in answer["text"]:
                        return done("error", "a traceback in the answer", answer)
                    return done("refused" if answer.get("refused") else "answered", "", answer)
                if event == "error":
                    try:
                        message = (json.loads(data) or {}).get("error") or ""
                    except (ValueError, AttributeError):
                        message = data
                    message = str(message)
                    if invalid and message.startswith(POLITE_PREFIX) and "Traceback" not in message:
                        return done("rejected", message)
                    return done("error", f"error event for {question[:60]!r}: {message or data}")
            return done("error", "the event stream ended without an answer")
    except (httpx.HTTPError, ValueError, KeyError, OSError) as exc:
        return done("error", f"{type(exc).__name__}: {exc}")


# --- the run -------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))  # ceil(q/100 * n)
    return ordered[rank - 1]


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"{url} is not a loopback address; the load test only targets this machine")


def run_load(url: str, sessions: int = 20, duration: float = 30.0, *, max_requests: int | None = None,
             timeout: float = 120.0, pid: int | None = None, think: float = 0.0,
             script: tuple[Step, ...] = SCRIPT, progress=None) -> LoadReport:
    """Run ``sessions`` concurrent chat sessions against ``url`` for ``duration`` seconds (bounded)."""
    check_loopback(url)
    if sessions < 1 or duration <= 0:
        raise ValueError("sessions must be at least 1 and duration positive")
    if pid is None:
        pid = find_listener_pid(urlparse(url).port or 80)
    report = LoadReport(url=url, sessions=sessions, duration=duration, max_requests=max_requests, server_pid=pid,
                        started_at=time.strftime("%Y-%m-%d %H:%M:%S %z"), cpus=os.cpu_count())
    try:
        report.load_average = os.getloadavg()
    except OSError:
        pass
    outcomes: list[list[Outcome]] = [[] for _ in range(sessions)]
    peak = [0]
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.5):
            if pid is not None:
                peak[0] = max(peak[0], rss_kb(pid) or 0)

    if pid is not None:
        report.rss_before_kb = rss_kb(pid)
        peak[0] = report.rss_before_kb or 0
    t0 = time.perf_counter()
    deadline = t0 + duration
    ends: list[float] = []
    ends_lock = threading.Lock()

    def session(i: int) -> None:
        history: list[list[str]] = []
        n = 0
        with httpx.Client() as client:  # one connection pool per session, like one browser
            while time.perf_counter() < deadline and (max_requests is None or n < max_requests):
                step = script[(i + n) % len(script)]  # sessions start at different points of the script
                sent_history = history[-1:] if step.follow_up else None
                start = time.perf_counter() - t0
                outcome, answer = ask_once(client, url, step.question, sent_history, timeout=timeout,
                                           invalid=step.invalid)
                outcome.started = start
                outcomes[i].append(outcome)
                with ends_lock:
                    ends.append(time.perf_counter())
                if answer and not answer.get("refused"):
                    history = [[step.question, answer["text"]]]
                n += 1
                if progress:
                    progress(i, outcome)
                if think:
                    time.sleep(think)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    threads = [threading.Thread(target=session, args=(i,), name=f"session-{i}", daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
    # Bounded: no new question after the deadline, and each one in flight takes at most `timeout`.
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.perf_counter()) + timeout + 30)
    stop_sampling.set()
    sampler.join(timeout=5)
    hung = sum(t.is_alive() for t in threads)

    flat = [o for per in outcomes for o in per]
    report.requests = len(flat)
    for kind in ("answered", "refused", "rejected"):
        setattr(report, kind, sum(o.kind == kind for o in flat))
    report.errors = sum(o.kind == "error" for o in flat) + hung
    report.error_samples = [o.detail for o in flat if o.kind == "error"][:10]
    if hung:
        report.error_samples.append(f"{hung} session(s) still waiting after the bound")
    report.per_session = [len(per) for per in outcomes]
    report.elapsed = (max(ends) - t0) if ends else time.perf_counter() - t0
    report.throughput = report.requests / report.elapsed if report.elapsed > 0 else 0.0
    report.answer_throughput = (report.answered + report.refused) / report.elapsed if report.elapsed > 0 else 0.0
    latencies = [o.latency for o in flat if o.kind != "error"]
    report.latency_p50 = percentile(latencies, 50)
    report.latency_p95 = percentile(latencies, 95)
    report.latency_max = max(latencies) if latencies else None
    report.latency_mean = sum(latencies) / len(latencies) if latencies else None
    if pid is not None:
        time.sleep(1.0)  # let the last responses' buffers go
        report.rss_after_kb = rss_kb(pid)
        report.rss_peak_sampled_kb = max(peak[0], report.rss_after_kb or 0) or None
        report.vm_hwm_kb = hwm_kb(pid)
    return report


# --- command line ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/loadtest.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent chat sessions (default 20)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds during which questions are sent")
    parser.add_argument("--max-requests", type=int, help="stop each session after this many questions")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one answer may take (default 120)")
    parser.add_argument("--think", type=float, default=0.0, help="pause between a session's questions (s)")
    parser.add_argument("--url", help="a running app on this machine (default: start `python app.py`)")
    parser.add_argument("--pid", type=int, help="the server's pid, for its memory (found from the port if omitted)")
    parser.add_argument("--corpus", type=Path, help="corpus to copy for the started app (QA_CORPUS_DIR)")
    parser.add_argument("--store", type=Path, help="store to copy for the started app (QA_PERSIST_DIR)")
    parser.add_argument("--collection", help="collection of that store (QA_COLLECTION)")
    parser.add_argument("--app", type=Path, default=APP, help=f"the app script to start (default {APP})")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no per-request progress dots")
    args = parser.parse_args(argv)

    def progress(i: int, outcome: Outcome) -> None:
        if not args.quiet:
            print({"answered": ".", "refused": "r", "rejected": "x"}.get(outcome.kind, "E"), end="", file=sys.stderr,
                  flush=True)

    kw = dict(max_requests=args.max_requests, timeout=args.timeout, think=args.think, progress=progress)
    try:
        if args.url:
            check_loopback(args.url)
            report = run_load(args.url, args.sessions, args.duration, pid=args.pid, **kw)
        else:
            from qa.settings import load_settings

            settings = load_settings()
            corpus = args.corpus or settings.corpus_dir
            store = args.store or settings.persist_dir
            collection = args.collection or settings.collection
            with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
                print(f"starting app.py on a copy of {corpus} and {store} (offline; an empty store is ingested "
                      f"first, which takes a while)", file=sys.stderr)
                with AppServer.from_copy(corpus, store, collection, Path(tmp), app=args.app) as server:
                    # One question first: the first answer of a fresh process loads lazy parts.
                    with httpx.Client() as client:
                        ask_once(client, server.url, SCRIPT[0].question, timeout=args.timeout)
                    report = run_load(server.url, args.sessions, args.duration, pid=server.pid, **kw)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0 if report.clean else 2


if __name__ == "__main__":
    sys.exit(main())
