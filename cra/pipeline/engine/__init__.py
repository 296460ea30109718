"""In-process llama.cpp engine (see docs/DESIGN.md, "Engine").

Importing the package loads only its data types, errors and cancellation tokens. The backends are imported on
first use of their names (PEP 562), so that a process that never builds a `LocalEngine` (the language server
answering `initialize`, a remote backend, the CLI) does not load llama.cpp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.lazy import lazy_exports

from .cancel import CancelToken, Deadline
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
from .types import (
    AdapterSpec,
    CallStats,
    Decision,
    Engine,
    EngineStats,
    FinishReason,
    Generation,
    GenParams,
    Message,
    ModelSpec,
)

if TYPE_CHECKING:
    from .chat import ChatRenderer
    from .ggufcheck import GGUFInfo, check_adapter_fits, read_gguf
    from .local import LocalEngine
    from .pool import MemoryBudgetError, ModelPool
    from .remote import RemoteEngine, RemoteError
    from .scheduler import ModelPolicy, QueueFull, Scheduler, scheduler_from_config

# name → submodule it is imported from on first access
_LAZY = {
    "ChatRenderer": ".chat",
    "GGUFInfo": ".ggufcheck",
    "check_adapter_fits": ".ggufcheck",
    "read_gguf": ".ggufcheck",
    "LocalEngine": ".local",
    "MemoryBudgetError": ".pool",
    "ModelPool": ".pool",
    "RemoteEngine": ".remote",
    "RemoteError": ".remote",
    "ModelPolicy": ".scheduler",
    "QueueFull": ".scheduler",
    "Scheduler": ".scheduler",
    "scheduler_from_config": ".scheduler",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


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
    "Engine",
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
