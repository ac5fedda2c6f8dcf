"""Language centroids: a language with too few chunks is not centred on its own text."""

import numpy as np

from qa.retrieval import MIN_LANGUAGE_CHUNKS, _language_centroids


class _Store:
    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def read_chunks(self, ids, with_embeddings=False):
        return {"ids": ids, "embeddings": [self.vectors[i] for i in ids]}


def test_a_small_language_uses_the_mean_of_all_chunks():
    rng = np.random.default_rng(0)
    vectors = {f"fr{i}": rng.normal(size=8) for i in range(MIN_LANGUAGE_CHUNKS)} | {"en0": rng.normal(size=8)}
    metas = {cid: {"language": cid[:2]} for cid in vectors}
    centroids = _language_centroids(_Store(vectors), list(vectors), metas)
    overall = np.mean(list(vectors.values()), axis=0)
    assert np.allclose(centroids["en"], overall)
    assert not np.allclose(centroids["en"], vectors["en0"])
    assert np.allclose(centroids["fr"], np.mean([vectors[f"fr{i}"] for i in range(MIN_LANGUAGE_CHUNKS)], axis=0))
