"""Per-stage timings of one question: a small trace object that the components record into.

The engine opens a trace around the work of a question; components wrap their work in ``stage(name)``
and need no timing parameter. Outside a trace, ``stage`` costs one context-variable lookup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Trace:
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over repeats

    def add(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds


_current: ContextVar[Trace | None] = ContextVar("qa_trace", default=None)


@contextmanager
def tracing(trace: Trace) -> Iterator[Trace]:
    """Record stages into `trace` within this block (keep it free of `yield`: generators change threads)."""
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    trace = _current.get()
    started = time.perf_counter()
    try:
        yield
    finally:
        if trace is not None:
            trace.add(name, time.perf_counter() - started)
