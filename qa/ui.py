"""The browser chat UI on Gradio: the Blocks app and its handlers, on the Python API.

Everything shown that comes from a document is escaped by qa.render; uploads go through
qa.ingest.add_documents. ``app.py`` only parses flags, starts opening the engine (qa.loader) and calls
:func:`build_app` and :func:`launch`.

API endpoints (for ``gradio_client``):

* ``/chat``  (question: str, history: [[question, answer], ...]) streams dicts, the last one is the
  full answer (see :meth:`UI.api_chat`);
* ``/ask``   (question: str, history) returns the answer as a dict (``qa.Answer.to_dict()``);
* ``/upload`` (files) adds .txt/.md/.html/.pdf/.docx documents to the corpus and returns a short report;
* ``/documents`` () lists the indexed documents (dicts: source, title, language, chunks, ingested_at, ...);
* ``/remove`` (sources: [source, ...]) removes documents from the index and the corpus; ``/reingest`` ()
  re-indexes corpus_dir.

``/chat_filtered`` and ``/ask_filtered`` take ``sources`` and ``languages`` lists after the history: only those
documents (or languages) are searched, and an unknown value is refused with the valid ones.
:func:`build_app` takes an open engine or a :class:`qa.loader.EngineLoader` still opening one (``app.py``
serves the page while the index loads): the status line says the index is loading, and a question
asked meanwhile shows "Loading the index…" in the sources panel, waits, then is answered.

With a users file (QA_USERS_FILE) every page and route needs a sign-in; the handlers check the caller's
role and limits themselves (qa.access), so a direct API call gets the same refusals as the page.
:func:`launch` also serves the OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models`` of
qa.openai_api on the same port (settings.ui.serve_api).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from qa.access import Access, ClientAddressMiddleware
from qa.conversations import FeedbackLog, exchanges_of, to_json, to_markdown
from qa.errors import ConfigError, LLMError, PermissionDenied, QAError, RateLimited, StoreError
from qa.loader import LOADING, EngineLoader, as_loader
from qa.render import (
    CSS,
    SOURCES_EMPTY,
    esc,
    highlight,
    progress_text,
    render_answer_html,
    render_documents_html,
    render_notice_html,
    render_question_html,
    render_sources_html,
    render_status_html,
)
from qa.schema import Answer, Progress
from qa.settings import Settings
from qa.ui_corpus import CorpusHandlers
from qa.users import allowed

if TYPE_CHECKING:  # LlamaIndex and Chroma load in the engine loader's thread, not before the page is served
    from qa.engine import QAEngine

__all__ = ["UI", "build_app", "launch", "launch_kwargs", "warm_up", "esc", "highlight", "render_answer_html",
           "render_sources_html", "render_status_html", "history_pairs", "short_error", "Turn"]

log = logging.getLogger(__name__)

TITLE = "News QA"
EXAMPLES = [
    "Why was Sora's release delayed?",
    "Pourquoi la sortie de Sora a-t-elle été retardée ?",
    "من هو الممثل الهوليوودي الذي يختبر نموذج Sora؟",
    "Sora 可以生成多长的视频？",
]
GENERIC_ERROR = "Something went wrong while answering; the details are in the server log. Please try again."


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


class UI(CorpusHandlers):
    """The handlers of the page and of the API, bound to one engine and its settings."""

    def __init__(self, engine: QAEngine | EngineLoader, settings: Settings, access: Access | None = None):
        self.engine = engine  # an open engine, or a loader whose attribute reads wait for it
        self.loader = as_loader(engine)
        self.settings = settings
        self.access = access or Access(settings)

    def status_html(self) -> str:
        """The header line; while the engine loads, a note that it is loading (without waiting)."""
        if not self.loader.done:
            return render_notice_html(LOADING)
        if self.loader.error is not None:
            return render_notice_html(short_error(self.loader.error), "error")
        return render_status_html(self.loader.result())

    def _shown(self, question: str) -> str:
        """The question as the server log may show it: only with log_questions on."""
        return repr(question) if self.settings.auth.log_questions else f"<{len(question)} characters>"

    # --- chat ------------------------------------------------------------------------------------
    def respond(self, question: str, messages: list | None, turns: list[Turn] | None,
                sources: list[str] | None = None, languages: list[str] | None = None, request: gr.Request = None):
        """Browser chat handler: streams the answer into the chatbot and fills the sources panel.

        sources / languages: the filter selections (empty: the whole corpus).
        Yields (textbox, chatbot messages, sources html, turns state, notice html). Over a limit or
        without the role: a gr.Error, and the chat stays as it was.
        """
        try:
            with self.access.question(request):
                yield from self._respond(question, messages, turns, sources, languages)
        except (PermissionDenied, RateLimited) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def _respond(self, question: str, messages: list | None, turns: list[Turn] | None,
                 sources: list[str] | None = None, languages: list[str] | None = None):
        from qa.query import clean_question

        messages = list(messages or [])
        turns = list(turns or [])
        filters = _filters(sources, languages)
        try:
            q = clean_question(question, self.settings.max_question_chars)
            if filters:
                self.engine.pipeline.analyzer.allowed(**filters)  # a stale selection is refused like a bad question
        except ConfigError as exc:  # refused politely; the chat and the typed text stay as they were
            yield gr.update(), list(messages), gr.update(), turns, render_notice_html(polite(exc))
            return
        history = [(t.question, t.answer.text) for t in turns if t.answer is not None and not t.answer.refused]
        turn = Turn(q)
        turns.append(turn)
        messages.append({"role": "user", "content": render_question_html(q)})
        messages.append({"role": "assistant", "content": render_answer_html("", pending=True)})
        text = ""
        try:
            if not self.loader.done:  # app.py serves the page before the index is open: say so, then wait
                yield "", list(messages), render_sources_html(None, status=LOADING), turns, ""
                self.loader.result()
            yield "", list(messages), render_sources_html(None, status="Searching the articles…"), turns, ""
            for event in self.loader.result().stream(q, history, progress=True, **filters):
                if isinstance(event, Answer):
                    turn.answer, turn.text = event, event.text
                    messages[-1] = {"role": "assistant", "content": self._final_html(event)}
                    yield gr.update(), list(messages), render_sources_html(event), turns, ""
                elif isinstance(event, Progress):  # a CPU LLM server takes seconds: say what it is doing
                    yield gr.update(), gr.update(), render_sources_html(None, status=progress_text(event)), turns, ""
                else:
                    text += event
                    turn.text = text
                    messages[-1] = {"role": "assistant", "content": render_answer_html(text, pending=True)}
                    yield gr.update(), list(messages), gr.update(), turns, ""
        except Exception as exc:
            if not isinstance(exc, QAError):
                log.exception("answering %s failed", self._shown(q))
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

    # --- conversations --------------------------------------------------------------------------
    def export(self, turns: list[Turn] | None, request: gr.Request = None):
        """The Export button: the conversation as conversation.md and conversation.json, to download."""
        import tempfile

        try:
            self.access.require(request, "export")
        except PermissionDenied as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        exchanges = exchanges_of(turns)
        if not exchanges:
            raise gr.Error("Nothing to export yet: ask a question first.", print_exception=False)
        folder = Path(tempfile.mkdtemp(prefix="qa-export-"))
        (folder / "conversation.md").write_text(to_markdown(exchanges), encoding="utf-8")
        (folder / "conversation.json").write_text(to_json(exchanges), encoding="utf-8")
        return gr.update(value=[str(folder / "conversation.md"), str(folder / "conversation.json")], visible=True)

    def feedback(self, turns: list[Turn] | None, evt: gr.LikeData, request: gr.Request = None) -> str:
        """A thumbs up/down on an answer: stored with its question and citations (settings.feedback_path)."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        turns = turns or []
        if not isinstance(index, int) or not 0 <= index // 2 < len(turns) or turns[index // 2].answer is None:
            return render_notice_html("Only a finished answer can be rated.", "warning")
        turn = turns[index // 2]
        try:
            who = self.access.require(request, "ask").who
            FeedbackLog(self.settings.feedback_path).append(turn.question, turn.answer, evt.liked is True, who)
        except PermissionDenied as exc:
            return render_notice_html(str(exc), "error")
        except OSError as exc:
            log.warning("feedback not saved: %s", exc)
            return render_notice_html("Your rating could not be saved; the server log says why.", "error")
        return render_notice_html("Thanks: your rating was saved with the answer and its sources.", "ok")

    @staticmethod
    def new_chat():
        return [], [], SOURCES_EMPTY, "", ""

    # --- API -------------------------------------------------------------------------------------
    def api_chat(self, question: str, history: list[list[str]] | None = None, sources: list[str] | None = None,
                 languages: list[str] | None = None, request: gr.Request = None) -> Iterator[dict]:
        """Answer a question about the news corpus, streaming.

        question: the question (any language; empty or over-long questions are refused with an error).
        history: earlier turns, oldest first, as [[question, answer], ...] (Chatbot-style
            [{"role", "content"}, ...] messages are accepted too); follow-ups use it.
        sources: answer only from these documents (source paths as /documents lists them, or file names).
        languages: answer only from documents in these languages (e.g. ["fr", "zh"]).
        Yields {"text": answer so far, "done": False} while the answer is produced (with "status" while an LLM
        reads or writes: each generated sentence appears once checked against its source), then the full
        answer (qa.Answer.to_dict(): text, citations with number/source/title/snippet/language/passage,
        refused, mode, notice, ...) with "done": True.
        """
        try:
            with self.access.question(request):
                pairs = history_pairs(history)
                filters = _filters(sources, languages)
                text = ""
                if not self.loader.done:
                    yield {"text": "", "done": False, "status": LOADING}
                for event in self.loader.result().stream(question, pairs, progress=True, **filters):
                    if isinstance(event, Answer):
                        yield {**event.to_dict(), "done": True}
                    elif isinstance(event, Progress):
                        yield {"text": text, "done": False, "status": progress_text(event)}
                    else:
                        text += event
                        yield {"text": text, "done": False}
        except Exception as exc:
            if not isinstance(exc, QAError):
                log.exception("API chat failed")
            raise gr.Error(short_error(exc), print_exception=False) from None

    def api_chat_plain(self, question: str, history: list[list[str]] | None = None,
                       request: gr.Request = None) -> Iterator[dict]:
        """Answer a question about the news corpus, streaming (see /chat_filtered for the fields).

        question: the question, any language. history: earlier turns as [[question, answer], ...], oldest first.
        """
        yield from self.api_chat(question, history, request=request)

    def api_ask_plain(self, question: str, history: list[list[str]] | None = None, request: gr.Request = None) -> dict:
        """Answer a question about the news corpus (not streamed); returns qa.Answer.to_dict().

        history: earlier turns as [[question, answer], ...], oldest first.
        """
        return self.api_ask(question, history, request=request)

    def api_ask(self, question: str, history: list[list[str]] | None = None, sources: list[str] | None = None,
                languages: list[str] | None = None, request: gr.Request = None) -> dict:
        """Answer a question about the news corpus (not streamed); returns qa.Answer.to_dict().

        history: earlier turns as [[question, answer], ...], oldest first.
        sources / languages: answer only from these documents / languages (as in /chat).
        """
        answer = None
        for event in self.api_chat(question, history, sources, languages, request):
            answer = event
        return answer or {}

    def page_for(self, request: gr.Request = None):
        """On page load: who is signed in, and the editing controls only for a role that may use them."""
        who = self.access.identify(request)
        can_edit = allowed(who.role, "upload")
        signed = (f"<p class='qa-sub'>Signed in as <b>{esc(who.username)}</b> ({esc(who.role or 'no role')}) · "
                  "<a href='logout'>Sign out</a></p>") if who.username else ""
        if not self.loader.done:  # the header says "loading" until the engine is open, then the corpus
            self.loader.wait()
        editing = gr.update(visible=can_edit)
        return self.status_html(), editing, signed, editing, editing


def _filters(sources, languages) -> dict:
    """Engine keyword arguments of the filter selections (none when nothing is selected)."""
    out = {}
    for name, value in (("sources", sources), ("languages", languages)):
        if isinstance(value, str):
            value = [value]
        if value:
            out[name] = list(value)
    return out


def build_app(engine: QAEngine | EngineLoader, settings: Settings) -> gr.Blocks:
    """The chat page on an open engine, or on a loader opening one (the page does not wait for it).

    Launch it with :func:`launch` (CSS, limits, no outside calls).
    """
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
        status = gr.HTML(ui.status_html(), elem_id="qa-status")
        signed_in = gr.HTML("", elem_id="qa-signed-in")
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
                with gr.Accordion("Search only in…", open=False, elem_id="qa-filter-box"):
                    # Filled on page load (document_views): app.py builds the page before the index is open.
                    ready = ui.loader.done and ui.loader.error is None
                    docs = ui.loader.result().documents() if ready else []
                    doc_choices = [(f"{d.title[:60]} ({d.source})", d.source) for d in docs]
                    filter_sources = gr.Dropdown(doc_choices, value=[], multiselect=True, label="Documents",
                                                 info="Empty: all documents", elem_id="qa-filter-sources")
                    filter_languages = gr.Dropdown(sorted({d.language for d in docs}), value=[], multiselect=True, label="Languages",
                                                   info="Empty: all languages", elem_id="qa-filter-languages")
                notice = gr.HTML("", elem_id="qa-notice")
                examples = gr.Examples(EXAMPLES, inputs=[question], label="Examples (English, French, Arabic, Chinese)",
                                       elem_id="qa-examples", api_visibility="private")
                with gr.Row():
                    new = gr.Button("New chat", size="sm", elem_id="qa-new")
                    export = gr.Button("Export chat (Markdown, JSON)", size="sm", elem_id="qa-export")
                exported = gr.File(label="Exported conversation", file_count="multiple", interactive=False,
                                   visible=False, elem_id="qa-exported")
            with gr.Column(scale=2, min_width=320):
                gr.HTML("<h3 style='margin:.2em 0'>Sources</h3>")
                sources = gr.HTML(SOURCES_EMPTY, elem_id="qa-sources-box")
                # Shown on page load to roles that may edit (page_for); the handlers check the role again.
                with gr.Accordion("Add documents", open=False, elem_id="qa-upload-box", visible=False) as editing:
                    gr.HTML(
                        f"<p style='margin:0'>Upload .txt, .md, .html (UTF-8), .pdf or .docx articles (up to "
                        f"{min(settings.ui.max_upload_bytes, settings.max_file_bytes):,} bytes each). They are "
                        f"checked, stored in the corpus and indexed, then answerable at once.</p>"
                    )
                    files = gr.File(label="Files", file_count="multiple", type="filepath", elem_id="qa-files")
                    upload_result = gr.HTML("", elem_id="qa-upload-result")
                with gr.Accordion("Documents", open=False, elem_id="qa-documents-box"):
                    documents = gr.HTML(render_documents_html(docs) if ready else "", elem_id="qa-documents")
                    to_remove = gr.Dropdown(doc_choices, value=[], multiselect=True, label="Remove documents",
                                            info="Removed from the index and the corpus folder",
                                            elem_id="qa-remove-select")
                    remove = gr.Button("Remove selected", variant="stop", size="sm", elem_id="qa-remove")
                    remove_result = gr.HTML("", elem_id="qa-remove-result")

        chat_io = dict(
            fn=ui.respond,
            inputs=[question, chatbot, turns, filter_sources, filter_languages],
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
        chatbot.like(ui.feedback, [turns], [notice], queue=False, api_visibility="private")
        export.click(ui.export, [turns], [exported], queue=False, api_visibility="private")
        views = [documents, to_remove, filter_sources, filter_languages]
        files.upload(ui.add_documents, [files], [upload_result, status, files], concurrency_limit=1,
                     concurrency_id="ingest", api_name="upload", show_progress="full").then(
            ui.document_views, None, views, queue=False, api_visibility="private")
        remove.click(ui.remove_selected, [to_remove], [remove_result, status, *views], concurrency_limit=1,
                     concurrency_id="ingest", api_name="remove_selected")
        demo.load(ui.page_for, None, [status, editing, signed_in, to_remove, remove], queue=False,
                  api_visibility="private")
        demo.load(ui.document_views, None, views, queue=False, api_visibility="private")

        # /chat and /ask keep their two inputs (raw HTTP callers send exactly two); the filtered ones take four.
        gr.api(ui.api_chat_plain, api_name="chat", concurrency_id="answer")
        gr.api(ui.api_ask_plain, api_name="ask", concurrency_id="answer")
        gr.api(ui.api_chat, api_name="chat_filtered", concurrency_id="answer")
        gr.api(ui.api_ask, api_name="ask_filtered", concurrency_id="answer")
        gr.api(ui.api_documents, api_name="documents", queue=False)
        gr.api(ui.api_remove, api_name="remove", concurrency_id="ingest", concurrency_limit=1)
        gr.api(ui.reingest, api_name="reingest", concurrency_id="ingest", concurrency_limit=1)
    # Offline answers take well under a second, an LLM answer several: a few run at once so that one
    # slow LLM call does not hold everyone else's question (QA_CONCURRENCY_LIMIT).
    demo.queue(default_concurrency_limit=settings.ui.concurrency_limit)
    return demo


def warm_up(engine: QAEngine) -> None:
    """Run one retrieval so that the first visitor does not wait for lazy model and index loading."""
    started = time.perf_counter()
    try:
        engine.retrieve("news", top_k=1)
    except Exception:
        log.warning("warm-up retrieval failed", exc_info=True)
    log.info("warm-up took %.1f s", time.perf_counter() - started)


def launch_kwargs(settings: Settings) -> dict:
    """launch() options: bound to settings.host, no share link, no API page, no monitoring, no outside calls."""
    return dict(
        server_name=settings.ui.host,
        server_port=settings.ui.port,
        share=False,
        inbrowser=False,
        footer_links=[],
        enable_monitoring=False,
        run_history=False,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        show_error=False,  # unexpected errors show a short message; tracebacks stay in the server log
        max_file_size=settings.ui.max_upload_bytes,
        # Each session-less API call leaves ~50 KB of session state; Gradio's default keeps 10,000 of them.
        state_session_capacity=1000,
        css=CSS,
        # System fonts: nothing to download, and every script (Latin, Arabic, CJK) falls back to what the
        # reader's system has.
        theme=gr.themes.Default(font=["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "sans-serif"],
                                font_mono=["ui-monospace", "Consolas", "monospace"]),
    )


def auth_kwargs(demo: gr.Blocks) -> dict:
    """Gradio's own sign-in (the page and every route) when the app has users; the client address middleware
    feeds the sign-in back-off."""
    from starlette.middleware import Middleware

    access: Access = demo.qa_ui.access
    kwargs: dict[str, Any] = {"app_kwargs": {"middleware": [Middleware(ClientAddressMiddleware)]}}
    if access.sign_in:
        kwargs["auth"] = access.login
        kwargs["auth_message"] = "Sign in with the name and password your administrator gave you."
    return kwargs


def launch(demo: gr.Blocks, settings: Settings, **overrides):
    """Launch the app with :func:`launch_kwargs`; overrides win (tests pass server_port, prevent_thread_lock).

    With settings.ui.serve_api the OpenAI-compatible routes of qa.openai_api are served on the same port.
    """
    kwargs = {**launch_kwargs(settings), **auth_kwargs(demo), **overrides}
    # Decided on the address actually bound, should an override change it.
    api = settings.ui.model_copy(update={"host": kwargs["server_name"] or settings.ui.host})
    if api.serve_api:
        from qa.openai_api import build_router

        # Gradio builds its FastAPI app inside launch(); app_kwargs are that app's constructor arguments, so
        # the routes exist before the server starts and before Gradio's own routes (no catch-all shadows them).
        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        router = build_router(demo.qa_ui.engine, settings.replace(host=api.host), demo.qa_ui.access)
        app_kwargs["routes"] = [*app_kwargs.get("routes", []), *router.routes]
        kwargs["app_kwargs"] = app_kwargs
        if api.api_key is None and not api.loopback:
            log.warning("the OpenAI-compatible endpoint on %s answers 401 to every request: set QA_API_KEY", api.host)
        log.info("OpenAI-compatible endpoint on /v1 (%s)", "API key required" if settings.ui.api_key else "no key")
    return demo.launch(**kwargs)
