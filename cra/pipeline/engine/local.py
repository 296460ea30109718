"""In-process llama.cpp engine: model residency, and the engine calls served by one session per model.

One loaded model + context per base model path (a `ModelSession`, see session.py), every adapter for it loaded once
and switched per call. A cached prefix is reused only under the adapter set it was computed with. One lock per
loaded model serializes calls on its context.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .cancel import CancelToken, Deadline
from .errors import InvalidRequestError
from .ggufcheck import read_gguf
from .grammar import gbnf_for, structured_result
from .session import ModelSession, default_threads, init_backend
from .types import (
    AdapterSpec,
    Decision,
    EngineStats,
    Generation,
    GenParams,
    Message,
    ModelSpec,
)

__all__ = ["ADAPTER_LAYOUTS", "LocalEngine", "default_threads"]

T = TypeVar("T")

ADAPTER_LAYOUTS = ("cpu", "as-is")


class LocalEngine:
    """In-process engine (an `Engine`). Thread-safe: calls on one model run one at a time, different models in
    parallel. `decide` takes one forward pass (a softmax over the labels' first-token logits); `decide_batch`
    evaluates the shared prefix once and every question's tail together in one batch."""

    def __init__(
        self,
        *,
        prefill_chunk: int = 64,
        n_seq_max: int = 16,
        adapter_layout: str = "cpu",
        adapter_cache: str | Path | None = None,
    ) -> None:
        if adapter_layout not in ADAPTER_LAYOUTS:
            raise ValueError(f"adapter_layout must be one of {', '.join(ADAPTER_LAYOUTS)}, got {adapter_layout!r}")
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be >= 1, got {prefill_chunk}")
        if not 2 <= n_seq_max <= 256:
            raise ValueError(f"n_seq_max must be in 2..256, got {n_seq_max}")
        init_backend()
        self.prefill_chunk = prefill_chunk
        self.n_seq_max = n_seq_max
        self.adapter_layout = adapter_layout
        self.adapter_cache = adapter_cache
        self.stats = EngineStats()
        self._models: dict[str, ModelSession] = {}
        self._registry_lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}

    # ---------------------------------------------------------------- residency

    @staticmethod
    def _key(model: ModelSpec) -> str:
        return str(Path(model.path).expanduser().resolve())

    def load(self, model: ModelSpec) -> None:
        """Load `model` if it is not resident yet (validating the GGUF first)."""
        self._get(model)

    def is_loaded(self, model: ModelSpec) -> bool:
        return self._key(model) in self._models

    def loaded_models(self) -> list[str]:
        """Resolved paths of the resident models."""
        return list(self._models)

    def unload(self, model: ModelSpec) -> bool:
        """Free a resident model (waits for its running call); returns whether it was loaded."""
        key = self._key(model)
        with self._registry_lock:
            session = self._models.pop(key, None)
        if session is None:
            return False
        with session.lock:
            session.close()
        self.stats.model_unloads += 1
        return True

    def close(self) -> None:
        for key in list(self._models):
            session = self._models.get(key)
            if session is not None:
                self.unload(session.spec)

    def _get(self, model: ModelSpec) -> ModelSession:
        key = self._key(model)
        session = self._models.get(key)
        if session is not None:
            return session
        with self._registry_lock:
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:  # one loader per path; other paths load in parallel
            session = self._models.get(key)
            if session is None:
                if model.n_ctx < 16:
                    raise InvalidRequestError(f"n_ctx must be at least 16, got {model.n_ctx}")
                info = read_gguf(key)
                session = ModelSession(
                    model,
                    key,
                    info,
                    n_seq_max=self.n_seq_max,
                    prefill_chunk=self.prefill_chunk,
                    adapter_layout=self.adapter_layout,
                    adapter_cache=self.adapter_cache,
                    stats=self.stats,
                )
                with self._registry_lock:
                    self._models[key] = session
                self.stats.model_loads += 1
        return session

    def load_adapter(self, model: ModelSpec, adapter: AdapterSpec) -> None:
        """Load (once) an adapter for `model`; raises AdapterMismatchError if it does not fit the base."""
        self._get(model).load_adapter(adapter)

    def set_adapters(self, model: ModelSpec, adapters: Sequence[AdapterSpec]) -> None:
        """Make `adapters` the context's active set now (calls do this themselves; this exists to warm adapters up
        and to time a switch). Switching never reloads the model."""
        self._get(model).set_adapters(adapters)

    # ---------------------------------------------------------------- text

    def tokenize(self, model: ModelSpec, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        return self._get(model).tokenize(text, special=special, add_bos=add_bos)

    def detokenize(self, model: ModelSpec, tokens: Sequence[int]) -> str:
        return self._get(model).detokenize(tokens)

    def render(self, model: ModelSpec, messages: Sequence[Message]) -> str:
        """The prompt text for `messages` under the model's chat template (with the assistant generation prompt)."""
        return self._get(model).renderer.render(messages)

    # ---------------------------------------------------------------- engine calls (documented on `Engine`)

    def generate(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        params: GenParams | None = None,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
        timeout_s: float | None = None,
    ) -> Generation:
        params = params or GenParams()
        return self._run(model, adapters, messages, params, cancel, on_text, timeout_s, grammar=None)

    def structured(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        struct_type: type[T],
        params: GenParams | None = None,
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> tuple[T, Generation]:
        params = params or GenParams()
        grammar = gbnf_for(struct_type)  # type: ignore[arg-type]  # a class is hashable
        gen = self._run(model, adapters, messages, params, cancel, None, timeout_s, grammar=grammar)
        return structured_result(gen, struct_type, params.max_tokens)

    def decide(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        labels: Sequence[str],
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> Decision:
        session = self._get(model)
        return session.decide(adapters, messages, labels, Deadline(cancel, timeout_s))

    def decide_batch(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        prefix_messages: Sequence[Message],
        questions: Sequence[str],
        labels: Sequence[str] = ("yes", "no"),
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> list[Decision]:
        if not questions:
            return []
        session = self._get(model)
        return session.decide_batch(adapters, prefix_messages, questions, labels, Deadline(cancel, timeout_s))

    def count_tokens(self, model: ModelSpec, text: str) -> int:
        return len(self.tokenize(model, text))

    def _run(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        params: GenParams,
        cancel: CancelToken | None,
        on_text: Callable[[str], None] | None,
        timeout_s: float | None,
        *,
        grammar: str | None,
    ) -> Generation:
        if params.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {params.max_tokens}")
        if params.temperature < 0:
            raise InvalidRequestError(f"temperature must be >= 0, got {params.temperature}")
        session = self._get(model)
        deadline = Deadline(cancel, timeout_s if timeout_s is not None else params.timeout_s)
        return session.generate(adapters, messages, params, deadline, on_text, grammar=grammar)
