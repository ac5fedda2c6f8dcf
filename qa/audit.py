"""The audit trail: one JSON line per corpus change (upload, removal, re-ingest), appended, never rewritten.

A line holds when, who, what (action and file), the content's sha256 and the outcome: never a password,
a key or a question.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qa.errors import ConfigError


@dataclass(frozen=True)
class AuditEntry:
    who: str
    action: str  # upload | remove | reingest
    file: str = ""
    sha256: str = ""
    outcome: str = ""
    when: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def sha256_of(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


class AuditTrail:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        line = json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: concurrent writers (the server and `qa ingest`) each add whole lines.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)

    def read(self) -> list[AuditEntry]:
        if not self.path.is_file():
            return []
        entries = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the audit trail {self.path} ({exc.strerror or exc})") from None
        for line in lines:
            try:
                data = json.loads(line)
                entries.append(AuditEntry(**{k: str(data.get(k, "")) for k in AuditEntry.__dataclass_fields__}))
            except ValueError:
                continue  # a line cut by a crash is skipped, the rest still reads
        return entries
