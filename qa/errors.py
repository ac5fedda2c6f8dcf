"""The project's domain exceptions; the edges (CLI, UI) turn them into one-line messages."""


class QAError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ConfigError(QAError):
    """A setting or an input is invalid (bad value, empty question, unsupported file)."""


class StoreError(QAError):
    """The vector store is missing, empty, unreachable or built with other parameters."""


class LLMError(QAError):
    """The LLM endpoint failed (unreachable, slow, refused the key, broke the stream)."""


class PermissionDenied(QAError):
    """The signed-in user's role does not allow the action (a reader uploading); nothing was changed."""


class RateLimited(QAError):
    """A per-user limit (questions per minute, uploads per hour, answers at once) was reached; retry later."""
