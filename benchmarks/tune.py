"""Evaluate settings on the dev sets (or, once frozen, on the held-out sets) quickly and side by side.

    python benchmarks/tune.py --sets dev                                  # every dev set, default settings
    python benchmarks/tune.py --sets dev --set retrieval.centering=1.25   # a variant
    python benchmarks/tune.py --sets heldout --json docs/heldout.json     # only with settings frozen

Dev sets are the ones settings may be chosen on: the Sora set `tests/eval/testset.jsonl` and the XQuAD
`tune` fold. Held-out sets (the new Sora questions and the XQuAD `heldout` fold) are for reporting only.
Each corpus is ingested once into a store under --stores and reused; query vectors are cached on disk,
so a variant costs only retrieval and answering.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
XQ = ROOT / "tests" / "eval" / "xquad"
SETS: dict[str, tuple[Path, Path]] = {
    "sora-dev": (ROOT / "seeds", ROOT / "tests" / "eval" / "testset.jsonl"),
    **{f"xq-tune-{s}": (XQ / "tune" / s / "corpus", XQ / "tune" / s / "testset.jsonl")
       for s in ("en-over-ar-zh", "zh-over-en-ar", "mixed", "gaps")},
    "sora-heldout": (ROOT / "seeds", ROOT / "tests" / "eval" / "heldout.jsonl"),
    **{f"xq-heldout-{s}": (XQ / "heldout" / s / "corpus", XQ / "heldout" / s / "testset.jsonl")
       for s in ("en-over-ar-zh", "zh-over-en-ar", "mixed", "gaps")},
}
GROUPS = {"dev": [n for n in SETS if "heldout" not in n], "heldout": [n for n in SETS if "heldout" in n]}
SHOWN = ("hit@1", "hit@5", "mrr", "passage_hit@1", "fact_recall", "citation_precision", "citation_validity",
         "refused_absent", "refused_off_topic", "false_refusal_rate", "latency_p50_ms")


class CachedEmbedding:
    """The engine's model, with query vectors remembered on disk between runs (documents are not cached)."""

    def __init__(self, model, path: Path):
        self._model, self._path = model, path
        self._vectors: dict = pickle.loads(path.read_bytes()) if path.is_file() else {}
        self._dirty = False

    def __getattr__(self, name):
        return getattr(self._model, name)

    def encode(self, texts, is_query: bool = False):
        if not is_query:
            return self._model.encode(list(texts), is_query)
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            for t, v in zip(missing, self._model.encode(missing, True)):
                self._vectors[t] = v
            self._dirty = True
        import numpy as np

        return np.stack([self._vectors[t] for t in texts])

    def save(self) -> None:
        if self._dirty:
            self._path.write_bytes(pickle.dumps(self._vectors))
            self._dirty = False


def settings_for(name: str, stores: Path, overrides: dict[str, Any]):
    from qa.settings import load_settings

    corpus, _ = SETS[name]
    flat: dict[str, Any] = {"corpus_dir": corpus, "persist_dir": stores / name, "collection": "tune",
                            "mode": "offline", "chroma_host": None}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if "." in key:
            group, field = key.split(".", 1)
            nested.setdefault(group, {})[field] = value
        else:
            flat[key] = value
    settings = load_settings(**flat)
    return settings.replace(**nested) if nested else settings


def open_engine(name: str, stores: Path, overrides: dict[str, Any], model):
    from qa.engine import QAEngine
    from qa.ingest import ingest

    settings = settings_for(name, stores, overrides)
    report = ingest(settings, embed_model=model, progress=lambda *a: None)
    if report.added or report.updated:
        print(f"[tune] {name}: {report.summary().splitlines()[1]}", file=sys.stderr)
    return QAEngine(settings, embed_model=model)


def evaluate(names: list[str], stores: Path, overrides: dict[str, Any], cache: Path) -> dict[str, dict]:
    from qa.baselines import ours
    from qa.embeddings import make_embedding
    from qa.evaluation import load_testset, run_system, summarize
    from qa.loading import load_corpus

    stores.mkdir(parents=True, exist_ok=True)
    model = CachedEmbedding(make_embedding(settings_for(names[0], stores, {})), cache)
    out = {}
    try:
        for name in names:
            corpus, testset = SETS[name]
            if not testset.is_file():
                print(f"[tune] {name}: no {testset}, skipped", file=sys.stderr)
                continue
            engine = open_engine(name, stores, overrides, model)
            texts = {f.source: f.text for f in load_corpus(corpus, engine.settings.max_file_bytes).files}
            cases = load_testset(testset)
            started = time.perf_counter()
            results = run_system(ours(engine, engine.settings.retrieval.top_k), cases, texts)
            out[name] = {"summary": summarize(results), "seconds": time.perf_counter() - started,
                         "cases": [r.__dict__ for r in results]}
            model.save()
    finally:
        model.save()
    return out


def parse_overrides(specs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        key, _, value = spec.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def table(results: dict[str, dict]) -> str:
    rows = [["set", "cases", *SHOWN]]
    for name, r in results.items():
        s = r["summary"]
        rows.append([name, str(s["cases"]), *(f"{s.get(m, float('nan')):.3f}" if not m.endswith("_ms")
                                              else f"{s.get(m, 0):.0f}" for m in SHOWN)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="dev", help="dev, heldout, or comma-separated set names")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a settings override, e.g. retrieval.centering=1.5 or top_k=5 (repeatable)")
    p.add_argument("--stores", type=Path, default=Path("/tmp/qa-tune/stores"), help="where the corpora are ingested")
    p.add_argument("--cache", type=Path, default=Path("/tmp/qa-tune/queries.pkl"), help="query vector cache")
    p.add_argument("--json", type=Path, help="write the summaries and per-case results here")
    args = p.parse_args(argv)
    names = GROUPS.get(args.sets) or [n.strip() for n in args.sets.split(",")]
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    results = evaluate(names, args.stores, parse_overrides(args.set), args.cache)
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
