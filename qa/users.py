"""The users file: names, roles and argon2 password hashes; what each role may do.

The file is JSON (``{"users": {"alice": {"role": "reader", "hash": "$argon2id$..."}}}``), written
atomically (a temporary file then ``os.replace``) with mode 0600, and never holds a password. A running
server re-reads it when it changes, so ``qa users remove`` takes effect without a restart.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qa.errors import ConfigError

Role = Literal["reader", "editor"]
ROLES: tuple[Role, ...] = ("reader", "editor")
# What each role may do; the UI and any other front end (an API endpoint) ask `allowed`.
PERMISSIONS: dict[str, frozenset[str]] = {
    "reader": frozenset({"ask", "chat", "export"}),
    "editor": frozenset({"ask", "chat", "export", "upload", "remove", "reingest"}),
}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8


def allowed(role: str | None, action: str) -> bool:
    return role is not None and action in PERMISSIONS.get(role, frozenset())


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def _hasher():
    from argon2 import PasswordHasher  # imported on use: `import qa` stays light

    return PasswordHasher()  # argon2id with the library's current recommended parameters


class Users:
    """The users of one users file. Thread-safe; re-reads the file when its modification time changes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, dict[str, str]] = {}
        self._dummy: str | None = None

    # --- reading ---------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, str]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, {}
            return self._records
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                records = data["users"]
                if not isinstance(records, dict):
                    raise TypeError
            except (OSError, ValueError, KeyError, TypeError):
                raise ConfigError(f"the users file {self.path} is unreadable; recreate it with `qa users add`") from None
            self._stamp, self._records = stamp, records
        return self._records

    def list(self) -> list[User]:
        with self._lock:
            return [User(name, r["role"]) for name, r in sorted(self._load().items())]

    def __len__(self) -> int:
        return len(self.list())

    def role_of(self, username: str | None) -> Role | None:
        """The role of a user, None for an unknown (or since removed) one."""
        if not username:
            return None
        with self._lock:
            record = self._load().get(username)
        return record["role"] if record and record.get("role") in ROLES else None  # type: ignore[return-value]

    def verify(self, username: str, password: str) -> bool:
        """Check a password. An unknown name costs the same hash as a known one (no name probing by timing)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        with self._lock:
            record = self._load().get(username)
            if self._dummy is None:
                self._dummy = _hasher().hash("not a password of anyone")
            dummy = self._dummy
        try:
            _hasher().verify(record["hash"] if record else dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return record is not None and record.get("role") in ROLES

    # --- writing ---------------------------------------------------------------------------------
    def add(self, name: str, password: str, role: str) -> User:
        """Add a user or replace their password and role."""
        if not NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a valid user name; use 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise ConfigError(f"{role!r} is not a role; use one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password is too short; use at least {MIN_PASSWORD} characters")
        digest = _hasher().hash(password)
        with self._lock:
            records = dict(self._load())
            records[name] = {"role": role, "hash": digest}
            self._write(records)
        return User(name, role)  # type: ignore[arg-type]

    def remove(self, name: str) -> None:
        with self._lock:
            records = dict(self._load())
            if name not in records:
                raise ConfigError(f"there is no user {name!r} in {self.path}")
            del records[name]
            self._write(records)

    def _write(self, records: dict[str, dict[str, str]]) -> None:
        # Atomic: a reader (the running server) sees the old file or the new one, never half of one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"users": records}, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None  # re-read on next use
        self._records = records
