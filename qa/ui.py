"""The browser chat UI on Gradio: safe HTML rendering, upload checks and the Blocks app.

Everything shown in the page that comes from a document (answer text, titles, file names, snippets,
passages) is HTML-escaped here and never rendered as Markdown, so markup inside an article shows as
text and fetches nothing. ``app.py`` only parses flags, opens the engine and calls :func:`build_app`
and :func:`launch`.

API endpoints (for ``gradio_client``):

* ``/chat``  (question: str, history: [[question, answer], ...]) streams dicts, the last one is the
  full answer (see :meth:`UI.api_chat`);
* ``/ask``   (question: str, history) returns the answer as a dict (``qa.Answer.to_dict()``);
* ``/upload`` (files) adds .txt/.md/.html documents to the corpus and returns a short report.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import unquote

import gradio as gr

from qa.engine import QAEngine, clean_question
from qa.errors import ConfigError, LLMError, QAError, StoreError
from qa.ingest import ingest
from qa.loading import parse
from qa.schema import Answer, Citation
from qa.settings import Settings

log = logging.getLogger(__name__)

TITLE = "News QA"
UPLOAD_SUFFIXES = (".txt", ".md", ".html")
UPLOAD_DIR = "uploads"
EXAMPLES = [
    "Why was Sora's release delayed?",
    "Pourquoi la sortie de Sora a-t-elle été retardée ?",
    "من هو الممثل الهوليوودي الذي يختبر نموذج Sora؟",
    "Sora 可以生成多长的视频？",
]
GENERIC_ERROR = "Something went wrong while answering; the details are in the server log. Please try again."
_MARKER = re.compile(r"\[(\d{1,3})\]")
_LANG_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")

# Signatures of common binary formats, for a clear message when one arrives with a text suffix.
_BINARY_SIGNATURES = {
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or Office document)",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x7fELF": "an executable",
    b"MZ": "a Windows executable",
    b"{\\rtf": "an RTF document",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Office document",
}


# --- rendering ------------------------------------------------------------------------------------

def esc(text: Any) -> str:
    """HTML-escape anything shown in the page (quotes included, so it is safe in attributes too)."""
    return html.escape(str(text if text is not None else ""), quote=True)


def _lang_attr(language: str) -> str:
    return f' lang="{esc(language)}"' if language and _LANG_CODE.fullmatch(language) else ""


def render_question_html(question: str) -> str:
    return f'<div class="qa-msg qa-question" dir="auto">{esc(question)}</div>'


def render_answer_html(
    text: str,
    citations: list[Citation] | None = None,
    *,
    notice: str = "",
    refused: bool = False,
    pending: bool = False,
) -> str:
    """The chat message of an answer: escaped text, its [n] markers as badges, and any notice.

    The answer's words come from the documents, so they are escaped and never parsed as Markdown.
    When citations are given, only markers that match a citation become badges.
    """
    known = {c.number: c for c in citations or []}

    def badge(m: re.Match) -> str:
        n = int(m.group(1))
        if citations is not None and n not in known:
            return m.group(0)
        title = f' title="{esc(known[n].title)}"' if n in known else ""
        return f'<span class="qa-cite"{title}>[{n}]</span>'

    body = _MARKER.sub(badge, esc(text))
    if pending:
        body += '<span class="qa-typing" aria-label="answering">…</span>'
    classes = "qa-msg qa-answer" + (" qa-refused" if refused else "")
    out = f'<div class="{classes}" dir="auto">{body}</div>'
    if notice:
        out += render_notice_html(notice)
    return out


def render_notice_html(message: str, kind: str = "warning") -> str:
    if not message:
        return ""
    return f'<div class="qa-notice qa-notice-{esc(kind)}" role="status" dir="auto">{esc(message)}</div>'


def highlight(passage: str, snippet: str) -> str:
    """The escaped passage with the snippet wrapped in <mark> (matched exactly, else modulo whitespace)."""
    if not snippet:
        return esc(passage)
    start = passage.find(snippet)
    end = start + len(snippet)
    if start < 0:
        words = snippet.split()
        if not words:
            return esc(passage)
        m = re.search(r"\s+".join(re.escape(w) for w in words), passage)
        if not m:
            return esc(passage)
        start, end = m.span()
    return f"{esc(passage[:start])}<mark>{esc(passage[start:end])}</mark>{esc(passage[end:])}"


def render_citation_html(c: Citation) -> str:
    lang = _lang_attr(c.language)
    passage = c.passage or c.snippet
    context = ""
    if passage.strip() != c.snippet.strip():  # an LLM citation quotes its whole passage: nothing to add
        context = (
            '<details class="qa-context" open><summary>Passage (the quoted sentence is highlighted)</summary>'
            f'<div class="qa-passage" dir="auto"{lang}>{highlight(passage, c.snippet)}</div></details>'
        )
    link = ""
    if c.url and c.url.startswith(("http://", "https://")):
        # Shown as text, not a link: the page makes no outside request and the reader sees the address.
        shown = unquote(c.url)
        shown = shown if len(shown) <= 90 else shown[:89] + "…"
        link = f'<div class="qa-url" dir="ltr" title="{esc(c.url)}">{esc(shown)}</div>'
    return (
        f'<article class="qa-source" id="qa-src-{c.number}" data-n="{c.number}">'
        f'<header class="qa-source-head"><span class="qa-num">[{c.number}]</span>'
        f'<span class="qa-title" dir="auto"{lang}>{esc(c.title or c.source)}</span></header>'
        f'<div class="qa-meta"><span class="qa-file" dir="auto">{esc(c.source)}</span>'
        f' · <span class="qa-lang">{esc(c.language or "?")}</span>'
        f' · <span class="qa-score">score {c.score:.2f}</span></div>'
        f"{link}"
        f'<blockquote class="qa-snippet" dir="auto"{lang}>{esc(c.snippet)}</blockquote>'
        f"{context}"
        f"</article>"
    )


SOURCES_EMPTY = (
    '<div class="qa-sources qa-sources-empty"><p>Ask a question: the passages the answer quotes appear here, '
    "numbered like the <span class=\"qa-cite\">[n]</span> markers in the answer.</p></div>"
)


def render_sources_html(answer: Answer | None, *, status: str = "") -> str:
    """The sources panel: one card per citation with title, file, language, snippet and passage."""
    if answer is None:
        if status:
            return f'<div class="qa-sources qa-sources-empty"><p>{esc(status)}</p></div>'
        return SOURCES_EMPTY
    head = f'<div class="qa-sources-q" dir="auto">Sources for: <q>{esc(answer.question)}</q></div>'
    if answer.refused or not answer.citations:
        reason = (
            "No passage in the corpus supports an answer to this question."
            if answer.refused
            else "This answer cites no source."
        )
        return f'<div class="qa-sources">{head}<p class="qa-none">{esc(reason)}</p></div>'
    cards = "".join(render_citation_html(c) for c in answer.citations)
    took = answer.timings.get("total")
    foot = f'<div class="qa-meta qa-took">{esc(answer.mode)} answer' + (f" in {took:.1f} s" if took else "") + "</div>"
    return f'<div class="qa-sources">{head}{cards}{foot}</div>'


def render_status_html(engine: QAEngine) -> str:
    """The header line: answer mode (never a key) and what the corpus holds."""
    try:
        stats = engine.stats()
    except Exception:  # noqa: BLE001 - a status line must not break the page
        log.exception("cannot read the corpus statistics")
        return render_notice_html("The corpus statistics are unavailable (see the server log).")
    langs = ", ".join(f"{esc(k)} ({v})" for k, v in sorted(stats.languages.items(), key=lambda kv: (-kv[1], kv[0])))
    mode = "llm" if engine.llm else "offline"
    docs = "".join(
        f'<li><span class="qa-file" dir="auto">{esc(s)}</span> — <span dir="auto">{esc(t)}</span></li>'
        for s, t in stats.titles.items()
    )
    return (
        f'<div class="qa-status">'
        f'<span class="qa-pill qa-mode qa-mode-{mode}">Mode: <b>{esc(engine.mode_label)}</b></span>'
        f'<span class="qa-pill qa-corpus">Corpus: <b class="qa-docs">{stats.documents}</b> documents, '
        f'<b class="qa-chunks">{stats.chunks}</b> chunks</span>'
        f'<span class="qa-pill qa-langs">Languages: {langs or "none"}</span>'
        f'<details class="qa-doclist"><summary>Documents</summary><ul>{docs}</ul></details>'
        f"</div>"
    )


# --- questions ------------------------------------------------------------------------------------

def polite(exc: Exception) -> str:
    return f"Sorry, I can't take this question: {exc}."


def short_error(exc: BaseException) -> str:
    """A one-line message for the page; the traceback of an unexpected error goes to the log only."""
    if isinstance(exc, ConfigError):
        return polite(exc)
    if isinstance(exc, StoreError):
        return f"The index is unavailable: {exc}."
    if isinstance(exc, LLMError):
        return f"The language model failed: {exc}."
    if isinstance(exc, QAError):
        return str(exc)
    return GENERIC_ERROR


def history_pairs(history: Any) -> list[tuple[str, str]]:
    """Accept [[question, answer], ...] or Chatbot-style [{"role", "content"}, ...] messages."""
    pairs: list[tuple[str, str]] = []
    if not history:
        return pairs
    if not isinstance(history, (list, tuple)):
        raise ConfigError("history must be a list of [question, answer] pairs")
    if all(isinstance(m, dict) for m in history):
        question = None
        for m in history:
            content = m.get("content")
            if isinstance(content, list):  # normalised message content: [{"type": "text", "text": ...}]
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            if m.get("role") == "user":
                question = str(content or "")
            elif m.get("role") == "assistant" and question is not None:
                pairs.append((question, str(content or "")))
                question = None
        return pairs
    for turn in history:
        if isinstance(turn, (list, tuple)) and len(turn) >= 2 and isinstance(turn[0], str):
            pairs.append((turn[0], str(turn[1] or "")))
        else:
            raise ConfigError("history must be a list of [question, answer] pairs")
    return pairs


@dataclass
class Turn:
    """One question of a browser session and what was answered (None while answering)."""

    question: str
    answer: Answer | None = None
    text: str = ""


# --- uploads --------------------------------------------------------------------------------------

class UploadRejected(ValueError):
    """A file the upload box refuses; the message says why."""


@dataclass
class CheckedUpload:
    name: str
    raw: bytes
    title: str
    language: str


@dataclass
class UploadReport:
    added: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""

    def message(self) -> str:
        lines = [f"Added {name}: answerable now." for name in self.added]
        lines += [f"Rejected {name}: {reason}. Nothing was changed for it." for name, reason in self.rejected]
        if self.error:
            lines.append(self.error)
        return "\n".join(lines) or "No file was given."


def safe_filename(name: str) -> str:
    """Basename only, NFKC, letters/digits/._- kept (any script), no leading dot, short, allowed suffix."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = unicodedata.normalize("NFKC", base)
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = "." + suffix.lower() if suffix else ""
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadRejected(
            f"only {', '.join(UPLOAD_SUFFIXES)} files are accepted (got {suffix or 'no extension'})"
        )
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._-")[:80].rstrip("._-")
    return (stem or "document") + suffix


def check_upload(path: Path, name: str, max_bytes: int) -> CheckedUpload:
    """Validate one uploaded file by name, size and content; raise UploadRejected with the reason."""
    safe = safe_filename(name)
    try:
        size = path.stat().st_size
    except OSError:
        raise UploadRejected("the upload could not be read") from None
    if size > max_bytes:
        raise UploadRejected(f"too large ({size:,} bytes; the limit is {max_bytes:,}, QA_MAX_UPLOAD_BYTES)")
    if size == 0:
        raise UploadRejected("the file is empty")
    raw = path.read_bytes()[: max_bytes + 1]
    if len(raw) > max_bytes:
        raise UploadRejected(f"too large (the limit is {max_bytes:,} bytes, QA_MAX_UPLOAD_BYTES)")
    for signature, kind in _BINARY_SIGNATURES.items():
        if raw.startswith(signature):
            raise UploadRejected(f"the content is {kind}, not text")
    try:
        doc = parse(raw, f"{UPLOAD_DIR}/{safe}")
    except ValueError as exc:
        raise UploadRejected(f"the content is not usable text ({exc})") from None
    return CheckedUpload(safe, raw, doc.title, doc.language)


def _write_new(folder: Path, name: str, raw: bytes) -> Path:
    """Write atomically under a name that does not exist yet (name, name-2, ...); never overwrite."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = os.path.splitext(name)
    # A dot-file is invisible to ingestion, so a half-written upload is never indexed.
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        for i in range(1, 1000):
            dest = folder / (name if i == 1 else f"{stem}-{i}{suffix}")
            try:
                os.link(tmp, dest)  # atomic and fails if dest exists
                return dest
            except FileExistsError:
                continue
        raise UploadRejected("too many files with this name")
    finally:
        Path(tmp).unlink(missing_ok=True)


# --- the app ---------------------------------------------------------------------------------------

CSS = """
.qa-h1 { font-size: 1.7em; font-weight: 600; line-height: 1.2; }
.qa-sub { color: var(--body-text-color-subdued); margin-top: .15em; }
.qa-msg { white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal; line-break: auto; text-align: start; }
.qa-cite { display: inline-block; padding: 0 .3em; margin: 0 .1em; border-radius: .35em; font-size: .8em;
  font-weight: 600; line-height: 1.4; background: var(--color-accent-soft); color: var(--color-accent);
  border: 1px solid var(--color-accent); unicode-bidi: isolate; direction: ltr; }
.qa-typing { opacity: .6; padding-inline-start: .2em; }
.qa-refused { font-style: italic; }
.qa-notice { margin-top: .4em; padding: .35em .6em; border-radius: .4em; font-size: .9em;
  background: var(--color-yellow-50, #fefce8); color: var(--color-yellow-900, #713f12);
  border: 1px solid var(--color-yellow-300, #fde047); white-space: pre-wrap; }
.qa-notice-error { background: #fef2f2; color: #7f1d1d; border-color: #fca5a5; }
.qa-notice-ok { background: #f0fdf4; color: #14532d; border-color: #86efac; }
.qa-status { display: flex; flex-wrap: wrap; gap: .4em .6em; align-items: center; font-size: .9em; }
.qa-pill { padding: .15em .6em; border-radius: 1em; border: 1px solid var(--border-color-primary);
  background: var(--background-fill-secondary); }
.qa-mode-offline b { color: #15803d; } .qa-mode-llm b { color: #1d4ed8; }
.qa-doclist { width: 100%; } .qa-doclist ul { margin: .3em 0 0 1.2em; padding: 0; }
.qa-doclist li { overflow-wrap: anywhere; }
.qa-sources { font-size: .92em; overflow-wrap: anywhere; word-break: normal; }
.qa-sources-q { font-weight: 600; margin-bottom: .5em; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: .6em; padding: .55em .75em;
  margin-bottom: .6em; background: var(--background-fill-primary); }
.qa-source-head { display: flex; gap: .5em; align-items: baseline; }
.qa-num { font-weight: 700; color: var(--color-accent); flex: none; }
.qa-title { font-weight: 600; }
.qa-meta { font-size: .85em; color: var(--body-text-color-subdued); margin: .15em 0; }
.qa-url { font-size: .8em; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
.qa-snippet { margin: .45em 0; padding: .1em .6em; border-inline-start: 3px solid var(--color-accent);
  white-space: pre-wrap; text-align: start; font-style: normal; }
.qa-context summary { cursor: pointer; font-size: .85em; color: var(--body-text-color-subdued); }
.qa-passage { white-space: pre-wrap; text-align: start; margin-top: .3em; font-size: .9em;
  color: var(--body-text-color); opacity: .85; max-height: 16em; overflow-y: auto; }
.qa-passage mark { background: #fde68a; color: #1c1917; padding: 0 .1em; border-radius: .2em; }
[lang="zh"], [lang="ja"] { line-break: strict; word-break: normal; overflow-wrap: anywhere; }
.qa-sources { max-height: 720px; overflow-y: auto; padding-inline-end: .3em; }
#qa-upload-result { white-space: pre-wrap; }
#qa-question textarea, #qa-examples button, #qa-examples button * { unicode-bidi: plaintext; text-align: start; }
"""


class UI:
    """The handlers of the page and of the API, bound to one engine and its settings."""

    def __init__(self, engine: QAEngine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self._upload_lock = threading.Lock()

    # --- chat ------------------------------------------------------------------------------------
    def respond(self, question: str, messages: list | None, turns: list[Turn] | None):
        """Browser chat handler: streams the answer into the chatbot and fills the sources panel.

        Yields (textbox, chatbot messages, sources html, turns state, notice html).
        """
        messages = list(messages or [])
        turns = list(turns or [])
        try:
            q = clean_question(question, self.settings.max_question_chars)
        except ConfigError as exc:  # refused politely; the chat and the typed text stay as they were
            yield gr.update(), list(messages), gr.update(), turns, render_notice_html(polite(exc))
            return
        history = [(t.question, t.answer.text) for t in turns if t.answer is not None and not t.answer.refused]
        turn = Turn(q)
        turns.append(turn)
        messages.append({"role": "user", "content": render_question_html(q)})
        messages.append({"role": "assistant", "content": render_answer_html("", pending=True)})
        yield "", list(messages), render_sources_html(None, status="Searching the articles…"), turns, ""
        text = ""
        try:
            for event in self.engine.stream(q, history):
                if isinstance(event, Answer):
                    turn.answer, turn.text = event, event.text
                    messages[-1] = {"role": "assistant", "content": self._final_html(event)}
                    yield gr.update(), list(messages), render_sources_html(event), turns, ""
                else:
                    text += event
                    turn.text = text
                    messages[-1] = {"role": "assistant", "content": render_answer_html(text, pending=True)}
                    yield gr.update(), list(messages), gr.update(), turns, ""
        except Exception as exc:  # noqa: BLE001 - every failure becomes a short message, never a traceback
            if not isinstance(exc, QAError):
                log.exception("answering %r failed", q)
            message = short_error(exc)
            messages[-1] = {"role": "assistant", "content": render_answer_html(text, notice=message)}
            yield gr.update(), list(messages), render_sources_html(None, status=message), turns, render_notice_html(
                message, "error")

    @staticmethod
    def _final_html(answer: Answer) -> str:
        notice = answer.notice
        if answer.unverified and not notice:
            notice = "This answer cites no source: treat it with care."
        # No lang attribute: the answer is in the language of the quoted articles, not always the question's.
        return render_answer_html(answer.text, answer.citations, notice=notice, refused=answer.refused)

    @staticmethod
    def stopped(messages: list | None, turns: list[Turn] | None):
        """After the stop button: mark the unfinished answer as stopped."""
        messages = list(messages or [])
        turns = list(turns or [])
        if turns and turns[-1].answer is None and messages and messages[-1].get("role") == "assistant":
            messages[-1] = {"role": "assistant",
                            "content": render_answer_html(turns[-1].text, notice="Stopped.")}
            return messages, turns, render_sources_html(None, status="Stopped before the answer was complete.")
        return messages, turns, gr.update()

    @staticmethod
    def select(turns: list[Turn] | None, evt: gr.SelectData):
        """Clicking a message shows the sources of that turn's answer."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        turns = turns or []
        if isinstance(index, int) and 0 <= index // 2 < len(turns) and turns[index // 2].answer is not None:
            return render_sources_html(turns[index // 2].answer)
        return gr.update()

    @staticmethod
    def new_chat():
        return [], [], SOURCES_EMPTY, "", ""

    # --- API -------------------------------------------------------------------------------------
    def api_chat(self, question: str, history: list[list[str]] | None = None) -> Iterator[dict]:
        """Answer a question about the news corpus, streaming.

        question: the question (any language; empty or over-long questions are refused with an error).
        history: earlier turns, oldest first, as [[question, answer], ...] (Chatbot-style
            [{"role", "content"}, ...] messages are accepted too); follow-ups use it.
        Yields {"text": answer so far, "done": False} while the answer is produced, then the full
        answer (qa.Answer.to_dict(): text, citations with number/source/title/snippet/language/passage,
        refused, mode, notice, ...) with "done": True.
        """
        try:
            pairs = history_pairs(history)
            text = ""
            for event in self.engine.stream(question, pairs):
                if isinstance(event, Answer):
                    yield {**event.to_dict(), "done": True}
                else:
                    text += event
                    yield {"text": text, "done": False}
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, QAError):
                log.exception("API chat failed")
            raise gr.Error(short_error(exc), print_exception=False) from None

    def api_ask(self, question: str, history: list[list[str]] | None = None) -> dict:
        """Answer a question about the news corpus (not streamed); returns qa.Answer.to_dict().

        history: earlier turns as [[question, answer], ...], oldest first.
        """
        answer = None
        for event in self.api_chat(question, history):
            answer = event
        return answer or {}

    # --- uploads ---------------------------------------------------------------------------------
    def add_documents(self, files: list | str | None, progress: gr.Progress = gr.Progress()):
        """Check, store and ingest uploaded .txt/.md/.html files; returns (report, status html)."""
        report = self.upload(files, progress=progress)
        kind = "error" if (report.rejected or report.error) and not report.added else (
            "warning" if report.rejected or report.error else "ok")
        return render_notice_html(report.message(), kind), render_status_html(self.engine), None

    def upload(self, files: list | str | None, progress=None) -> UploadReport:
        report = UploadReport()
        if not files:
            return report
        paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        max_bytes = min(self.settings.max_upload_bytes, self.settings.max_file_bytes)
        with self._upload_lock:
            known = {r.file_hash: s for s, r in self.engine.store.manifest().items()}
            accepted: list[CheckedUpload] = []
            for p in paths:
                path = Path(getattr(p, "name", None) or str(p))
                shown = safe_display_name(path.name)
                try:
                    checked = check_upload(path, path.name, max_bytes)
                    digest = hashlib.sha256(checked.raw).hexdigest()
                    if digest in known:
                        raise UploadRejected(f"the same text is already in the corpus as {known[digest]}")
                    if any(hashlib.sha256(a.raw).hexdigest() == digest for a in accepted):
                        raise UploadRejected("the same file was given twice")
                    accepted.append(checked)
                except UploadRejected as exc:
                    report.rejected.append((shown, str(exc)))
                except Exception:  # noqa: BLE001
                    log.exception("checking the upload %s failed", path)
                    report.rejected.append((shown, "the file could not be checked"))
            if not accepted:
                return report
            folder = Path(self.settings.corpus_dir) / UPLOAD_DIR
            written: list[Path] = []
            try:
                for a in accepted:
                    written.append(_write_new(folder, a.name, a.raw))
                sources = [p.relative_to(self.settings.corpus_dir).as_posix() for p in written]

                def tick(done: int, total: int, source: str) -> None:
                    if progress is not None:
                        progress((done, total), desc=f"Indexing {source}", unit="chunks")

                if progress is not None:
                    progress(0, desc="Indexing the new documents…")
                result = ingest(self.settings, progress=tick, embed_model=self.engine.embed_model)
                skipped = {s.source: s.reason for s in result.skipped}
                for path, source in zip(written, sources):
                    if source in skipped:
                        path.unlink(missing_ok=True)
                        report.rejected.append((path.name, skipped[source]))
                if any(s in skipped for s in sources):
                    ingest(self.settings, embed_model=self.engine.embed_model)
                self.engine.refresh()
                report.added = [s for s in sources if s not in skipped]
            except Exception as exc:  # noqa: BLE001 - undo: the corpus and the index stay as they were
                if not isinstance(exc, QAError):
                    log.exception("adding %s failed", [a.name for a in accepted])
                for path in written:
                    path.unlink(missing_ok=True)
                if written and not (isinstance(exc, StoreError) and "another ingestion" in str(exc)):
                    try:
                        ingest(self.settings, embed_model=self.engine.embed_model)
                        self.engine.refresh()
                    except Exception:  # noqa: BLE001
                        log.exception("restoring the index after a failed upload failed")
                reason = str(exc) if isinstance(exc, QAError) else "indexing failed (see the server log)"
                report.rejected += [(a.name, reason) for a in accepted]
            return report


def safe_display_name(name: str) -> str:
    name = PurePosixPath(str(name).replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    return name[:100] or "file"


def build_app(engine: QAEngine, settings: Settings) -> gr.Blocks:
    """The chat page on an open engine. Launch it with :func:`launch` (CSS, limits, no outside calls)."""
    ui = UI(engine, settings)
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
        demo.qa_ui = ui  # for tests and embedding
        with gr.Row(equal_height=False):
            gr.HTML(
                f"<div class='qa-h1'>{esc(TITLE)}</div><div class='qa-sub'>Ask about the articles in any language; "
                "every answer quotes its sources, numbered like the markers, and shows each quote in its passage."
                "</div>",
                elem_id="qa-title",
            )
        status = gr.HTML(render_status_html(engine), elem_id="qa-status")
        turns = gr.State([])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="qa-chat",
                    height=560,
                    render_markdown=False,  # documents' Markdown must show as text
                    sanitize_html=True,
                    latex_delimiters=[],
                    allow_tags=False,
                    buttons=[],
                    layout="bubble",
                    placeholder="<p>Ask a question about the news articles, in any language.</p>",
                )
                with gr.Row(equal_height=False):
                    question = gr.Textbox(
                        placeholder="Ask a question… (Enter to send)",
                        show_label=False,
                        lines=1,
                        max_lines=6,
                        scale=6,
                        elem_id="qa-question",
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="qa-send")
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="qa-stop")
                notice = gr.HTML("", elem_id="qa-notice")
                examples = gr.Examples(EXAMPLES, inputs=[question], label="Examples (English, French, Arabic, Chinese)",
                                       elem_id="qa-examples", api_visibility="private")
                new = gr.Button("New chat", size="sm", elem_id="qa-new")
            with gr.Column(scale=2, min_width=320):
                gr.HTML("<h3 style='margin:.2em 0'>Sources</h3>")
                sources = gr.HTML(SOURCES_EMPTY, elem_id="qa-sources-box")
                with gr.Accordion("Add documents", open=False, elem_id="qa-upload-box"):
                    gr.HTML(
                        f"<p style='margin:0'>Upload .txt, .md or .html articles (UTF-8, up to "
                        f"{min(settings.max_upload_bytes, settings.max_file_bytes):,} bytes each). They are "
                        f"checked, stored in the corpus and indexed, then answerable at once.</p>"
                    )
                    files = gr.File(label="Files", file_count="multiple", type="filepath", elem_id="qa-files")
                    upload_result = gr.HTML("", elem_id="qa-upload-result")

        chat_io = dict(
            fn=ui.respond,
            inputs=[question, chatbot, turns],
            outputs=[question, chatbot, sources, turns, notice],
            concurrency_id="answer",
            show_progress="hidden",
        )
        ev_submit = question.submit(**chat_io, api_visibility="private")
        ev_send = send.click(**chat_io, api_visibility="private")
        ev_example = examples.load_input_event.then(**chat_io, api_visibility="private")
        answering = [ev_submit, ev_send, ev_example]
        stop.click(ui.stopped, [chatbot, turns], [chatbot, turns, sources], cancels=answering, queue=False,
                   api_visibility="private")
        new.click(ui.new_chat, None, [chatbot, turns, sources, notice, question], cancels=answering,
                  queue=False, api_visibility="private")
        chatbot.clear(ui.new_chat, None, [chatbot, turns, sources, notice, question], cancels=answering,
                      queue=False, api_visibility="private")
        chatbot.select(ui.select, [turns], [sources], queue=False, api_visibility="private")
        files.upload(ui.add_documents, [files], [upload_result, status, files], concurrency_limit=1,
                     concurrency_id="ingest", api_name="upload", show_progress="full")
        demo.load(lambda: render_status_html(engine), None, [status], queue=False, api_visibility="private")

        gr.api(ui.api_chat, api_name="chat", concurrency_id="answer")
        gr.api(ui.api_ask, api_name="ask", concurrency_id="answer")
    # Offline answers take well under a second, an LLM answer several: a few run at once so that one
    # slow LLM call does not hold everyone else's question (QA_CONCURRENCY_LIMIT).
    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    return demo


def warm_up(engine: QAEngine) -> None:
    """Run one retrieval so that the first visitor does not wait for lazy model and index loading."""
    started = time.perf_counter()
    try:
        engine.retrieve("news", top_k=1)
    except Exception:  # noqa: BLE001 - a failed warm-up only means a slower first question
        log.warning("warm-up retrieval failed", exc_info=True)
    log.info("warm-up took %.1f s", time.perf_counter() - started)


def launch_kwargs(settings: Settings) -> dict:
    """launch() options: bound to settings.host, no share link, no API page, no monitoring, no outside calls."""
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        inbrowser=False,
        footer_links=[],
        enable_monitoring=False,
        run_history=False,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        show_error=False,  # unexpected errors show a short message; tracebacks stay in the server log
        max_file_size=settings.max_upload_bytes,
        # Each session-less API call leaves ~50 KB of session state; Gradio's default keeps 10,000 of them.
        state_session_capacity=1000,
        css=CSS,
        # System fonts: nothing to download, and every script (Latin, Arabic, CJK) falls back to what the
        # reader's system has.
        theme=gr.themes.Default(font=["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "sans-serif"],
                                font_mono=["ui-monospace", "Consolas", "monospace"]),
    )


def launch(demo: gr.Blocks, settings: Settings, **overrides):
    """Launch the app with :func:`launch_kwargs`; overrides win (tests pass server_port, prevent_thread_lock)."""
    return demo.launch(**{**launch_kwargs(settings), **overrides})
