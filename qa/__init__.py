"""Offline, cross-lingual question answering with verified citations over a news corpus."""

import os as _os

# Chroma telemetry and Gradio analytics stay off for every entry point (the project never calls out).
_os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
_os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from qa.engine import CorpusStats, QAEngine  # noqa: E402
from qa.errors import ConfigError, LLMError, QAError, StoreError  # noqa: E402
from qa.ingest import IngestReport, ingest  # noqa: E402
from qa.schema import Answer, Citation, Source  # noqa: E402
from qa.settings import Settings, load_settings  # noqa: E402

__all__ = [
    "Settings",
    "load_settings",
    "ingest",
    "QAEngine",
    "CorpusStats",
    "Answer",
    "Citation",
    "Source",
    "IngestReport",
    "QAError",
    "ConfigError",
    "StoreError",
    "LLMError",
]
