"""Ingestion cost as a multiple of one pass of the embedding models over the corpus.

For each checkout (this one, and with ``--baseline-dir`` the old code, alternating), a child process loads
the models once, then ``--runs`` times: (a) one ``encode`` call of the configured models (e5+use by default)
over the seeds' chunk texts, each chunk once: the reference pass; (b) ``qa.ingest`` of the seeds into a
fresh store with the same model object. The ratio (b)/(a) is taken per run, so that the machine's load
affects both alike, and its median is printed with the medians of (a), (b) and the texts embedded.

    python benchmarks/ingest_cost.py --runs 3 --baseline-dir ../wt-base
    python benchmarks/ingest_cost.py --runs 3 --rounds 2 --variant QA_CHUNK_VECTORS=pooled
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
from qa.settings import apply_process_defaults
apply_process_defaults()
import qa
from qa.chunking import chunk_text, make_splitter
from qa.embeddings import make_embedding
from qa.loading import load_corpus

seeds, runs = Path(sys.argv[1]), int(sys.argv[2])
base = qa.Settings(corpus_dir=seeds, mode="offline")
model = make_embedding(base)
model.encode(["warm-up"], is_query=False)  # load the weights outside the timings
splitter = make_splitter(base.chunk_size, base.chunk_overlap)
chunks = [c.text for f in load_corpus(seeds, base.max_file_bytes).files for c in chunk_text(f.source, f.text, splitter)]
out = {"chunks": len(chunks), "reference": [], "ingest": [], "embedded": []}
for i in range(runs):
    started = time.perf_counter()
    model.encode(chunks, is_query=False)
    out["reference"].append(time.perf_counter() - started)
    tmp = Path(tempfile.mkdtemp(prefix="qa-ingest-cost-"))
    try:
        settings = base.replace(persist_dir=tmp / "store", collection="cost")
        started = time.perf_counter()
        report = qa.ingest(settings, embed_model=model, progress=lambda *a: None)
        out["ingest"].append(time.perf_counter() - started)
        out["embedded"].append(report.embedded_texts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
print("RESULT " + json.dumps(out), flush=True)
"""


def run_child(checkout: Path, runs: int, python: str, extra_env: dict[str, str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), **(extra_env or {})}
    proc = subprocess.run([python, "-c", CHILD, str(ROOT / "seeds"), str(runs)], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"the measurement in {checkout} failed:\n{proc.stderr[-3000:]}")


def fmt(values: list[float], unit: str = " s") -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]{unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per child process")
    parser.add_argument("--rounds", type=int, default=1, help="child processes per checkout, alternating")
    parser.add_argument("--baseline-dir", type=Path, help="another checkout (the old code)")
    parser.add_argument("--variant", action="append", default=[], metavar="QA_VAR=VALUE",
                        help="also run this checkout with this setting (e.g. QA_CHUNK_VECTORS=pooled), alternating")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    checkouts: dict[str, tuple[Path, dict[str, str]]] = {"this checkout": (ROOT, {})}
    for v in args.variant:
        key, _, value = v.partition("=")
        checkouts[f"this checkout, {v}"] = (ROOT, {key: value})
    if args.baseline_dir is not None:
        checkouts["baseline"] = (args.baseline_dir.resolve(), {})
    results: dict[str, dict[str, list]] = {n: {"reference": [], "ingest": [], "embedded": [], "chunks": []}
                                           for n in checkouts}
    names = list(checkouts)
    for i in range(args.rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            got = run_child(checkouts[name][0], args.runs, args.python, checkouts[name][1])
            for key in ("reference", "ingest", "embedded"):
                results[name][key] += got[key]
            results[name]["chunks"].append(got["chunks"])
            print(f"round {i + 1} {name}: reference {got['reference']}, ingest {got['ingest']}", file=sys.stderr)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {load}, "
          f"{args.rounds * args.runs} runs each")
    print("| checkout | one encode pass over the chunks | ingestion into a fresh store | ratio | texts embedded |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        ratios = [b / a for a, b in zip(r["reference"], r["ingest"])]
        print(f"| {name} | {fmt(r['reference'])} ({r['chunks'][0]} chunks) | {fmt(r['ingest'])} | "
              f"{fmt(ratios, '×')} | {statistics.median(r['embedded']):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
