"""The refusal model: fitted on dev with real negatives; how its operating point transfers, measured out of fold."""

from __future__ import annotations

import numpy as np

from benchmarks import fit_refusal
from qa.evidence import MODEL_PATH, RefusalModel


def test_the_shipped_model_says_how_its_operating_point_transfers_to_unseen_articles():
    model = RefusalModel.from_file(MODEL_PATH)
    meta = model.meta
    assert "out_of_fold" in meta["rule"]
    # A model's own training cases score higher than new ones: its 5 % point refuses more of them out of fold.
    assert meta["out_of_fold_threshold"] < model.threshold
    xquad = [f for name, f in meta["dev"].items() if name.startswith("xq-")]
    assert sum(f["out_of_fold"]["false_refusals"] for f in xquad) > sum(f["false_refusals"] for f in xquad)
    for name, figures in meta["dev"].items():
        assert figures["false_refusals"] <= 0.075 and figures["out_of_fold"]["auc"] >= 0.85, name


def test_out_of_fold_scores_are_lower_for_a_model_that_overfits():
    """Many noise features, few cases: in sample the positives look certain, out of fold they do not."""
    rng = np.random.default_rng(0)
    n, k = 240, 30
    y = (rng.random(n) < 0.7).astype(float)
    X = rng.normal(size=(n, k))
    X[:, 0] += 1.5 * y  # one real signal
    ids = [f"xq-tune-mixed-art{i % 12}-p0-{i}" for i in range(n)]
    w = np.ones(n)
    coef, intercept = fit_refusal.fit_logistic(X, y, w, l2=0.01)
    inside = fit_refusal.probabilities(X, coef, intercept)
    outside = fit_refusal.out_of_fold(X, y, w, ids)
    assert fit_refusal.quantile_threshold(outside, y, w) < fit_refusal.quantile_threshold(inside, y, w)
    assert fit_refusal.rates(outside, y, fit_refusal.quantile_threshold(inside, y, w))[0] > 0.05
