"""Offline, cross-lingual question answering with verified citations over a news corpus.

The public names load lazily: ``import qa`` and ``import qa.errors`` stay cheap (no model, Chroma or
LlamaIndex import), and importing changes nothing in the host process (the entry points, ``app.py``
and the ``qa`` command, set their own environment defaults).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Settings": "qa.settings",
    "load_settings": "qa.settings",
    "ingest": "qa.ingest",
    "add_documents": "qa.ingest",
    "remove_documents": "qa.ingest",
    "IngestReport": "qa.ingest",
    "RemoveReport": "qa.ingest",
    "CorpusDocument": "qa.documents",
    "list_documents": "qa.documents",
    "QAEngine": "qa.engine",
    "CorpusStats": "qa.engine",
    "Answer": "qa.schema",
    "Citation": "qa.schema",
    "Source": "qa.schema",
    "Progress": "qa.schema",
    "QAError": "qa.errors",
    "ConfigError": "qa.errors",
    "StoreError": "qa.errors",
    "LLMError": "qa.errors",
}
__all__ = [
    "Settings", "load_settings", "ingest", "add_documents", "remove_documents", "IngestReport", "RemoveReport",
    "CorpusDocument", "list_documents", "QAEngine", "CorpusStats",
    "Answer", "Citation", "Source", "Progress", "QAError", "ConfigError", "StoreError", "LLMError",
]

if TYPE_CHECKING:  # pragma: no cover
    from qa.documents import CorpusDocument, list_documents
    from qa.engine import CorpusStats, QAEngine
    from qa.errors import ConfigError, LLMError, QAError, StoreError
    from qa.ingest import IngestReport, RemoveReport, add_documents, ingest, remove_documents
    from qa.schema import Answer, Citation, Progress, Source
    from qa.settings import Settings, load_settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """`qa.ingest` is the function, as before, even after the submodule `qa.ingest` is imported (the import
    system would otherwise bind the package attribute to the submodule)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and callable(getattr(value, name, None)) and name in _EXPORTS:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
