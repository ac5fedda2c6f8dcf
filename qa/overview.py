"""Answers about the corpus as a whole: each document's lead sentence, cited.

"Summarize the articles" or "What does the Chinese article say?" has no single passage that answers
it, so the similarity of its words to a sentence means little. The overview quotes the first sentence
of each document (of the named ones, when the question names some), the way a news digest does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from llama_index.core.schema import NodeWithScore

from qa.answering import defuse_markers, names, node_to_source, quotable, refusal, stream_text
from qa.query import Query
from qa.schema import Answer, Citation
from qa.sentences import SentenceReader

INTRO = {  # (one document, several documents)
    "en": ("One document answers this; it opens with:", "{n} documents; each opens with:"),
    "fr": ("Un document y répond ; il commence ainsi :", "{n} documents ; chacun commence ainsi :"),
    "ar": ("تجيب عن ذلك مقالة واحدة، تبدأ هكذا:", "عدد المقالات {n}، وتبدأ كل منها هكذا:"),
    "zh": ("有一篇文章，开头如下：", "共{n}篇文章，各篇开头如下："),
    "es": ("Un documento responde; empieza así:", "{n} documentos; cada uno empieza así:"),
    "de": ("Ein Dokument; es beginnt so:", "{n} Dokumente; sie beginnen so:"),
}
_LETTER = re.compile(r"[^\W\d_]")


def lead_like(snippet: str, title: str) -> bool:
    """A sentence that can open a digest: quotable, and mostly words (not a date line or a byline)."""
    return quotable(snippet, title) and len(_LETTER.findall(snippet)) >= 12


def overview_nodes(query: Query, candidates: list[NodeWithScore], snapshot, top_k: int) -> list[NodeWithScore]:
    """The lead chunk of each document: the named ones, else those the question retrieved first, then the rest."""
    docs = list(snapshot.documents)
    order = list(dict.fromkeys([n.node.metadata.get("source") for n in candidates] + docs))
    order = [s for s in order if query.permits(s)]
    if query.prefer:
        order = [s for s in order if s in query.prefer]
    chosen = [snapshot.documents[s].first_chunk for s in order[:top_k] if s in snapshot.documents]
    snapshot.texts.prefetch(chosen)
    return [NodeWithScore(node=snapshot.node(cid, None), score=1.0) for cid in chosen]


def with_lead(query: Query, nodes: list[NodeWithScore], snapshot, top_k: int) -> list[NodeWithScore]:
    """For "What is X?": the first document's lead chunk joins the passages when it names X, since an article
    introduces a name at its first mention (it takes the last place, so the passages stay top_k)."""
    if not query.defines or not nodes:
        return nodes
    info = snapshot.documents.get(nodes[0].node.metadata.get("source"))
    if info is None or any(n.node.node_id == info.first_chunk for n in nodes):
        return nodes
    if not names(query.defines, snapshot.texts[info.first_chunk]):
        return nodes
    kept = nodes[: top_k - 1] if len(nodes) >= top_k else nodes
    return kept + [NodeWithScore(node=snapshot.node(info.first_chunk, None), score=float(kept[-1].score or 0.0))]


class OverviewAnswerer:
    """Quotes the first quotable sentence of each given lead chunk, one citation each."""

    mode = "extractive"

    def __init__(self, store: SentenceReader | None, sentence_source=None):
        self.store = store
        self.sentence_source = sentence_source or self._stored

    def _stored(self, nodes: list[NodeWithScore]):
        got = self.store.read_sentences([n.node.node_id for n in nodes])
        return [(t, md["chunk_id"], md.get("index", 0)) for t, md in zip(got["documents"], got["metadatas"])]

    def stream(self, query: Query, nodes: list[NodeWithScore]) -> Iterator[str | Answer]:
        yield from stream_text(self.answer(query, nodes))

    def answer(self, query: Query, nodes: list[NodeWithScore]) -> Answer:
        sources = [node_to_source(n) for n in nodes]
        leads: dict[str, tuple[int, str]] = {}
        for text, chunk_id, index in self.sentence_source(nodes):
            title = next((s.title for s in sources if s.chunk_id == chunk_id), "")
            snippet = text.strip()
            if lead_like(snippet, title) and (chunk_id not in leads or index < leads[chunk_id][0]):
                leads[chunk_id] = (index, snippet)
        citations, parts = [], []
        for src in sources:
            if src.chunk_id not in leads:
                continue
            snippet = leads[src.chunk_id][1]
            number = len(citations) + 1
            citations.append(Citation(number, src.source, src.title, snippet, 1.0, src.language, src.text,
                                      src.chunk_id, src.url))
            parts.append(f"{defuse_markers(snippet)} [{number}]")
        if not citations:
            return refusal(query, sources)
        one, several = INTRO.get(query.language, INTRO["en"])
        intro = (one if len(citations) == 1 else several).format(n=len(citations))
        return Answer(intro + " " + " ".join(parts), citations, mode="extractive", question=query.question,
                      language=query.language, sources=sources)
