"""The LLM answerer's stream protocol, the answer guard in the loop and the offline fallback, on a scripted client
(no server) and the real embedding.

Real servers are exercised in tests/test_llm.py (a stand-in for faults) and tests/test_llm_real.py (llama.cpp).
"""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, TextNode

from qa.errors import LLMError
from qa.generation import UNSUPPORTED, FallbackAnswerer, LLMAnswerer
from qa.guard import AnswerGuard
from qa.llm import ContextOverflow
from qa.query import Query
from qa.schema import Answer, Progress
from qa.settings import LLMSettings

TEXTS = ["OpenAI has delayed the public release of Sora for safety reasons. Red teamers are testing the model.",
         "The actor Ashton Kutcher is already testing Sora. He says it makes videos of 20 seconds."]
NODES = [NodeWithScore(node=TextNode(id_=f"c{i}", text=t, metadata={"source": f"d{i}.txt", "title": f"T{i}",
                                                                     "language": "en"}), score=1.0)
         for i, t in enumerate(TEXTS, 1)]
QUERY = Query(query_str="Why was Sora delayed?", question="Why was Sora delayed?", language="en", vector=np.ones(2))


class Scripted:
    """A client that replies with fixed deltas (then raises `error`), recording the prompts it got."""

    def __init__(self, deltas, error=None, fail_first=None):
        self.deltas, self.error, self.fail_first = deltas, error, fail_first
        self.prompts: list[str] = []

    def stream(self, messages, max_tokens=256):
        self.prompts.append(messages[-1]["content"])
        if self.fail_first is not None and len(self.prompts) == 1:
            raise self.fail_first
        yield from self.deltas
        if self.error:
            raise self.error


class Offline:
    mode = "extractive"

    def stream(self, query, nodes):
        yield "offline"
        yield Answer("offline [1]", question=query.question)


@pytest.fixture(scope="module")
def guard(embedding):
    return AnswerGuard(embedding, LLMSettings().guard_similarity)


def run(answerer):
    events = list(answerer.stream(QUERY, NODES))
    return [e for e in events if isinstance(e, str)], events[-1], [e for e in events if isinstance(e, Progress)]


def test_supported_sentences_stream_and_bad_markers_are_dropped(guard):
    client = Scripted(["OpenAI delayed Sora for safety [", "1][7", "] reasons. Ashton Kutcher ", "is testing it [2]."])
    deltas, answer, progress = run(LLMAnswerer(client, guard, LLMSettings()))
    assert '<source id="1"' in client.prompts[0] and '<source id="2"' in client.prompts[0]
    assert "".join(deltas) == answer.text == "OpenAI delayed Sora for safety [1] reasons. Ashton Kutcher is testing it [2]."
    assert [c.number for c in answer.citations] == [1, 2] and not answer.unverified and not answer.notice
    assert "delayed the public release" in answer.citations[0].snippet  # the passage sentence it restates
    assert progress[0].stage == "reading" and progress[0].tokens > 50


def test_an_invented_sentence_is_never_streamed_and_the_notice_says_so(guard):
    deltas, answer, _ = run(LLMAnswerer(Scripted(["Sora was delayed for safety reasons [1]. ",
                                                  "It costs 200 dollars a month [1]."]), guard, LLMSettings()))
    assert "200" not in "".join(deltas) and "200" not in answer.text
    assert answer.text == "Sora was delayed for safety reasons [1]." and "1 generated sentence" in answer.notice


@pytest.mark.parametrize("reply", [["NOT_IN_", "SOURCES"], ["NOT_IN"], ["  NOT_IN_SOURCES."],
                                   ["The sources do not ", "say why."]])
def test_a_declining_reply_is_the_refusal_and_never_streamed(guard, reply):
    deltas, answer, _ = run(LLMAnswerer(Scripted(reply), guard, LLMSettings()))
    assert "NOT_IN" not in "".join(deltas) and "sources do not" not in "".join(deltas)
    assert answer.refused and answer.mode == "llm" and "".join(deltas) in ("", answer.text)


def test_nothing_supported_falls_back_to_the_offline_answer_with_the_reason(guard):
    wrapped = FallbackAnswerer(LLMAnswerer(Scripted(["Sora was made by Google in 2019 [1]."]), guard, LLMSettings()),
                               Offline())
    deltas, answer, _ = run(wrapped)
    assert deltas == ["offline"] and answer.text == "offline [1]"
    assert answer.notice.startswith(UNSUPPORTED.split("(")[0]) and "2019" in answer.notice


def test_show_unverified_passes_the_reply_through_marked(guard):
    deltas, answer, _ = run(LLMAnswerer(Scripted(["Sora was made by Google [1]."]), guard,
                                        LLMSettings(show_unverified=True)))
    assert answer.text == "Sora was made by Google [1]." and answer.unverified and "QA_LLM_SHOW_UNVERIFIED" in answer.notice


def test_a_context_overflow_is_retried_once_with_fewer_sources(guard):
    client = Scripted(["OpenAI delayed Sora for safety reasons [1]."], fail_first=ContextOverflow("too long"))
    _, answer, _ = run(LLMAnswerer(client, guard, LLMSettings()))
    assert len(client.prompts) == 2 and '<source id="2"' in client.prompts[0] and '<source id="2"' not in client.prompts[1]
    assert answer.text == "OpenAI delayed Sora for safety reasons [1]."


def test_the_prompt_fits_the_configured_context(guard):
    long = [NodeWithScore(node=TextNode(id_=f"l{i}", text="Sora makes videos. " * 400, metadata={"source": f"{i}"}),
                          score=1.0) for i in range(4)]
    client = Scripted(["Sora makes videos [1]."])
    config = LLMSettings(context_tokens=1024, max_answer_tokens=128)
    list(LLMAnswerer(client, guard, config).stream(QUERY, long))
    from qa.llm import estimate_tokens

    assert estimate_tokens(client.prompts[0]) < 1024 - 128


def test_a_failing_endpoint_falls_back_on_the_same_nodes(guard):
    wrapped = FallbackAnswerer(LLMAnswerer(Scripted(["Sora was delayed for safety reasons [1]. Partial"],
                                                    error=LLMError("the endpoint x failed")), guard, LLMSettings()),
                               Offline())
    deltas, answer, _ = run(wrapped)
    assert deltas[0] == "Sora was delayed for safety reasons [1]." and deltas[-1] == "offline"
    assert answer.text == "offline [1]" and answer.notice.startswith("the endpoint x failed. Showing the offline")
