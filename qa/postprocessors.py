"""Node postprocessors applied after the fusion."""

from __future__ import annotations

import numpy as np
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle


class DiversityPostprocessor(BaseNodePostprocessor):
    """Keeps the best top_k nodes while skipping near-duplicates (the same story in two languages).

    A node whose embedding is closer than `max_similarity` to an already kept node from another file,
    or that would be the (max_per_source + 1)-th from one file, goes after all others, so it is used only
    when nothing else is left.
    """

    top_k: int = 5
    max_similarity: float = 0.9
    max_per_source: int = 3

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        kept: list[NodeWithScore] = []
        kept_vectors: list[np.ndarray] = []
        deferred: list[NodeWithScore] = []
        per_source: dict[str, int] = {}
        for n in nodes:
            src = n.node.metadata.get("source", "")
            emb = np.asarray(n.node.embedding or [], dtype=np.float32)
            duplicate = emb.size and any(
                k.node.metadata.get("source") != src and float(emb @ v) > self.max_similarity
                for k, v in zip(kept, kept_vectors)
            )
            if duplicate or per_source.get(src, 0) >= self.max_per_source:
                deferred.append(n)
                continue
            kept.append(n)
            kept_vectors.append(emb)
            per_source[src] = per_source.get(src, 0) + 1
            if len(kept) == self.top_k:
                break
        return (kept + deferred)[: self.top_k]
