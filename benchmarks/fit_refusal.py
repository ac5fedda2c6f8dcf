"""Fit the offline answerer's refusal model on the dev sets and write qa/data/refusal.json.

    python benchmarks/fit_refusal.py                    # fit, choose the operating point, plot the curves
    python benchmarks/fit_refusal.py --curves-only      # plot the current model's curves (dev and held-out)

For every case of the dev sets (the Sora set tests/eval/testset.jsonl and the XQuAD tune fold, with
their real negatives: on-topic absent, off-topic, and questions of left-out articles) the engine answers
without a refusal model and records the features of qa.evidence.FEATURES. A logistic model of
"answerable" is fitted on them, each set weighing the same, and the threshold is the probability below
which at most 5 % of the answerable dev questions fall. Leave-one-set-out figures show how it transfers
to a corpus it was not fitted on. Held-out sets are never read here, except by --curves-only once the
settings are frozen, to draw their curves for the README.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tune  # noqa: E402

from qa.evidence import FEATURES, MODEL_PATH, RefusalModel  # noqa: E402

MAX_FALSE_REFUSALS = 0.05
L2 = 3.0  # ridge strength on standardised features; 1-10 gave the same leave-one-set-out AUC within 0.005


def collect(names: list[str], stores: Path, cache: Path, overrides: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Features and labels (1 = answerable) of every case, per set."""
    from qa.embeddings import make_embedding
    from qa.evaluation import load_testset

    model = tune.CachedEmbedding(make_embedding(tune.settings_for(names[0], stores, {})), cache)
    out = {}
    for name in names:
        engine = tune.open_engine(name, stores, {**overrides, "answering.refusal_model": False}, model)
        p = engine.pipeline
        rows, labels = [], []
        for case in load_testset(tune.SETS[name][1]):
            query = p.analyzer.analyse(case.question, [tuple(t) for t in case.history])
            nodes = p.nodes(query, engine.settings.retrieval.top_k, engine.settings)
            features = p.offline.assess(query, nodes).features
            rows.append([features[f] for f in FEATURES])
            labels.append(float(case.answerable))
        out[name] = (np.array(rows), np.array(labels))
        model.save()
    return out


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """Weighted, ridge-regularised logistic regression by Newton's method, on standardised features."""
    mu, sd = X.mean(0), X.std(0) + 1e-9
    A = np.hstack([(X - mu) / sd, np.ones((len(X), 1))])
    beta = np.zeros(A.shape[1])
    ridge = l2 * np.r_[np.ones(A.shape[1] - 1), 0.0]
    for _ in range(100):
        p = 1 / (1 + np.exp(-(A @ beta)))
        grad = A.T @ (w * (p - y)) + ridge * beta
        hess = (A * (w * p * (1 - p))[:, None]).T @ A + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    coef = beta[:-1] / sd
    return coef, float(beta[-1] - coef @ mu)


def set_weights(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.concatenate([np.full(len(y), len(np.concatenate([d[1] for d in data.values()])) / (len(data) * len(y)))
                           for _, y in data.values()])


def probabilities(X: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(X @ coef + intercept, -30, 30)))


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(len(scores))
    pos = y == 1
    return float((ranks[pos].mean() - (pos.sum() - 1) / 2) / max(1, (~pos).sum()))


def rates(p: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    """(answerable refused, unanswerable refused) at a threshold."""
    pos = y == 1
    return float((p[pos] < threshold).mean()), float((p[~pos] < threshold).mean()) if (~pos).any() else float("nan")


def fit(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> RefusalModel:
    X = np.concatenate([d[0] for d in data.values()])
    y = np.concatenate([d[1] for d in data.values()])
    w = set_weights(data)
    coef, intercept = fit_logistic(X, y, w)
    p = probabilities(X, coef, intercept)
    pos = y == 1
    # The weighted 5 % quantile of the answerable questions' probabilities: each set counts the same.
    order = np.argsort(p[pos])
    cum = np.cumsum(w[pos][order]) / w[pos].sum()
    threshold = float(p[pos][order][np.searchsorted(cum, MAX_FALSE_REFUSALS)])
    per_set, held_out = {}, {}
    for name, (Xs, ys) in data.items():
        ps = probabilities(Xs, coef, intercept)
        fr, ur = rates(ps, ys, threshold)
        per_set[name] = {"cases": len(ys), "answerable": int(ys.sum()), "auc": round(auc(ps, ys), 3),
                         "false_refusals": round(fr, 3), "unanswerable_refused": round(ur, 3)}
        rest = {k: v for k, v in data.items() if k != name}
        c2, i2 = fit_logistic(np.concatenate([d[0] for d in rest.values()]),
                              np.concatenate([d[1] for d in rest.values()]), set_weights(rest))
        p2 = probabilities(Xs, c2, i2)
        held_out[name] = {"auc": round(auc(p2, ys), 3)}
    meta = {
        "fitted": time.strftime("%Y-%m-%d"),
        "fitted_on": {k: v["cases"] for k, v in per_set.items()},
        "rule": f"threshold = weighted {MAX_FALSE_REFUSALS:.0%} quantile of P(answerable) over the answerable dev "
                "questions (each set weighs the same)",
        "dev": per_set,
        "leave_one_set_out": held_out,
        "l2": L2,
        "command": "python benchmarks/fit_refusal.py",
    }
    return RefusalModel({f: round(float(c), 6) for f, c in zip(FEATURES, coef)}, round(intercept, 6),
                        round(threshold, 6), meta)


def plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], model: RefusalModel, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    grid = np.linspace(0, 1, 201)
    for name, (X, y) in curves.items():
        p = np.array([model.probability(dict(zip(FEATURES, row))) for row in X])
        pts = np.array([rates(p, y, t) for t in grid])
        line, = ax.plot(pts[:, 0], pts[:, 1], label=name)
        fr, ur = rates(p, y, model.threshold)
        ax.plot([fr], [ur], "o", color=line.get_color())
    ax.axvline(MAX_FALSE_REFUSALS, color="grey", ls=":", lw=1)
    ax.set_xlabel("answerable questions refused")
    ax.set_ylabel("unanswerable questions refused")
    ax.set_xlim(0, 0.4)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stores", type=Path, default=Path("/tmp/qa-tune/stores"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/qa-tune/queries.pkl"))
    p.add_argument("--curves-only", action="store_true", help="plot the shipped model on dev and held-out sets")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="settings override")
    args = p.parse_args(argv)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    overrides = tune.parse_overrides(args.set)
    dev = collect(tune.GROUPS["dev"], args.stores, args.cache, overrides)
    if args.curves_only:
        model = RefusalModel.from_file(MODEL_PATH)
        held = collect([n for n in tune.GROUPS["heldout"] if tune.SETS[n][1].is_file()], args.stores, args.cache,
                       overrides)
        plot(held, model, ROOT / "docs" / "refusal-heldout.png", "Refusal trade-off on the held-out sets (dot: shipped "
             "threshold)")
    else:
        model = fit(dev)
        from qa.embeddings import make_embedding

        model.embedding = make_embedding(tune.settings_for(tune.GROUPS["dev"][0], args.stores, overrides)).model_name
        MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
        MODEL_PATH.write_text(model.to_json() + "\n", encoding="utf-8")
        print(model.to_json())
    plot(dev, model, ROOT / "docs" / "refusal-dev.png", "Refusal trade-off on the dev sets (dot: shipped threshold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
