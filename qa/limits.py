"""Per-client limits: requests per time window, work in progress at once, and the sign-in back-off.

All in memory, per process: a restart forgets them, which is fine for limits meant to keep one client
from crowding out the others. Clocks are injectable so the tests need not wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from qa.errors import RateLimited

Clock = Callable[[], float]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0  # seconds until the next request would be allowed


class WindowLimit:
    """At most `limit` events per `period` seconds per key (a sliding window of timestamps)."""

    def __init__(self, limit: int, period: float, clock: Clock = time.monotonic):
        self.limit, self.period, self.clock = limit, period, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> Verdict:
        """Count one event for key if it is within the limit."""
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.period:
                events.popleft()
            if len(events) >= self.limit:
                return Verdict(False, events[0] + self.period - now)
            events.append(now)
            return Verdict(True)


class InFlight:
    """At most `limit` running tasks per key; a further one is refused at once rather than queued, so one
    client cannot fill the shared answer queue."""

    def __init__(self, limit: int):
        self.limit = limit
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, key: str, message: str) -> Iterator[None]:
        with self._lock:
            if self._running.get(key, 0) >= self.limit:
                raise RateLimited(message)
            self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[key] - 1
                if left:
                    self._running[key] = left
                else:
                    del self._running[key]


class LoginBackoff:
    """Exponential delay per (username, address): after n failures the next attempt waits base * 2**(n-1)
    seconds (capped); a success resets it, and failures are forgotten after `forget` quiet seconds."""

    def __init__(self, base: float, cap: float = 60.0, forget: float = 900.0, clock: Clock = time.monotonic):
        self.base, self.cap, self.forget, self.clock = base, cap, forget, clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def delay(self, username: str, address: str) -> float:
        with self._lock:
            count, last = self._failures.get((username, address), (0, 0.0))
            if count and self.clock() - last > self.forget:
                del self._failures[(username, address)]
                count = 0
        return 0.0 if count == 0 else min(self.cap, self.base * 2 ** (count - 1))

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            count, _ = self._failures.get((username, address), (0, 0.0))
            self._failures[(username, address)] = (count + 1, self.clock())
            if len(self._failures) > 100_000:  # bounded memory under a spray of names
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username, address), None)
