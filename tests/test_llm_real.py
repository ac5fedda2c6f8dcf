"""LLM mode against a real model: llama.cpp's OpenAI-compatible server with SmolLM2-135M (tiny and often wrong).

What must hold whatever the model writes: every sentence shown is supported by the passage it cites (numbers and
names quoted, meaning close), an unanswerable question is refused, the stream says what it waits for, and the
chat UI answers through the model. The held-out quality of LLM mode is measured by `qa eval --mode llm` on a
slice of the held-out Sora set (tests/eval/heldout.jsonl), with thresholds near what was measured.
"""

from __future__ import annotations

import json
import re

import pytest
from gradio_client import Client

import qa
from benchmarks.llama_server import LlamaServer
from qa.guard import _numbers, attach_markers
from qa.schema import Progress
from qa.text import split_sentences

from conftest import ROOT, free_port, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama():
    with LlamaServer() as server:
        yield server


def llm_settings(seeded: qa.Settings, llama: LlamaServer, **overrides) -> qa.Settings:
    values = dict(corpus_dir=seeded.corpus_dir, persist_dir=seeded.persist_dir, collection=seeded.collection,
                  mode="llm", llm_base_url=llama.url, llm_model=llama.model, llm_temperature=0.0)
    return qa.Settings(**(values | overrides))


@pytest.fixture(scope="module")
def llm_engine(seeded, llama, engine):
    return qa.QAEngine(llm_settings(seeded, llama), embed_model=engine.embed_model)


def assert_supported(answer: qa.Answer) -> None:
    """Checks of our own, independent of the guard's code path: every shown sentence cites a passage of the
    answer, and every number in it is written in that passage."""
    assert answer.citations, answer
    passages = {c.number: c.passage for c in answer.citations}
    for sentence in split_sentences(attach_markers(answer.text)):  # "A quote. [1]" is one cited sentence
        cited = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        assert cited and all(n in passages for n in cited), (sentence, answer.text)
        body = re.sub(r"\[\d+\]", "", sentence)
        text = " ".join(passages[n] for n in cited) + " " + answer.question
        assert _numbers(body) <= _numbers(text) | {"1", "2", "3"}, (sentence, text)
    for c in answer.citations:
        assert c.snippet and c.snippet in c.passage


def test_an_answerable_question_gets_a_supported_generated_answer(llm_engine):
    answer = llm_engine.ask("Which Hollywood actor is testing Sora?")
    assert answer.mode == "llm" and not answer.refused, answer
    assert "Kutcher" in answer.text
    assert_supported(answer)


def test_a_question_the_articles_do_not_answer_is_refused(llm_engine):
    answer = llm_engine.ask("What is the capital of Australia?")
    assert answer.refused and not answer.citations


def test_the_stream_says_what_it_waits_for_then_shows_checked_sentences(llm_engine):
    events = list(llm_engine.stream("Pourquoi la sortie de Sora a-t-elle été retardée ?", progress=True))
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and progress[0].stage == "reading" and progress[0].tokens > 100
    assert any(p.stage == "writing" for p in progress)
    answer = events[-1]
    assert isinstance(answer, qa.Answer) and answer.text
    streamed = "".join(e for e in events if isinstance(e, str))
    assert re.sub(r"\s+", "", streamed).endswith(re.sub(r"\s+", "", answer.text)) or answer.mode == "llm"
    if answer.mode == "llm":
        assert re.sub(r"\s+", "", streamed) == re.sub(r"\s+", "", answer.text)
        assert_supported(answer)
    else:  # the model's answer held nothing supported: the offline answer, with the reason
        assert "not supported by its sources" in answer.notice and answer.dropped


def test_a_follow_up_is_condensed_by_the_model_and_answered(llm_engine):
    answer = llm_engine.ask("And who leaked it?", history=[("What is Sora?", "A video model by OpenAI [1].")])
    assert answer.text and not answer.refused and answer.citations
    if answer.mode == "llm":
        assert_supported(answer)


def test_the_chat_ui_answers_through_the_real_model(seeded, llama, engine):
    settings = llm_settings(seeded, llama, port=free_port())
    with serve(settings, engine.embed_model) as (url, *_):
        client = Client(url, verbose=False, download_files=False)
        job = client.submit("Which Hollywood actor is testing Sora?", None, api_name="/chat")
        final = job.result(timeout=180)
        statuses = [o.get("status", "") for o in job.outputs()[:-1]]
    assert any("reading" in s for s in statuses), statuses
    assert final["done"] and final["mode"] == "llm" and "Kutcher" in final["text"]
    assert final["citations"] and all(c["snippet"] in c["passage"] for c in final["citations"])


def _slice(path, per_language: int = 3, unanswerable: int = 4) -> list[dict]:
    """A fixed slice of the held-out set: the first answerable cases of each language, the first unanswerable."""
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = []
    for lang in ("en", "fr", "ar", "zh"):
        picked += [c for c in cases if c["language"] == lang and c["answerable"] and not c.get("history")][:per_language]
    picked += [c for c in cases if not c["answerable"]][:unanswerable]
    return picked


@pytest.mark.timeout(1800)  # 16 questions through a CPU server: 3-5 minutes on an idle machine
def test_held_out_quality_in_llm_mode(seeded, llama, monkeypatch, tmp_path, capsys):
    from qa.cli import main

    subset = tmp_path / "heldout-llm.jsonl"
    subset.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n"
                              for c in _slice(ROOT / "tests" / "eval" / "heldout.jsonl")), encoding="utf-8")
    for key, value in {"QA_CORPUS_DIR": seeded.corpus_dir, "QA_PERSIST_DIR": seeded.persist_dir,
                       "QA_COLLECTION": seeded.collection, "QA_LLM_BASE_URL": llama.url,
                       "QA_LLM_MODEL": llama.model, "QA_LLM_TEMPERATURE": "0"}.items():
        monkeypatch.setenv(key, str(value))
    out = tmp_path / "eval.json"
    code = main(["eval", "--mode", "llm", "--testset", str(subset), "--no-baselines", "--json", str(out),
                 # measured on this slice (2026-12-02): offline fact recall 0.538, LLM mode 0.538; hit@5 0.833;
                 # absent refused 0.25. What must hold whatever the model says: nothing uncited, no invented number.
                 "--min", "citation_validity=1.0", "--min", "fact_recall=0.5", "--min", "hit@5=0.8",
                 "--min", "refused_absent=0.25", "--max", "false_refusal_rate=0.1",
                 "--max", "uncited_shown=0", "--max", "numbers_unsupported=0"])
    printed = capsys.readouterr()
    assert code == 0, printed.out[-3000:] + printed.err
    summary = json.loads(out.read_text())["systems"]["ours"]["overall"]
    assert summary["cases"] == 16 and summary["first_text_p50_ms"] > 0 and "llm_answered" in summary
