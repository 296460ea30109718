"""Engine errors: every failure a caller can act on has its own class and a message naming the cause."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of all engine errors."""


class ModelLoadError(EngineError):
    """A model file is missing, not a GGUF, truncated/corrupt, or llama.cpp refused it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot load model {path}: {reason}")
        self.path = path
        self.reason = reason


class AdapterMismatchError(EngineError):
    """A LoRA adapter does not fit the base model it is used with (or is not a LoRA adapter at all)."""

    def __init__(self, adapter_path: str, model_path: str, reason: str) -> None:
        super().__init__(f"LoRA adapter {adapter_path} cannot be used with model {model_path}: {reason}")
        self.adapter_path = adapter_path
        self.model_path = model_path
        self.reason = reason


class ContextOverflowError(EngineError):
    """The prompt (plus the room needed to answer) does not fit the model's context window."""


class InvalidRequestError(EngineError):
    """The call's arguments cannot be served (e.g. decision labels sharing a first token)."""


class StructuredOutputError(EngineError):
    """Grammar-constrained output did not complete (token budget ran out) or failed the Struct's validation."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


class NoValidTokenError(EngineError):
    """Every token was ruled out (grammar and UTF-8 constraints together admit nothing)."""


class DecodeError(EngineError):
    """llama.cpp failed to evaluate a batch (e.g. out of KV cache space)."""


class Cancelled(EngineError):
    """The call was cancelled through its CancelToken."""


class Timeout(EngineError):
    """The call ran past its timeout."""
