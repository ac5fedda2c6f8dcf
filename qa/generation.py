"""The LLM answerer and the fallback wrapper that puts the offline answer in its place when it fails."""

from __future__ import annotations

from collections.abc import Iterator

from llama_index.core.schema import NodeWithScore

from qa.answering import Answerer, node_to_source, refusal
from qa.errors import LLMError
from qa.llm import REFUSAL_TOKEN, LLMClient, MarkerFilter, build_messages, check_citations
from qa.query import Query
from qa.schema import Answer
from qa.timing import stage


class LLMAnswerer:
    """Streams a generated answer whose [n] markers are checked against the sources as they arrive.

    Output is held until it is clear the reply is not the refusal token; a marker pointing to no source
    is dropped from the stream and from the final text alike.
    """

    mode = "llm"

    def __init__(self, client: LLMClient):
        self.client = client

    def stream(self, query: Query, nodes: list[NodeWithScore]) -> Iterator[str | Answer]:
        sources = [node_to_source(n) for n in nodes]
        if not sources:
            yield refusal(query, sources, mode="llm")
            return
        messages = build_messages(query.query_str, sources, query.language)
        filt = MarkerFilter(len(sources))
        raw = ""
        held = True
        with stage("generate"):
            for delta in self.client.stream(messages):
                raw += delta
                if held and (REFUSAL_TOKEN.startswith(raw.strip()) or raw.strip().startswith(REFUSAL_TOKEN)):
                    continue
                out = filt.feed(raw if held else delta)
                held = False
                if out:
                    yield out
            if not held:
                tail = filt.flush()
                if tail:
                    yield tail
        # A reply cut short inside the token ("NOT_IN") is still the model declining.
        if REFUSAL_TOKEN in raw or (held and REFUSAL_TOKEN.startswith(raw.strip())):
            yield refusal(query, sources, mode="llm")
            return
        text, citations = check_citations(raw, sources)
        answer = Answer(text, citations, refused=False, mode="llm", question=query.question,
                        language=query.language, sources=sources)
        if not citations:
            answer.unverified = True
            answer.notice = "This answer cites no source: treat it with care."
        yield answer


class FallbackAnswerer:
    """The primary answerer, or the fallback's answer on the same nodes when the primary fails."""

    def __init__(self, primary: Answerer, fallback: Answerer):
        self.primary, self.fallback = primary, fallback
        self.mode = primary.mode

    def stream(self, query: Query, nodes: list[NodeWithScore], notice: str = "") -> Iterator[str | Answer]:
        if not notice:
            try:
                yield from self.primary.stream(query, nodes)
                return
            except LLMError as exc:
                notice = f"{exc}. Showing the offline answer instead."
                yield "\n\n"
        for event in self.fallback.stream(query, nodes):
            if isinstance(event, Answer):
                event.notice = notice
            yield event
