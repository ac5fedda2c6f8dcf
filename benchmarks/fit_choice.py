"""Fit the sentence choice on the dev sets and write qa/data/choice.json.

    python benchmarks/fit_choice.py            # collect, cross-validate by article, fit on all, write
    python benchmarks/fit_choice.py --no-write # only the cross-validated figures

For every answerable case of the dev sets the engine retrieves as usual (passage re-ranker on, fitted choice
off) and scores the quotable sentences of its passages; a sentence is positive when it, quoted with the
neighbour the answerer would add, holds an expected fact. The same conditional logit as the passage
re-ranker (benchmarks/fit_rerank.py) is fitted over qa.choice.SENTENCE_FEATURES, with the same folds by
article. The figures printed are "first quoted sentence holds a fact" with the hand-set order and with the
fitted one. Held-out sets are never read.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fit_rerank  # noqa: E402
import tune  # noqa: E402

from qa.choice import MODEL_PATH, SENTENCE_FEATURES, sentence_features  # noqa: E402
from qa.rerank import PassageModel  # noqa: E402


def collect(names: list[str], stores: Path, cache: Path) -> tuple[dict[str, list[fit_rerank.Question]], str]:
    from qa.answering import neighbour
    from qa.embeddings import make_embedding
    from qa.evaluation import facts_found, load_testset

    model = tune.CachedEmbedding(make_embedding(tune.settings_for(names[0], stores, {})), cache)
    out: dict[str, list[fit_rerank.Question]] = {}
    for name in names:
        engine = tune.open_engine(name, stores, {"answering.sentence_choice": False}, model)
        p, settings = engine.pipeline, engine.settings
        rows: list[fit_rerank.Question] = []
        for case in load_testset(tune.SETS[name][1]):
            if not (case.answerable and case.expected_facts):
                continue
            query = p.analyzer.analyse(case.question, [tuple(t) for t in case.history])
            if query.overview:
                continue
            nodes = p.nodes(query, settings.retrieval.top_k, settings)
            sentences = p.offline.score_sentences(query, nodes) if nodes else []
            if len(sentences) < 2:
                continue
            beside = [neighbour(s, sentences, query.slot) for s in sentences]
            feats = sentence_features(query, sentences, p.offline.support, beside)
            X = np.array([[f[k] for k in SENTENCE_FEATURES] for f in feats])
            quotes = [s.text + (" " + b.text if b is not None else "") for s, b in zip(sentences, beside)]
            y = np.array([float(any(facts_found(t, case.expected_facts))) for t in quotes])
            rows.append((case.id, X, y))
        out[name] = rows
        model.save()
        print(f"[fit] {name}: {len(rows)} answerable questions", file=sys.stderr)
    return out, model.model_name


def main(argv: list[str] | None = None) -> int:
    args = fit_rerank.arguments(__doc__, argv)
    data, embedding = collect(tune.GROUPS["dev"], args.stores, args.cache)
    cv = fit_rerank.cross_validate(data)
    print("first quoted sentence holds an expected fact, cross-validated by article:")
    for name, r in cv.items():
        print(f"  {name:24} {r['questions']:4d} questions  hand-set {r['fused']:.3f}  fitted {r['reranked']:.3f}"
              f"  (some sentence holds it: {r['ceiling']:.3f})")
    w = fit_rerank.fit_clogit([q for qs in data.values() for q in qs])
    weights = {f: round(float(v), 4) for f, v in zip(SENTENCE_FEATURES, w)}
    print("weights:", weights)
    if not args.no_write:
        cv = {n: {"questions": r["questions"], "hand_set": r["fused"], "fitted": r["reranked"],
                  "ceiling": r["ceiling"]} for n, r in cv.items()}
        meta = {"fitted": datetime.date.today().isoformat(), "sets": {n: len(q) for n, q in data.items()},
                "l2": fit_rerank.L2, "cross_validated_first_sentence_holds_fact": cv,
                "how": "benchmarks/fit_choice.py: conditional logit over the quotable sentences of each answerable dev "
                       "question's passages (positive: it, with the neighbour quoted beside it, holds an expected "
                       "fact); folds by article"}
        MODEL_PATH.write_text(PassageModel(weights, embedding, meta, SENTENCE_FEATURES).to_json() + "\n",
                              encoding="utf-8")
        print(f"wrote {MODEL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
