"""In-process llama.cpp engine (see docs/DESIGN.md, "Engine")."""

from .cancel import CancelToken, Deadline
from .chat import ChatRenderer
from .errors import (
    AdapterMismatchError,
    Cancelled,
    ContextOverflowError,
    DecodeError,
    EngineError,
    InvalidRequestError,
    ModelLoadError,
    NoValidTokenError,
    StructuredOutputError,
    Timeout,
)
from .ggufcheck import GGUFInfo, check_adapter_fits, read_gguf
from .local import LocalEngine
from .pool import MemoryBudgetError, ModelPool
from .remote import RemoteEngine, RemoteError
from .scheduler import ModelPolicy, QueueFull, Scheduler, scheduler_from_config
from .types import (
    AdapterSpec,
    CallStats,
    Decision,
    EngineStats,
    FinishReason,
    Generation,
    GenParams,
    Message,
    ModelSpec,
)

__all__ = [
    "AdapterMismatchError",
    "AdapterSpec",
    "CallStats",
    "CancelToken",
    "Cancelled",
    "ChatRenderer",
    "ContextOverflowError",
    "Deadline",
    "Decision",
    "DecodeError",
    "EngineError",
    "EngineStats",
    "FinishReason",
    "GGUFInfo",
    "GenParams",
    "Generation",
    "InvalidRequestError",
    "LocalEngine",
    "MemoryBudgetError",
    "ModelPolicy",
    "ModelPool",
    "QueueFull",
    "RemoteEngine",
    "RemoteError",
    "Scheduler",
    "scheduler_from_config",
    "Message",
    "ModelLoadError",
    "ModelSpec",
    "NoValidTokenError",
    "StructuredOutputError",
    "Timeout",
    "check_adapter_fits",
    "read_gguf",
]
