"""Export of a conversation and feedback on answers, from the UI's handlers to `qa eval --from-feedback`."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest

import qa
from qa import ui
from qa.conversations import FeedbackLog, draft_cases, to_json, to_markdown
from qa.schema import Answer, Citation

ANSWER = Answer("Ashton Kutcher is testing it [1].", [Citation(1, "a.pdf", "Hollywood", "Ashton Kutcher teste Sora.",
                                                               0.9, "fr", "… Ashton Kutcher teste Sora. …", "c1", "", 3)],
                question="Who tests Sora?", language="en")


def test_markdown_and_json_keep_the_markers_and_the_numbered_sources():
    md = to_markdown([("Who tests Sora?", ANSWER)])
    assert "## Who tests Sora?" in md and "Ashton Kutcher is testing it [1]." in md
    assert "[1] Hollywood (a.pdf, page 3): “Ashton Kutcher teste Sora.”" in md
    (item,) = json.loads(to_json([("Who tests Sora?", ANSWER)]))
    assert item["answer"] == ANSWER.text and item["citations"][0] == {
        "number": 1, "source": "a.pdf", "title": "Hollywood", "snippet": "Ashton Kutcher teste Sora.", "page": 3}


def test_thumbs_down_become_draft_cases_once_per_question(tmp_path):
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    log.append("Who tests Sora?", ANSWER, liked=True, who="rita")
    log.append("How much does Sora cost?", ANSWER, liked=False, who="rita")
    log.append("How much does Sora cost?", ANSWER, liked=False, who="ed")
    drafts = draft_cases(log.read())
    assert [d["question"] for d in drafts] == ["How much does Sora cost?"]
    assert drafts[0]["expected_facts"] == [] and drafts[0]["draft"]["cited"] == ["a.pdf"]
    (tmp_path / "bad.jsonl").write_text('{"rating": "down"}\nnot json\n')
    with pytest.raises(qa.ConfigError, match="line 2: not JSON"):
        FeedbackLog(tmp_path / "bad.jsonl").read()


def test_the_chat_handlers_export_and_store_ratings_of_real_answers(seeded, engine, tmp_path, capsys):
    settings = seeded.replace(feedback_file=tmp_path / "feedback.jsonl")
    handler = ui.UI(engine, settings)
    steps = list(handler.respond("How much does a Sora subscription cost per month?", [], []))
    turns = steps[-1][3]
    with pytest.raises(gr.Error, match="Nothing to export"):
        handler.export([])
    files = handler.export(turns)["value"]
    md, js = (Path(f).read_text(encoding="utf-8") for f in files)
    answer = turns[0].answer
    assert answer.text in md and json.loads(js)[0]["answer"] == answer.text

    message = handler.feedback(turns, gr.LikeData(None, {"index": 1, "value": "", "liked": False}))
    assert "saved" in message
    (entry,) = FeedbackLog(settings.feedback_path).read()
    assert entry["rating"] == "down" and entry["question"].startswith("How much") and entry["answer"] == answer.text
    assert "rated" in handler.feedback(turns, gr.LikeData(None, {"index": 7, "value": "", "liked": True}))

    from qa.cli import main

    out = tmp_path / "drafts.jsonl"
    assert main(["eval", "--from-feedback", str(settings.feedback_path), "--drafts", str(out)]) == 0
    (draft,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert draft["question"] == entry["question"] and "review" in draft["draft"]
    assert main(["eval", "--from-feedback", str(tmp_path / "missing.jsonl")]) == 1
    assert "no feedback file" in capsys.readouterr().err
