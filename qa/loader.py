"""Open the engine in a background thread, so that the web page is served while the models and the index load.

``app.py`` starts an :class:`EngineLoader` before importing Gradio and building the page: the imports, the
page and the server start overlap the engine start instead of waiting for it. The UI takes the loader
where it takes an engine; every attribute read (``loader.stream``, ``loader.embed_model``...) waits until
the engine is open, and a failed start raises the same one-line error for every caller. This module
imports nothing heavy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from qa.errors import QAError, StoreError

log = logging.getLogger(__name__)

_START = threading.Lock()
LOADING = "Loading the index… the first question waits for it."


class EngineLoader:
    """A QAEngine being opened by ``factory()`` in a daemon thread; reads wait for it (see :meth:`result`)."""

    def __init__(self, factory: Callable[[], Any], *, name: str = "engine-loader"):
        self._factory = factory
        self._done = threading.Event()
        self._engine: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.seconds = 0.0

    @classmethod
    def ready_made(cls, engine: Any) -> EngineLoader:
        """A loader around an engine that is already open."""
        loader = cls(lambda: engine)
        loader._engine = engine
        loader._done.set()
        return loader

    def start(self) -> EngineLoader:
        """Start opening the engine (once; later calls do nothing)."""
        with _START:
            if not self._done.is_set() and not self._thread.is_alive() and self._thread.ident is None:
                self._thread.start()
        return self

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._engine = self._factory()
        except QAError as exc:
            self._error = exc
        except BaseException as exc:  # one line for the page and the console; the traceback goes to the log
            log.debug("opening the engine failed", exc_info=True)
            self._error = StoreError(f"the index could not be opened ({type(exc).__name__}: {exc})")
        finally:
            self.seconds = time.perf_counter() - started
            self._done.set()

    @property
    def done(self) -> bool:
        """True once the engine is open or its start failed."""
        return self._done.is_set()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self._error is None

    @property
    def error(self) -> BaseException | None:
        return self._error if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the engine is open or its start failed; False on timeout."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The open engine, waiting for it; the start's error (a QAError) if it failed."""
        if not self._done.wait(timeout):
            raise StoreError("the index is still loading; try again in a moment")
        if self._error is not None:
            raise self._error
        return self._engine

    def __getattr__(self, name: str) -> Any:  # only names the loader itself does not have
        if name.startswith("__") or name in {"_factory", "_done", "_engine", "_error", "_thread"}:
            raise AttributeError(name)
        return getattr(self.result(), name)


def as_loader(engine: Any) -> EngineLoader:
    """An EngineLoader for either an open engine or a loader."""
    return engine if isinstance(engine, EngineLoader) else EngineLoader.ready_made(engine)
