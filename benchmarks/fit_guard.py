"""Choose the answer guard's similarity threshold on parallel sentences (qa/data/parallel.jsonl).

A generated sentence that restates a passage sentence, in any language, must pass; a sentence that says
something else about the same topic must not. Positives: a sentence and its translation. Hard negatives: a
sentence and the best of the other sentences of the same topic (the file has 15 topics of 8 sentences).
The threshold accepts 99.5 % of the translations across the language pairs of the UI; the script prints the
share of same-topic negatives it rejects.

    python benchmarks/fit_guard.py
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("en", "fr", "ar", "zh", "es", "de", "ru")
ACCEPT = 0.995  # generated sentences paraphrase more loosely than a translation: keep nearly all of these


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from qa.embeddings import make_embedding
    from qa.settings import Settings

    rows = [json.loads(line) for line in (ROOT / "qa" / "data" / "parallel.jsonl").read_text("utf-8").splitlines()]
    model = make_embedding(Settings(_env_file=None))
    vectors = {lang: model.encode([r[lang] for r in rows], is_query=False) for lang in LANGS}
    topic = np.arange(len(rows)) // 8
    pos, neg = [], []
    for a, b in itertools.permutations(LANGS, 2):
        sims = vectors[a] @ vectors[b].T
        pos.extend(np.diag(sims))
        same_topic = (topic[:, None] == topic[None, :]) & ~np.eye(len(rows), dtype=bool)
        neg.extend(np.where(same_topic, sims, -1).max(axis=1))
    pos, neg = np.array(pos), np.array(neg)
    threshold = float(np.quantile(pos, 1 - ACCEPT))
    print(f"translations: median {np.median(pos):.3f}; same-topic other sentences: median {np.median(neg):.3f}")
    print(f"threshold accepting {ACCEPT:.0%} of translations: {threshold:.3f}; "
          f"it rejects {(neg < threshold).mean():.1%} of the same-topic negatives")
    for t in (0.5, 0.55, 0.6, 0.65, 0.7):
        print(f"  at {t:.2f}: translations accepted {(pos >= t).mean():.1%}, negatives rejected {(neg < t).mean():.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
