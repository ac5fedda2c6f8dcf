"""HTML of the chat page: every piece of text that comes from a document is escaped here.

Answer text, titles, file names, snippets and passages are HTML-escaped and never rendered as
Markdown, so markup inside an article shows as text and fetches nothing.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any
from urllib.parse import unquote

from qa.schema import Answer, Citation, Progress

log = logging.getLogger(__name__)

_MARKER = re.compile(r"\[(\d{1,3})\]")
_LANG_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")

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
        + (f' · <span class="qa-page">page {c.page}</span>' if c.page else "")
        + f' · <span class="qa-lang">{esc(c.language or "?")}</span>'
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


def render_status_html(engine) -> str:
    """The header line: answer mode (never a key) and what the corpus holds."""
    try:
        stats = engine.stats()
    except Exception:
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


def render_documents_html(documents) -> str:
    """The document list (qa.documents.CorpusDocument): title, file, language, chunks, ingestion time."""
    if not documents:
        return '<div class="qa-docs-table qa-docs-empty"><p>No documents are indexed.</p></div>'
    rows = "".join(
        f'<tr class="qa-doc"><td class="qa-doc-title" dir="auto"{_lang_attr(d.language)}>{esc(d.title)}</td>'
        f'<td class="qa-file" dir="auto">{esc(d.source)}</td><td class="qa-doc-lang">{esc(d.language)}</td>'
        f'<td class="qa-doc-chunks">{int(d.chunks)}</td><td class="qa-doc-time">{esc(d.ingested_at or "–")}</td></tr>'
        for d in documents
    )
    return ('<div class="qa-docs-table"><table><thead><tr><th>Title</th><th>File</th><th>Language</th>'
            f"<th>Chunks</th><th>Ingested (UTC)</th></tr></thead><tbody>{rows}</tbody></table></div>")


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
#qa-upload-result, #qa-remove-result { white-space: pre-wrap; }
.qa-docs-table { max-height: 360px; overflow: auto; font-size: .85em; }
.qa-docs-table table { width: 100%; border-collapse: collapse; }
.qa-docs-table th, .qa-docs-table td { text-align: start; padding: .2em .4em; vertical-align: top;
  border-bottom: 1px solid var(--border-color-primary); overflow-wrap: anywhere; }
#qa-question textarea, #qa-examples button, #qa-examples button * { unicode-bidi: plaintext; text-align: start; }
"""


def progress_text(event: Progress) -> str:
    """What an LLM answer is waiting for, in one line (the sources panel shows it while the answer comes)."""
    if event.stage == "reading":
        return f"The language model is reading {event.tokens} tokens of sources… ({event.seconds:.0f} s)"
    return (f"The language model is writing ({event.tokens} tokens, {event.seconds:.0f} s); each sentence appears "
            "once its source is checked…")
