"""Fit the offline answerer's refusal model on the dev sets and write qa/data/refusal.json.

    python benchmarks/fit_refusal.py                    # fit, choose the operating point, plot the curves
    python benchmarks/fit_refusal.py --curves-only      # plot the current model's curves (dev and held-out)

For every case of the dev sets (the Sora set tests/eval/testset.jsonl and the XQuAD tune fold, with
their real negatives: on-topic absent, off-topic, and questions of left-out articles) the engine answers
without a refusal model and records the features of qa.evidence.FEATURES. A logistic model of
"answerable" is fitted on them, each set weighing the same, and the threshold is the probability below
which at most 5 % of the answerable dev questions fall. Out-of-fold figures (each case scored by a model
fitted without its article, folds as in fit_rerank.py) say what that point refuses on unseen articles: a
model's own training cases sit higher than new ones. The out-of-fold 5 % point was measured as the
operating point and not kept (README, "How the defaults were chosen"). Leave-one-set-out figures show how
it transfers to a corpus it was not fitted on. Held-out sets are never read here, except by --curves-only once the
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
from fit_rerank import FOLDS, article  # noqa: E402

from qa.evidence import FEATURES, MODEL_PATH, RefusalModel  # noqa: E402

MAX_FALSE_REFUSALS = 0.05
L2 = 3.0  # ridge strength on standardised features; 1-10 gave the same leave-one-set-out AUC within 0.005


def collect(names: list[str], stores: Path, cache: Path,
            overrides: dict) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Features, labels (1 = answerable) and case ids of every case, per set."""
    from qa.embeddings import make_embedding
    from qa.evaluation import load_testset

    model = tune.CachedEmbedding(make_embedding(tune.settings_for(names[0], stores, {})), cache)
    out = {}
    for name in names:
        engine = tune.open_engine(name, stores, {**overrides, "answering.refusal_model": False}, model)
        p = engine.pipeline
        rows, labels, ids = [], [], []
        for case in load_testset(tune.SETS[name][1]):
            query = p.analyzer.analyse(case.question, [tuple(t) for t in case.history])
            nodes = p.nodes(query, engine.settings.retrieval.top_k, engine.settings)
            features = p.offline.assess(query, nodes).features
            rows.append([features[f] for f in FEATURES])
            labels.append(float(case.answerable))
            ids.append(case.id)
        out[name] = (np.array(rows), np.array(labels), ids)
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


def set_weights(data: dict[str, tuple]) -> np.ndarray:
    total = sum(len(d[1]) for d in data.values())
    return np.concatenate([np.full(len(d[1]), total / (len(data) * len(d[1]))) for d in data.values()])


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


def out_of_fold(X: np.ndarray, y: np.ndarray, w: np.ndarray, ids: list[str]) -> np.ndarray:
    """P(answerable) of each case from a model fitted without its article's cases (the four XQuAD scenarios
    share their articles; the Sora set is a fold of its own)."""
    arts = sorted({article(i) for i in ids} - {"sora"})
    fold_of = {a: k % FOLDS for k, a in enumerate(arts)} | {"sora": FOLDS}
    folds = np.array([fold_of[article(i)] for i in ids])
    p = np.zeros(len(y))
    for k in np.unique(folds):
        train = folds != k
        coef, intercept = fit_logistic(X[train], y[train], w[train])
        p[~train] = probabilities(X[~train], coef, intercept)
    return p


def quantile_threshold(p: np.ndarray, y: np.ndarray, w: np.ndarray, q: float = MAX_FALSE_REFUSALS) -> float:
    """The weighted q quantile of the answerable questions' probabilities (each set counts the same)."""
    pos = y == 1
    order = np.argsort(p[pos])
    cum = np.cumsum(w[pos][order]) / w[pos].sum()
    return float(p[pos][order][np.searchsorted(cum, q)])


def fit(data: dict[str, tuple[np.ndarray, np.ndarray, list[str]]]) -> RefusalModel:
    X = np.concatenate([d[0] for d in data.values()])
    y = np.concatenate([d[1] for d in data.values()])
    ids = [i for d in data.values() for i in d[2]]
    w = set_weights(data)
    coef, intercept = fit_logistic(X, y, w)
    oof = out_of_fold(X, y, w, ids)
    threshold = quantile_threshold(probabilities(X, coef, intercept), y, w)
    per_set, held_out = {}, {}
    start = 0
    for name, (Xs, ys, _) in data.items():
        ps = probabilities(Xs, coef, intercept)
        po = oof[start:start + len(ys)]
        start += len(ys)
        fr, ur = rates(ps, ys, threshold)
        ofr, our = rates(po, ys, threshold)
        per_set[name] = {"cases": len(ys), "answerable": int(ys.sum()), "auc": round(auc(ps, ys), 3),
                         "false_refusals": round(fr, 3), "unanswerable_refused": round(ur, 3),
                         "out_of_fold": {"auc": round(auc(po, ys), 3), "false_refusals": round(ofr, 3),
                                         "unanswerable_refused": round(our, 3)}}
        rest = {k: v for k, v in data.items() if k != name}
        c2, i2 = fit_logistic(np.concatenate([d[0] for d in rest.values()]),
                              np.concatenate([d[1] for d in rest.values()]), set_weights(rest))
        p2 = probabilities(Xs, c2, i2)
        held_out[name] = {"auc": round(auc(p2, ys), 3)}
    meta = {
        "fitted": time.strftime("%Y-%m-%d"),
        "fitted_on": {k: v["cases"] for k, v in per_set.items()},
        "rule": f"threshold = weighted {MAX_FALSE_REFUSALS:.0%} quantile of P(answerable) over the answerable dev "
                "questions (each set weighs the same); out_of_fold: the same cases scored by models fitted without "
                f"their article ({FOLDS} folds + the Sora set)",
        "out_of_fold_threshold": round(quantile_threshold(oof, y, w), 6),
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
    for name, (X, y, *_) in curves.items():
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
