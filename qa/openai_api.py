"""An OpenAI-compatible chat endpoint over the same engine as the UI, served by ``app.py`` beside it.

Routes (any OpenAI client works: ``OpenAI(base_url="http://127.0.0.1:7860/v1", api_key=...)``):

* ``GET /v1/models`` lists the one model, ``qa-news`` (``GET /v1/models/qa-news`` describes it);
* ``POST /v1/chat/completions`` answers the last ``user`` message; the earlier user/assistant pairs are the
  history that follow-ups use; ``system``/``developer`` messages are ignored (the prompt and the retrieved
  text stay the engine's). ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts.
  ``model`` may be any string; the reply names ``qa-news``. ``stream: true`` sends server-sent events as
  OpenAI does: ``chat.completion.chunk`` objects, the last with ``finish_reason: "stop"``, then
  ``data: [DONE]``.

Extra fields (not in OpenAI's schema; OpenAI clients keep them, e.g. ``completion.model_extra``):

* ``citations``: what the answer's ``[n]`` markers point to, a list of ``{"number", "source", "title",
  "snippet", "url", "language"}`` (plus ``"page"`` where a citation has one); top level of the completion,
  and of the last chunk of a stream;
* ``refused``: ``true`` when the corpus does not answer the question (absent otherwise);
* ``notice``: a note on the answer, e.g. that the LLM failed and this is the offline answer (absent when
  there is none).

Errors are OpenAI-shaped, ``{"error": {"message", "type", "param", "code"}}``, never a traceback: 400
``invalid_request_error`` for bad JSON, missing, empty or over-long messages, unknown roles or no user
message; 401 without the right ``Authorization: Bearer`` key when ``QA_API_KEY`` is set; 503 when the index
or the LLM is unavailable, 500 otherwise. An error after a stream started arrives as a ``data: {"error":
...}`` event, which the ``openai`` client raises as ``APIError``.

Served unless ``QA_API_ENABLED=false``; on a non-loopback host every request gets 401 until ``QA_API_KEY`` is
set, and over the per-client question limit (off loopback) 429 with ``Retry-After``.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from qa.access import Access
from qa.errors import ConfigError, LLMError, QAError, StoreError
from qa.schema import Answer, Citation, Progress
from qa.settings import Settings

if TYPE_CHECKING:  # the engine (LlamaIndex, Chroma) is imported by whoever opens it
    from qa.engine import QAEngine

__all__ = ["MODEL", "build_router", "citation_dict", "parse_messages"]

log = logging.getLogger(__name__)

MODEL = "qa-news"
CREATED = 1_735_689_600  # fixed "created" of the model (2025-01-01): it has no release date of its own
MAX_BODY_BYTES = 1_000_000  # a long conversation fits many times over; a flood is refused before parsing
ROLES = {"system", "developer", "user", "assistant"}  # tool/function messages: there are no tools here
GENERIC_ERROR = "The server failed to answer; the details are in its log."


class RequestError(Exception):
    """A request to refuse with an OpenAI-shaped 4xx error."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status, headers=headers)


def engine_error(exc: BaseException) -> tuple[int, dict]:
    """Status and body for an error raised while answering; an unexpected error's text is never shown."""
    if isinstance(exc, ConfigError):
        return 400, error_body(str(exc), param="messages")
    if isinstance(exc, (StoreError, LLMError)):
        return 503, error_body(str(exc), "server_error", code="service_unavailable")
    if isinstance(exc, QAError):
        return 500, error_body(str(exc), "server_error")
    return 500, error_body(GENERIC_ERROR, "server_error")


# --- the request ----------------------------------------------------------------------------------

def text_of(content: Any, where: str) -> str:
    """A message's text: a string or a list of text parts (images and audio have nothing to search)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                                   f"{where}.content[{i}]")
            parts.append(part["text"])
        return " ".join(parts)
    raise RequestError("content must be a string or a list of text parts", f"{where}.content")


def parse_messages(messages: Any, max_chars: int) -> tuple[str, list[tuple[str, str]]]:
    """(question, history): the last user message, cleaned, and the earlier user/assistant pairs."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {\"role\", \"content\"} objects", "messages")
    turns: list[tuple[str, str]] = []  # (role, text) of the user and assistant messages
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError("each message must be an object with role and content", where)
        role = m.get("role")
        if role not in ROLES:
            raise RequestError(f"unsupported role {str(role)[:40]!r}; use system, user or assistant", f"{where}.role")
        if role in ("system", "developer"):
            continue
        content = m.get("content")
        if role == "assistant" and content is None:
            content = ""
        turns.append((role, text_of(content, where)))
    if not turns or turns[-1][0] != "user":
        raise RequestError("the last message (system messages aside) must be a user message with the question",
                           "messages")
    try:
        from qa.query import clean_question

        question = clean_question(turns[-1][1], max_chars)
    except ConfigError as exc:
        raise RequestError(str(exc), f"messages[{len(messages) - 1}].content") from None
    history, asked = [], None
    for role, text in turns[:-1]:  # a user message without an answer is dropped, as in the UI
        if role == "user":
            asked = text
        elif asked is not None:
            history.append((asked, text))
            asked = None
    return question, history


async def read_json(request: Request) -> dict:
    # A JSON body only: a plain HTML form posted by another page (no CORS preflight) is not a request.
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json":
        raise RequestError(f"the request body must be JSON (Content-Type: application/json, not {kind[:60]})",
                           code="invalid_content_type")
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(f"the request body is over {MAX_BODY_BYTES} bytes", code="request_too_large",
                               status=413)
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", code="invalid_json")
    return body


# --- the response ---------------------------------------------------------------------------------

def citation_dict(c: Citation) -> dict:
    out = {"number": c.number, "source": c.source, "title": c.title, "snippet": c.snippet, "url": c.url,
           "language": c.language}
    page = getattr(c, "page", None)  # documents with pages (PDF) may carry one
    if page:
        out["page"] = page
    return out


def extras(answer: Answer) -> dict:
    out: dict[str, Any] = {"citations": [citation_dict(c) for c in answer.citations]}
    if answer.refused:
        out["refused"] = True
    if answer.notice:
        out["notice"] = answer.notice
    return out


def completion(answer: Answer, cid: str, created: int) -> dict:
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "logprobs": None,
                     "finish_reason": "stop"}],
        **extras(answer),
    }


def chunk(cid: str, created: int, delta: dict, finish: str | None = None, **extra: Any) -> bytes:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
    return sse(body)


def sse(body: dict) -> bytes:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def rest_of(answer: Answer, streamed: str) -> str:
    """What the stream must still send: the final text replaces the deltas, which are nearly always its start."""
    if answer.text.startswith(streamed):
        return answer.text[len(streamed):]
    if streamed.endswith(answer.text):  # an LLM failure mid-answer: the offline answer followed the partial one
        return ""
    return "\n\n" + answer.text


def sse_events(first: Any, events: Iterator, cid: str, created: int) -> Iterator[bytes]:
    """The engine's events as SSE; runs in Starlette's thread pool (a sync generator)."""
    yield chunk(cid, created, {"role": "assistant", "content": ""})
    streamed = ""
    event = first
    try:
        while True:
            if isinstance(event, Answer):
                rest = rest_of(event, streamed)
                if rest:
                    yield chunk(cid, created, {"content": rest})
                yield chunk(cid, created, {}, "stop", **extras(event))
                yield b"data: [DONE]\n\n"
                return
            if isinstance(event, Progress):  # an SSE comment: clients skip it, proxies see a live connection
                yield f": {event.stage} {event.tokens}\n\n".encode()
            elif event:
                streamed += event
                yield chunk(cid, created, {"content": event})
            event = next(events)
    except Exception as exc:  # headers are sent: the error goes in the stream, as OpenAI does
        if not isinstance(exc, QAError):
            log.exception("OpenAI API answer failed")  # the traceback stays in the server log
        yield sse(engine_error(exc)[1])
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # ends an LLM reply the client no longer reads


# --- the routes -----------------------------------------------------------------------------------

def build_router(engine: QAEngine, settings: Settings, access: Access | None = None) -> APIRouter:
    """The /v1 routes on the engine; mounted by :func:`qa.ui.launch` when settings.ui.serve_api.

    settings.ui.host is the address actually bound: off loopback, a request needs the key, and without a key
    configured every request gets 401. access, when given, applies its questions-per-minute limit per client
    address (HTTP 429).
    """
    key = settings.ui.api_key.get_secret_value().encode() if settings.ui.api_key else None
    exposed = not settings.ui.loopback

    def check_key(request: Request) -> None:
        if key is None and exposed:
            raise RequestError(f"this endpoint is served on {settings.ui.host} and needs an API key: set QA_API_KEY "
                               "on the server and send it as 'Authorization: Bearer <key>'", code="invalid_api_key",
                               status=401)
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError("missing API key: send it as 'Authorization: Bearer <key>'", code="invalid_api_key",
                               status=401)
        if not hmac.compare_digest(given.strip().encode(), key):
            raise RequestError("incorrect API key", code="invalid_api_key", status=401)  # never echoed

    router = APIRouter(prefix="/v1")
    model_card = {"id": MODEL, "object": "model", "created": CREATED, "owned_by": MODEL}

    @router.get("/models")
    def models(request: Request) -> Response:
        try:
            check_key(request)
        except RequestError as exc:
            return error_response(exc.status, str(exc), param=exc.param, code=exc.code)
        return JSONResponse({"object": "list", "data": [model_card]})

    @router.get("/models/{model}")
    def model(model: str, request: Request) -> Response:
        try:
            check_key(request)
        except RequestError as exc:
            return error_response(exc.status, str(exc), param=exc.param, code=exc.code)
        if model != MODEL:
            return error_response(404, f"the model {model[:60]!r} does not exist; use {MODEL!r}", param="model",
                                  code="model_not_found")
        return JSONResponse(model_card)

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            check_key(request)
            if access is not None and access.limited:
                verdict = access.questions.hit("api:" + (request.client.host if request.client else "?"))
                if not verdict.allowed:
                    wait = max(1, round(verdict.retry_after))
                    return error_response(429, f"too many questions: the limit is {access.questions.limit} a minute; "
                                          f"try again in {wait} s", type_="requests", code="rate_limit_exceeded",
                                          headers={"Retry-After": str(wait)})
            body = await read_json(request)
            if not isinstance(body.get("model", MODEL), str):
                raise RequestError("model must be a string", "model")
            if body.get("n", 1) not in (1, None):
                raise RequestError("only n=1 is supported", "n")
            stream = body.get("stream") or False
            if not isinstance(stream, bool):
                raise RequestError("stream must be true or false", "stream")
            question, history = parse_messages(body.get("messages"), settings.max_question_chars)
        except RequestError as exc:
            return error_response(exc.status, str(exc), param=exc.param, code=exc.code)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not stream:
            try:
                answer = await run_in_threadpool(engine.ask, question, history)
            except Exception as exc:
                if not isinstance(exc, QAError):
                    log.exception("OpenAI API answer failed")
                status, err = engine_error(exc)
                return JSONResponse(err, status_code=status)
            return JSONResponse(completion(answer, cid, created))
        events = engine.stream(question, history, progress=True)
        try:  # the first event in advance: an error before any text still gets its HTTP status
            first = await run_in_threadpool(next, events)
        except Exception as exc:
            if not isinstance(exc, QAError):
                log.exception("OpenAI API answer failed")
            status, err = engine_error(exc)
            return JSONResponse(err, status_code=status)
        return StreamingResponse(sse_events(first, events, cid, created), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
