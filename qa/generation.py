"""The LLM answerer and the fallback wrapper that puts the offline answer in its place when it fails.

The offline answerer is the floor: a question it refuses as unanswerable is refused in LLM mode too (a
small model cannot tell that the sources lack the answer, and writes a plausible price instead), and a
generated answer is shown only sentence by sentence, as far as qa.guard finds each sentence supported by
the passage it cites. When nothing supported is left, the offline answer is shown with a one-line
notice that says why.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import closing

from llama_index.core.schema import NodeWithScore

from qa.answering import Answerer, ExtractiveAnswerer, defuse_markers, node_to_source, refusal
from qa.errors import LLMError
from qa.guard import AnswerGuard, GuardReport
from qa.llm import (
    REFUSAL_TOKEN,
    ContextOverflow,
    LLMClient,
    build_messages,
    check_citations,
    estimate_tokens,
    fit_sources,
)
from qa.query import Query
from qa.schema import Answer, Citation, Progress, Source
from qa.settings import LLMSettings
from qa.timing import stage

_SENTENCE_END = re.compile(r"[.!?。！？؟\n]")
UNSUPPORTED = "The language model's answer was not supported by its sources ({why}); this is the offline answer."


class LLMAnswerer:
    """Streams the supported sentences of a generated answer as they are checked.

    Yields Progress while the server reads the prompt and writes, each supported sentence as a text delta,
    then the final Answer. Raises LLMError when the endpoint fails (the fallback wrapper answers offline).
    """

    mode = "llm"

    def __init__(self, client: LLMClient, guard: AnswerGuard, config: LLMSettings,
                 floor: ExtractiveAnswerer | None = None):
        self.client, self.guard, self.config, self.floor = client, guard, config, floor

    def stream(self, query: Query, nodes: list[NodeWithScore]) -> Iterator[str | Answer | Progress]:
        started = time.perf_counter()
        sources = [node_to_source(n) for n in nodes]
        if not sources:
            yield refusal(query, sources, mode="llm")
            return
        floor = self.floor.assess(query, nodes, sources) if self.floor is not None and not query.overview else None
        if floor is not None and floor.refused:
            yield refusal(query, sources, mode="llm")
            return
        anchor = floor.chosen[0] if floor is not None and floor.chosen else None
        budget = self.config.context_tokens - self.config.max_answer_tokens - 64
        prompt_sources = fit_sources(query.query_str, sources[: self.config.max_sources], query.language, budget)
        try:
            raw, shown = yield from self._generate(query, prompt_sources, started)
        except ContextOverflow:  # the server's context is smaller than configured: once more, with half the sources
            prompt_sources = fit_sources(query.query_str, prompt_sources[: max(1, len(prompt_sources) // 2)],
                                         query.language, budget // 2)
            raw, shown = yield from self._generate(query, prompt_sources, started)
        answer = self._final(query, raw, prompt_sources, sources)
        if anchor is not None and answer.text and not answer.refused and not answer.unverified:
            _keep_the_floor(answer, sources[anchor.chunk_rank], anchor.text, prompt_sources)
        if shown and answer.text.startswith(shown) and len(answer.text) > len(shown):
            yield " " + answer.text[len(shown):].lstrip()  # the last sentence, checked once the reply ended
        elif not shown and answer.text and not answer.unverified:
            yield answer.text
        yield answer

    def _generate(self, query: Query, sources, started: float) -> Iterator:
        messages = build_messages(query.query_str, sources, query.language)
        yield Progress("reading", sum(estimate_tokens(m["content"]) for m in messages), time.perf_counter() - started)
        raw, shown, tokens, checked_ends = "", "", 0, 0
        deltas = self.client.stream(messages, max_tokens=self.config.max_answer_tokens)
        with stage("generate"), closing(deltas):  # closing: a loop cut short ends the server's reply too
            for delta in deltas:
                raw += delta
                tokens += 1
                if tokens % 8 == 1:
                    yield Progress("writing", tokens, time.perf_counter() - started)
                if self.config.show_unverified or REFUSAL_TOKEN.startswith(raw.strip()[:14]):
                    continue
                ends = len(_SENTENCE_END.findall(raw))
                if ends == checked_ends:  # checked once per completed sentence, not per token
                    continue
                checked_ends = ends
                report = self.guard.check(raw, sources, query.question, final=False)
                if len(report.shown) > len(shown) and report.shown.startswith(shown):
                    yield ((" " if shown else "") + report.shown[len(shown):].lstrip())
                    shown = report.shown
                if sum(c.reason == "repeated" for c in report.checks) >= 2:
                    break  # the model is looping: what it says from here on is said already
        return raw, shown

    def _final(self, query: Query, raw: str, prompt_sources, sources) -> Answer:
        if self.config.show_unverified:
            text, citations = check_citations(raw, prompt_sources)
            answer = Answer(text, citations, mode="llm", question=query.question, language=query.language,
                            sources=sources, unverified=True, notice="Not checked against its sources (QA_LLM_SHOW_UNVERIFIED).")
            return answer
        report = self.guard.check(raw, prompt_sources, query.question)
        if report.declined or (len(raw.strip()) >= 6 and REFUSAL_TOKEN.startswith(raw.strip())):
            return refusal(query, sources, mode="llm")
        if not report.shown:
            return Answer("", mode="llm", question=query.question, language=query.language, sources=sources,
                          notice=UNSUPPORTED.format(why=_why(report)), unverified=True, dropped=_dropped(report))
        text, citations = check_citations(report.shown, prompt_sources)
        quotes = {n: q for c in report.checks if c.supported for n, q in c.quotes.items()}
        # Each citation shows the passage sentence the answer restates, highlighted in its passage.
        citations = [Citation(c.number, c.source, c.title, quotes.get(c.number, c.snippet), c.score, c.language,
                              c.passage, c.chunk_id, c.url) for c in citations]
        answer = Answer(text, citations, mode="llm", question=query.question, language=query.language, sources=sources,
                        dropped=_dropped(report))
        if report.dropped:
            answer.notice = f"{len(report.dropped)} generated sentence(s) left out: not supported by their sources."
        return answer


def _keep_the_floor(answer: Answer, source: Source, sentence: str, prompt_sources: list[Source]) -> None:
    """The offline answer's best sentence, quoted after the generated ones when they do not restate it: a small
    model's supported sentences are often true but beside the point, and the answer should not lose what the
    offline answer would have said. Only a sentence of a passage the model was shown, cited by its number."""
    number = next((i for i, s in enumerate(prompt_sources, 1) if s.chunk_id == source.chunk_id), None)
    sentence = sentence.strip()
    if number is None or not sentence or sentence not in prompt_sources[number - 1].text:
        return
    if any(sentence in c.snippet or c.snippet in sentence for c in answer.citations if c.snippet.strip()):
        return  # already restated
    answer.text = f"{answer.text} {defuse_markers(sentence)} [{number}]"
    if all(c.number != number for c in answer.citations):
        s = prompt_sources[number - 1]
        answer.citations.append(Citation(number, s.source, s.title, sentence, s.score, s.language, s.text, s.chunk_id,
                                         s.url))
        answer.citations.sort(key=lambda c: c.number)


def _dropped(report: GuardReport) -> list[str]:
    return [f"{c.text} ({c.reason})" for c in report.dropped]


def _why(report: GuardReport) -> str:
    reasons = [c.reason for c in report.dropped]
    return reasons[0] if reasons else "no sentence with a citation"


class FallbackAnswerer:
    """The primary answerer, or the fallback's answer on the same nodes when the primary fails or shows nothing."""

    def __init__(self, primary: Answerer, fallback: Answerer):
        self.primary, self.fallback = primary, fallback
        self.mode = primary.mode

    def stream(self, query: Query, nodes: list[NodeWithScore], notice: str = "") -> Iterator[str | Answer | Progress]:
        dropped: list[str] = []
        if not notice:
            try:
                for event in self.primary.stream(query, nodes):
                    if isinstance(event, Answer) and not event.text and not event.refused:
                        notice, dropped = event.notice, event.dropped  # nothing supported: the offline answer instead
                        break
                    yield event
                else:
                    return
            except LLMError as exc:
                notice = f"{exc}. Showing the offline answer instead."
                yield "\n\n"
        for event in self.fallback.stream(query, nodes):
            if isinstance(event, Answer):
                event.notice, event.dropped = notice, dropped
            yield event
