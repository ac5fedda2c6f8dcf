"""Start-up of ``app.py`` with an existing index: time to the page, and to the first cited answer.

Launches ``app.py`` as a subprocess on a free port, ``--runs`` times, and times (a) until ``GET /``
returns 200 and (b) until the first ``/ask`` (Gradio's HTTP API, asked as soon as the page is served)
returns an answer with citations. With ``--baseline-dir`` (another checkout, e.g. ``git worktree add
--detach ../base main``) the old code is launched in the same invocation, alternating with this one, on
the same store, so that the machine's load affects both alike. Prints medians [min–max].

    python benchmarks/startup.py --runs 5 --baseline-dir ../wt-base

The store is the seeds ingested once into a temporary folder (or --persist-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Why was Sora's release delayed?"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def ask(base: str, question: str, timeout: float = 120.0) -> dict:
    """One /ask call over Gradio's HTTP API (POST the call, then read its event stream)."""
    body = json.dumps({"data": [question, []]}).encode()
    req = urllib.request.Request(f"{base}/gradio_api/call/ask", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        event_id = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{base}/gradio_api/call/ask/{event_id}", timeout=timeout) as r:
        event = ""
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = json.loads(line.split(":", 1)[1])
                if event == "error":
                    raise RuntimeError(f"/ask failed: {data}")
                return data[0]
    raise RuntimeError("/ask ended without an answer")


def run_once(checkout: Path, env: dict[str, str], python: str, timeout: float = 180.0) -> tuple[float, float]:
    """(seconds to GET / 200, seconds to the first cited answer), both from the process launch."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen([python, "app.py", "--port", str(port)], cwd=checkout, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py in {checkout} exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"app.py in {checkout} did not serve within {timeout:.0f} s")
            try:
                status, _ = _get(base + "/", timeout=2.0)
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.05)
        page = time.perf_counter() - started
        answer = ask(base, QUESTION)
        first = time.perf_counter() - started
        if not answer.get("citations"):
            raise RuntimeError(f"the first answer cites nothing: {answer.get('text', '')[:200]!r}")
        return page, first
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}] s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-dir", type=Path, help="another checkout (the old code), run alternately")
    parser.add_argument("--persist-dir", type=Path, help="an existing store of the seeds (default: ingest one now)")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="qa-startup-")
    env = {**os.environ, "QA_CORPUS_DIR": str(ROOT / "seeds"), "QA_MODE": "offline"}
    if args.persist_dir is None:
        args.persist_dir = Path(tmp.name) / "store"
        print(f"ingesting the seeds into {args.persist_dir}…", file=sys.stderr)
        subprocess.run([args.python, "-c", "import sys; from qa.cli import main; sys.exit(main(['ingest']))"],
                       cwd=ROOT, env={**env, "QA_PERSIST_DIR": str(args.persist_dir)}, check=True,
                       stdout=subprocess.DEVNULL)
    env["QA_PERSIST_DIR"] = str(args.persist_dir)
    checkouts = {"this checkout": ROOT}
    if args.baseline_dir is not None:
        checkouts["baseline"] = args.baseline_dir.resolve()
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in checkouts}
    names = list(checkouts)
    for i in range(args.runs):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            page, first = run_once(checkouts[name], env, args.python)
            results[name][0].append(page)
            results[name][1].append(first)
            print(f"run {i + 1} {name}: page {page:.2f} s, first answer {first:.2f} s", file=sys.stderr)
    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = ""
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {load}, {args.runs} runs each")
    print("| checkout | page served (GET / 200) | first cited answer |")
    print("|---|---|---|")
    for name in checkouts:
        pages, firsts = results[name]
        print(f"| {name} | {fmt(pages)} | {fmt(firsts)} |")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
