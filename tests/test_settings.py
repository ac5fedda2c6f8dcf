"""Settings: grouped fields, the QA_ names from before the grouping, nested names, .env, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

import qa
from qa.settings import GROUPS, LEGACY, Settings, env_name, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("QA_") or key == "OPENAI_API_KEY":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_grouped():
    s = Settings()
    assert (s.retrieval.top_k, s.answering.relevance_floor, s.llm.base_url, s.ui.host) == (5, 0.55, None, "127.0.0.1")
    assert s.mode == "auto" and not s.use_llm


@pytest.mark.parametrize("flat, value, path, expected", [
    ("QA_TOP_K", "7", ("retrieval", "top_k"), 7),
    ("QA_RETRIEVAL_E5_SHARE", "0.5", ("retrieval", "e5_share"), 0.5),
    ("QA_RELEVANCE_FLOOR", "0.6", ("answering", "relevance_floor"), 0.6),
    ("QA_TERM_SUPPORT", "false", ("answering", "term_support"), False),
    ("QA_LLM_BASE_URL", "http://127.0.0.1:8080/v1", ("llm", "base_url"), "http://127.0.0.1:8080/v1"),
    ("QA_LLM_TIMEOUT", "30", ("llm", "timeout"), 30.0),
    ("QA_HOST", "0.0.0.0", ("ui", "host"), "0.0.0.0"),
    ("QA_PORT", "8000", ("ui", "port"), 8000),
    ("QA_CONCURRENCY_LIMIT", "2", ("ui", "concurrency_limit"), 2),
])
def test_variables_from_before_the_grouping_keep_working(monkeypatch, flat, value, path, expected):
    monkeypatch.setenv(flat, value)
    group, field = path
    assert getattr(getattr(Settings(), group), field) == expected


def test_every_legacy_name_points_at_a_real_field():
    for key, (group, field) in LEGACY.items():
        assert field in type(getattr(Settings(), group)).model_fields, key


def test_nested_variables_use_two_underscores_and_win_over_the_flat_name(monkeypatch):
    monkeypatch.setenv("QA_RETRIEVAL__CENTERING", "1.25")
    monkeypatch.setenv("QA_TOP_K", "3")
    monkeypatch.setenv("QA_RETRIEVAL__TOP_K", "9")
    s = Settings()
    assert s.retrieval.centering == 1.25 and s.retrieval.top_k == 9


def test_keyword_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "3")
    monkeypatch.setenv("QA_HOST", "0.0.0.0")
    s = Settings(top_k=8, port=9000)
    assert (s.retrieval.top_k, s.ui.port, s.ui.host) == (8, 9000, "0.0.0.0")


def test_dotenv_file_with_flat_and_nested_names(tmp_path):
    env = tmp_path / "my.env"
    env.write_text("QA_TOP_K=4\nQA_LLM_MODEL=smol\nQA_ANSWERING__MARGIN=0.2\nQA_COLLECTION=from-env\n")
    s = Settings(_env_file=env)
    assert (s.retrieval.top_k, s.llm.model, s.answering.margin, s.collection) == (4, "smol", 0.2, "from-env")


def test_openai_key_fallback_and_the_key_is_never_printed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    s = Settings()
    assert s.llm.api_key.get_secret_value() == "sk-secret-123" and s.use_llm
    assert "sk-secret-123" not in repr(s) and "sk-secret-123" not in str(s.model_dump())


@pytest.mark.parametrize("env, field, variable", [
    ({"QA_LLM_TIMEOUT": "0"}, "llm.timeout", "QA_LLM_TIMEOUT"),
    ({"QA_RETRIEVAL__CENTERING": "9"}, "retrieval.centering", "QA_RETRIEVAL__CENTERING"),
    ({"QA_CHUNK_SIZE": "8"}, "chunk_size", "QA_CHUNK_SIZE"),
    ({"QA_LLM_BASE_URL": "localhost:8080"}, "llm.base_url", "QA_LLM_BASE_URL"),
    ({"QA_MODE": "llm"}, "settings", "QA_*"),
])
def test_a_bad_value_names_the_field_and_its_variable(monkeypatch, env, field, variable):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(qa.ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid setting ") and f"{field} ({variable})" in message, message


def test_env_name_maps_locations():
    assert env_name(("llm", "model")) == "QA_LLM_MODEL"
    assert env_name(("answering", "margin")) == "QA_ANSWERING__MARGIN"
    assert env_name(("collection",)) == "QA_COLLECTION"


def test_replace_is_validated_and_accepts_flat_names():
    s = Settings(mode="offline")
    t = s.replace(llm_base_url="http://127.0.0.1:1/v1", mode="llm", top_k=2)
    assert (t.llm.base_url, t.mode, t.retrieval.top_k, s.retrieval.top_k) == ("http://127.0.0.1:1/v1", "llm", 2, 5)
    with pytest.raises(ValueError):
        s.replace(chunk_overlap=500)


def test_every_field_is_described():
    def described(model: type[BaseModel]) -> list[str]:
        return [name for name, f in model.model_fields.items() if not (f.description or "").strip()]

    assert described(Settings) == []
    for group in GROUPS:
        assert described(type(getattr(Settings(), group))) == [], group


def test_import_qa_changes_no_environment_and_errors_stay_light():
    code = (
        "import os, sys; before = dict(os.environ); import qa, qa.errors; "
        "assert dict(os.environ) == before, set(os.environ) ^ set(before); "
        "assert not any(m.startswith(('llama_index', 'chromadb', 'gradio')) for m in sys.modules), 'heavy import'; "
        "qa.Settings; assert 'llama_index' not in sys.modules; print('ok')"
    )
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("ANONYMIZED_TELEMETRY", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
