"""Conversations kept by their readers: export as Markdown or JSON, and thumbs up/down stored as feedback.

Feedback is one JSON line per rating in a file next to the store (settings.feedback_path): when, who, the rating,
the question, the answer and its citations. `qa eval --from-feedback FILE` turns the thumbs-down entries into
draft test cases, to be reviewed (expected sources and facts filled in by a person) before they join a test set.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

from qa.errors import ConfigError
from qa.schema import Answer

Exchange = tuple[str, Answer]  # a question and its final answer


def _citations(answer: Answer) -> list[dict]:
    return [{"number": c.number, "source": c.source, "title": c.title, "snippet": c.snippet,
             **({"page": c.page} if c.page else {}), **({"url": c.url} if c.url else {})} for c in answer.citations]


def to_markdown(exchanges: list[Exchange]) -> str:
    """The conversation as Markdown: each question, its answer with [n] markers, then the numbered sources."""
    parts = ["# Conversation with the news corpus", ""]
    for question, answer in exchanges:
        parts += [f"## {question.strip()}", "", answer.text.strip() or "(no answer)", ""]
        if answer.notice:
            parts += [f"> {answer.notice}", ""]
        for c in _citations(answer):
            where = c["source"] + (f", page {c['page']}" if "page" in c else "")
            parts.append(f"[{c['number']}] {c['title'] or c['source']} ({where}): “{c['snippet'].strip()}”")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def to_json(exchanges: list[Exchange]) -> str:
    """The conversation as JSON: a list of {question, answer, mode, refused, notice, citations}."""
    return json.dumps([{"question": q, "answer": a.text, "mode": a.mode, "refused": a.refused, "notice": a.notice,
                        "language": a.language, "citations": _citations(a)} for q, a in exchanges],
                      ensure_ascii=False, indent=2)


class FeedbackLog:
    """Appends ratings as JSON lines; one writer at a time within the process."""

    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, question: str, answer: Answer, liked: bool, who: str = "") -> dict:
        entry = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who,
                 "rating": "up" if liked else "down", "question": question, "answer": answer.text,
                 "language": answer.language, "mode": answer.mode, "refused": answer.refused,
                 "citations": _citations(answer)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry

    def read(self) -> list[dict]:
        if not self.path.exists():
            raise ConfigError(f"no feedback file at {self.path}")
        entries = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise ConfigError(f"{self.path}, line {number}: not JSON; fix or remove the line") from None
        return entries


def draft_cases(entries: list[dict]) -> list[dict]:
    """Thumbs-down entries as draft test cases (the testset.jsonl schema), one per distinct question. The
    expected sources and facts are left for a reviewer; `draft` says what the bot answered."""
    drafts, seen = [], set()
    for e in entries:
        question = str(e.get("question", "")).strip()
        if e.get("rating") != "down" or not question or question in seen:
            continue
        seen.add(question)
        drafts.append({
            "id": "fb-" + hashlib.sha256(question.encode()).hexdigest()[:10],
            "question": question,
            "language": e.get("language") or "und",
            "expected_sources": [],
            "expected_facts": [],
            "answerable": not e.get("refused", False),
            "draft": {"answered": e.get("answer", ""), "cited": [c.get("source") for c in e.get("citations", [])],
                      "review": "fill expected_sources and expected_facts (or set answerable false), then drop "
                                "this field"},
        })
    return drafts


def exchanges_of(turns) -> list[Exchange]:
    """The finished turns of a browser session (qa.ui.Turn), as (question, answer) pairs."""
    return [(t.question, t.answer) for t in turns or [] if getattr(t, "answer", None) is not None]
