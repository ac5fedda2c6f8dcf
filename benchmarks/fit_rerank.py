"""Fit the passage re-ranker on the dev sets and write qa/data/rerank.json.

    python benchmarks/fit_rerank.py            # collect, cross-validate by article, fit on all, write
    python benchmarks/fit_rerank.py --no-write # only the cross-validated figures

For every answerable case of the dev sets (the Sora set tests/eval/testset.jsonl and the XQuAD tune fold)
the engine fuses as usual (re-ranking off) and computes qa.rerank.PASSAGE_FEATURES for the first DEPTH
passages; a passage is positive when it holds an expected fact. A conditional logit (softmax over one
question's passages) is fitted by Newton's method with a ridge on standardised features. The figures
printed are passage hit@1 before and after re-ranking, cross-validated with folds by article (the four
XQuAD scenarios share their articles, so a question never helps rank its own article's passages; the
Sora set is a fold of its own, ranked by a model fitted on XQuAD alone). Held-out sets are never read.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tune  # noqa: E402

from qa.rerank import MODEL_PATH, PASSAGE_FEATURES, PassageModel, passage_features  # noqa: E402

DEPTH = 10
L2 = 3.0  # ridge on standardised features; 1-10 moved the cross-validated hit@1 by under 0.01
FOLDS = 4
Question = tuple[str, np.ndarray, np.ndarray]  # (case id, features of its passages, labels)


def collect(names: list[str], stores: Path, cache: Path) -> tuple[dict[str, list[Question]], str]:
    from qa.embeddings import make_embedding
    from qa.evaluation import facts_found, load_testset

    model = tune.CachedEmbedding(make_embedding(tune.settings_for(names[0], stores, {})), cache)
    out: dict[str, list[Question]] = {}
    for name in names:
        engine = tune.open_engine(name, stores, {"retrieval.rerank_depth": 0}, model)
        p = engine.pipeline
        rows: list[Question] = []
        for case in load_testset(tune.SETS[name][1]):
            if not (case.answerable and case.expected_facts):
                continue
            query = p.analyzer.analyse(case.question, [tuple(t) for t in case.history])
            nodes = p.retriever.search(query)[:DEPTH]
            if not nodes:
                continue
            feats = passage_features(query, nodes, p.store, p.offline.support)
            X = np.array([[f[k] for k in PASSAGE_FEATURES] for f in feats])
            y = np.array([float(any(facts_found(n.node.get_content(), case.expected_facts))) for n in nodes])
            rows.append((case.id, X, y))
        out[name] = rows
        model.save()
        print(f"[fit] {name}: {len(rows)} answerable questions", file=sys.stderr)
    return out, model.model_name


def fit_clogit(questions: list[Question], l2: float = L2, iters: int = 100) -> np.ndarray:
    """Weights maximising sum log softmax(X w)[positives] - l2/2 |w|^2 (standardised), with a line search."""
    usable = [(X, y / y.sum()) for _, X, y in questions if 0 < y.sum() < len(y)]
    stacked = np.vstack([X for X, _ in usable])
    mu, sd = stacked.mean(0), stacked.std(0) + 1e-9
    usable = [((X - mu) / sd, y) for X, y in usable]

    def loss(w: np.ndarray) -> float:
        total = 0.5 * l2 * float(w @ w)
        for X, y in usable:
            s = X @ w
            m = s.max()
            total += float(m + np.log(np.exp(s - m).sum()) - y @ s)
        return total

    w = np.zeros(stacked.shape[1])
    current = loss(w)
    for _ in range(iters):
        grad, hess = l2 * w, l2 * np.eye(len(w))
        for X, y in usable:
            s = X @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad = grad + X.T @ (p - y)
            xp = X.T @ p
            hess = hess + X.T @ (X * p[:, None]) - np.outer(xp, xp)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while loss(w - t * step) > current and t > 1e-4:  # Newton overshoots on near-collinear features
            t /= 2
        w = w - t * step
        new = loss(w)
        if current - new < 1e-7:
            break
        current = new
    return w / sd


SCENARIOS = "|".join(n.removeprefix("xq-tune-") for n in tune.GROUPS["dev"] if n.startswith("xq-tune-"))


def article(case_id: str) -> str:
    """The XQuAD article a case id names (xq-tune-<scenario>-<article>-p<paragraph>-<id>), or "sora"."""
    m = re.match(rf"xq-\w+-(?:{SCENARIOS})-(.+?)-p\d+-", case_id)
    return m.group(1) if m else "sora"


def top1(questions: list[Question], w: np.ndarray | None) -> float:
    if not questions:
        return float("nan")
    return float(np.mean([y[int(np.argmax(X @ w))] if w is not None else y[0] for _, X, y in questions]))


def cross_validate(data: dict[str, list[Question]]) -> dict[str, dict[str, float]]:
    arts = sorted({article(q[0]) for qs in data.values() for q in qs} - {"sora"})
    fold = {a: i % FOLDS for i, a in enumerate(arts)} | {"sora": FOLDS}
    picked: dict[str, list[Question]] = {n: [] for n in data}
    chosen: dict[str, list[float]] = {n: [] for n in data}
    for k in range(FOLDS + 1):
        train = [q for qs in data.values() for q in qs if fold[article(q[0])] != k]
        w = fit_clogit(train)
        for name, qs in data.items():
            for q in qs:
                if fold[article(q[0])] == k:
                    picked[name].append(q)
                    chosen[name].append(q[2][int(np.argmax(q[1] @ w))])
    return {n: {"questions": len(picked[n]), "fused": round(top1(picked[n], None), 3),
                "reranked": round(float(np.mean(chosen[n])), 3) if chosen[n] else float("nan"),
                "ceiling": round(float(np.mean([q[2].max() for q in picked[n]])), 3)} for n in data}


def arguments(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """The options of a fit script (this one and fit_choice.py)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--stores", type=Path, default=Path("/tmp/qa-tune/stores"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/qa-tune/queries.pkl"))
    p.add_argument("--no-write", action="store_true", help="print the cross-validated figures only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    names = tune.GROUPS["dev"]
    data, embedding = collect(names, args.stores, args.cache)
    cv = cross_validate(data)
    print(f"passage hit@1 among the first {DEPTH} fused passages, cross-validated by article:")
    for name, r in cv.items():
        print(f"  {name:24} {r['questions']:4d} questions  fused {r['fused']:.3f}  re-ranked {r['reranked']:.3f}"
              f"  (answer among the {DEPTH}: {r['ceiling']:.3f})")
    w = fit_clogit([q for qs in data.values() for q in qs])
    weights = {f: round(float(v), 4) for f, v in zip(PASSAGE_FEATURES, w)}
    print("weights:", weights)
    if not args.no_write:
        meta = {"fitted": datetime.date.today().isoformat(), "sets": {n: len(q) for n, q in data.items()},
                "depth": DEPTH, "l2": L2, "cross_validated_passage_hit@1": cv,
                "how": "benchmarks/fit_rerank.py: conditional logit over the first passages of each answerable dev "
                       "question (positive: holds an expected fact); folds by article"}
        MODEL_PATH.write_text(PassageModel(weights, embedding, meta).to_json() + "\n", encoding="utf-8")
        print(f"wrote {MODEL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
