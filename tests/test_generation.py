"""The LLM answerer's stream protocol and the offline fallback, on a scripted client (no server).

Real servers are exercised in tests/test_llm.py (a stand-in for faults) and tests/test_llm_real.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, TextNode

from qa.errors import LLMError
from qa.generation import FallbackAnswerer, LLMAnswerer
from qa.query import Query
from qa.schema import Answer

NODES = [NodeWithScore(node=TextNode(id_=f"c{i}", text=f"Passage {i} about Sora.",
                                     metadata={"source": f"d{i}.txt", "title": f"T{i}", "language": "en"}), score=1.0)
         for i in (1, 2)]
QUERY = Query(query_str="What is Sora?", question="What is Sora?", language="en", vector=np.ones(2))


class Scripted:
    def __init__(self, deltas, error=None):
        self.deltas, self.error = deltas, error

    def stream(self, messages):
        assert "<source id=\"1\"" in messages[-1]["content"]
        yield from self.deltas
        if self.error:
            raise self.error


class Offline:
    mode = "extractive"

    def stream(self, query, nodes):
        yield "offline"
        yield Answer("offline [1]", question=query.question)


def run(answerer):
    events = list(answerer.stream(QUERY, NODES))
    return [e for e in events if isinstance(e, str)], events[-1]


def test_markers_to_no_source_are_dropped_from_stream_and_text():
    deltas, answer = run(LLMAnswerer(Scripted(["Sora is a model [", "1][7", "]. It makes video [2]."])))
    assert "".join(deltas) == answer.text == "Sora is a model [1]. It makes video [2]."
    assert [c.number for c in answer.citations] == [1, 2] and not answer.unverified


@pytest.mark.parametrize("reply", [["NOT_IN_", "SOURCES"], ["NOT_IN"], ["  NOT_IN_SOURCES."]])
def test_the_refusal_token_is_never_streamed(reply):
    deltas, answer = run(LLMAnswerer(Scripted(reply)))
    assert deltas == [] and answer.refused and answer.mode == "llm"


def test_an_answer_without_citations_is_flagged():
    _, answer = run(LLMAnswerer(Scripted(["Sora is a model."])))
    assert answer.unverified and "cites no source" in answer.notice


def test_a_failing_endpoint_falls_back_on_the_same_nodes():
    wrapped = FallbackAnswerer(LLMAnswerer(Scripted(["Partial", " text"], error=LLMError("the endpoint x failed"))),
                               Offline())
    deltas, answer = run(wrapped)
    assert deltas[:2] == ["Partial", " text"] and deltas[-1] == "offline"
    assert answer.text == "offline [1]" and answer.notice.startswith("the endpoint x failed. Showing the offline")
