"""Who is calling and what they may do: sign-in for Gradio, roles, per-client limits, the audit trail.

One `Access` per served app. The handlers in qa.ui ask it before they answer or change the corpus, so the
checks hold for the page and for direct API calls (gradio_client) alike.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from qa.audit import AuditEntry, AuditTrail
from qa.errors import ConfigError, PermissionDenied, RateLimited
from qa.limits import InFlight, LoginBackoff, WindowLimit
from qa.settings import Settings
from qa.users import Role, Users, allowed

log = logging.getLogger(__name__)

# The address of the HTTP request being handled, for the sign-in back-off: Gradio's auth callable gets
# only (username, password), so a middleware puts the address where the callable can read it.
_CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("qa_client_address", default="?")


class ClientAddressMiddleware:
    """ASGI middleware: remember the client address of each request (the proxy's, behind a reverse proxy)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") in ("http", "websocket"):
            client = scope.get("client")
            _CLIENT_ADDRESS.set(client[0] if client else "?")
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def exposure_check(settings: Settings) -> str | None:
    """Refuse to serve the network without sign-in; returns a warning to print when the operator opted out.

    Raises ConfigError with one line that names the setting to set.
    """
    host = settings.ui.host
    path = settings.auth.users_file
    if path is not None:
        if len(Users(path)) == 0:
            raise ConfigError(f"the users file {path} (QA_USERS_FILE) holds no users; add one with "
                              f"`qa users add NAME --role editor`")
        return None
    if is_loopback(host):
        return None
    if not settings.auth.allow_anonymous:
        raise ConfigError(f"serving {host} without sign-in is refused: set QA_USERS_FILE to a users file "
                          f"(`qa users add NAME --role editor`), or QA_ALLOW_ANONYMOUS=true to serve anyone")
    return (f"warning: QA_ALLOW_ANONYMOUS=true: anyone who reaches {host}:{settings.ui.port} can use the bot as "
            f"{settings.auth.anonymous_role}, without signing in")


@dataclass(frozen=True)
class Identity:
    key: str  # what the limits count by: the user name, or the address when anonymous
    who: str  # for the audit trail
    role: Role | None
    username: str | None = None


ACTION_WORDS = {"upload": "add documents", "remove": "remove documents", "reingest": "re-index the corpus",
                "ask": "ask questions", "chat": "ask questions", "export": "export"}


class Access:
    def __init__(self, settings: Settings):
        self.settings = settings
        auth = settings.auth
        self.users = Users(auth.users_file) if auth.users_file is not None else None
        # Without a users file: the local operator on loopback, or whoever allow_anonymous lets in.
        local = is_loopback(settings.ui.host)
        self.anonymous_role: Role = "editor" if local else auth.anonymous_role
        # Limits keep one client from crowding out the others; on loopback without users every caller is
        # the local operator (one address for all), so there is nobody to share with and none apply.
        self.limited = self.users is not None or not local
        self.questions = WindowLimit(auth.questions_per_minute, 60.0)
        self.uploads = WindowLimit(auth.uploads_per_hour, 3600.0)
        self.in_flight = InFlight(auth.max_concurrent_per_user)
        self.backoff = LoginBackoff(auth.login_delay)
        self.audit = AuditTrail(settings.audit_path)

    @property
    def sign_in(self) -> bool:
        return self.users is not None

    # --- sign-in ---------------------------------------------------------------------------------
    async def login(self, username: str, password: str) -> bool:
        """Gradio's auth callable: argon2 check off the event loop, slowed down after failures."""
        assert self.users is not None
        address = _CLIENT_ADDRESS.get()
        delay = self.backoff.delay(username, address)
        if delay:
            await asyncio.sleep(delay)  # only this attempt waits; the server keeps serving
        ok = await asyncio.to_thread(self.users.verify, username, password)
        if ok:
            self.backoff.succeeded(username, address)
        else:
            self.backoff.failed(username, address)
            log.warning("failed sign-in from %s", address)  # not the name: it may be a mistyped password
        return ok

    # --- who and what ----------------------------------------------------------------------------
    def identify(self, request: Any) -> Identity:
        username = getattr(request, "username", None) if request is not None else None
        if self.users is not None:
            role = self.users.role_of(username)  # None for nobody signed in or a removed user
            return Identity(f"user:{username}", username or "?", role, username)
        client = getattr(request, "client", None)
        address = getattr(client, "host", None) or "local"
        return Identity(f"addr:{address}", f"anonymous@{address}", self.anonymous_role)

    def role_of(self, username: str | None) -> Role | None:
        """For other front ends (an API endpoint): the role of a user name, None when unknown."""
        return self.users.role_of(username) if self.users is not None else self.anonymous_role

    def require(self, request: Any, action: str) -> Identity:
        who = self.identify(request)
        if not allowed(who.role, action):
            role = who.role or "no role"
            raise PermissionDenied(f"your role ({role}) may not {ACTION_WORDS.get(action, action)}; ask an editor")
        return who

    @contextmanager
    def question(self, request: Any) -> Iterator[Identity]:
        """Around one answer: role, questions per minute and answers at once."""
        who = self.require(request, "ask")
        if not self.limited:
            yield who
            return
        verdict = self.questions.hit(who.key)
        if not verdict.allowed:
            raise RateLimited(f"too many questions: the limit is {self.questions.limit} a minute; try again in "
                              f"{max(1, round(verdict.retry_after))} s")
        with self.in_flight.slot(who.key, f"you already have {self.in_flight.limit} answers in progress; wait "
                                          "for one to finish"):
            yield who

    def upload(self, request: Any) -> Identity:
        who = self.require(request, "upload")
        if not self.limited:
            return who
        verdict = self.uploads.hit(who.key)
        if not verdict.allowed:
            minutes = max(1, round(verdict.retry_after / 60))
            raise RateLimited(f"too many uploads: the limit is {self.uploads.limit} an hour; try again in "
                              f"{minutes} min")
        return who

    def record(self, who: str, action: str, file: str = "", sha256: str = "", outcome: str = "") -> None:
        try:
            self.audit.append(AuditEntry(who=who, action=action, file=file, sha256=sha256, outcome=outcome))
        except OSError:
            log.exception("writing the audit trail %s failed", self.audit.path)
