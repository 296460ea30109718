"""Per-model request queues, concurrency limits and timeouts in front of an engine.

`Scheduler` is an `Engine` (types.py) in front of another one, so `StageLLM` can use it wherever it uses an engine.
Each call:

1. gets a deadline: `timeout_s` given to the call, else `params.timeout_s`, else the model's `default_timeout`;
   it is measured from submission, so time spent queued counts;
2. waits its turn in its model's FIFO queue (at most `max_queue` waiting, else `QueueFull` at once);
3. leases its model from the `ModelPool` (in-process engines): loaded if needed, not evicted while it runs;
4. runs with a CancelToken that also trips at the deadline; a call stopped that way raises `Timeout`, and the
   engine stays usable (it treats it as any cancellation).

`max_concurrency` is how many calls may run at once on one model. An in-process llama context serves one call at
a time (LocalEngine has one context per model and serializes on it), so for it the value must be 1: waiting then
happens here, in FIFO order and under the deadline, not on the engine's lock. Values above 1 are for a remote
server with several slots (`llama-server --parallel N`, vLLM).
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

import msgspec

from .cancel import CancelToken
from .errors import Cancelled, EngineError, Timeout
from .pool import ModelPool, ResidencyEngine, budget_from_mb, model_key
from .types import (
    AdapterSpec,
    Decision,
    Engine,
    Generation,
    GenParams,
    Message,
    ModelSpec,
)

if TYPE_CHECKING:
    from cra.pipeline.config import Config
    from cra.pipeline.router import ModelRouter

T = TypeVar("T")
R = TypeVar("R")

_POLL_S = 0.02  # queued calls re-check cancel/deadline this often


class QueueFull(EngineError):
    """Too many calls are already waiting for this model."""


class ModelPolicy(msgspec.Struct, frozen=True):
    max_concurrency: int = 1
    default_timeout: float | None = None  # seconds; None: no deadline unless the call gives one
    max_queue: int = 64

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.default_timeout is not None and self.default_timeout <= 0:
            raise ValueError(f"default_timeout must be positive, got {self.default_timeout}")


class CallToken(CancelToken):
    """The token handed to the engine: trips when the caller cancels, when cancelled itself, or at the deadline."""

    def __init__(self, parent: CancelToken | None, timeout_s: float | None) -> None:
        super().__init__()
        self.parent = parent
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self.expires = None if timeout_s is None else self.started + timeout_s

    @property
    def timed_out(self) -> bool:
        return self.expires is not None and time.monotonic() >= self.expires

    @property
    def caller_cancelled(self) -> bool:
        return super().cancelled or (self.parent is not None and self.parent.cancelled)

    @property
    def cancelled(self) -> bool:  # polled from llama.cpp's abort callback: keep it cheap
        return self.caller_cancelled or self.timed_out

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.cancelled:
            left = _POLL_S if end is None else min(_POLL_S, end - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True


class _ModelQueue:
    """FIFO admission for one model: at most `max_concurrency` running, at most `max_queue` waiting."""

    def __init__(self, policy: ModelPolicy) -> None:
        self.policy = policy
        self.running = 0
        self.waiting: collections.deque[object] = collections.deque()
        self.cond = threading.Condition()

    def enter(self, token: CallToken, name: str) -> None:
        ticket = object()
        with self.cond:
            if len(self.waiting) >= self.policy.max_queue and not self._free():
                raise QueueFull(
                    f"model {name} already has {len(self.waiting)} calls waiting (max_queue "
                    f"{self.policy.max_queue}); try again when the running calls finish"
                )
            self.waiting.append(ticket)
            try:
                while not (self.waiting[0] is ticket and self._free()):
                    if token.cancelled:
                        raise Cancelled(f"the call was cancelled while queued for model {name}")
                    self.cond.wait(_POLL_S)
            except BaseException:
                self.waiting.remove(ticket)
                self.cond.notify_all()
                raise
            self.waiting.popleft()
            self.running += 1
            self.cond.notify_all()  # the next in line may also fit (max_concurrency > 1)

    def leave(self) -> None:
        with self.cond:
            self.running -= 1
            self.cond.notify_all()

    def _free(self) -> bool:
        return self.running < self.policy.max_concurrency


class Scheduler:
    """Queues, limits and times out calls per model; with a `pool`, also keeps models within the memory budget.

    `policies` maps a model's name or its path to its `ModelPolicy`; other models get `default_policy`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        pool: ModelPool | None = None,
        policies: Mapping[str, ModelPolicy] | None = None,
        default_policy: ModelPolicy | None = None,
    ) -> None:
        if pool is not None and pool.engine is not engine:
            raise ValueError("the pool must manage the same engine the scheduler drives")
        self.engine = engine
        self.pool = pool
        self.default_policy = default_policy or ModelPolicy()
        self._policies: dict[str, ModelPolicy] = {}
        for name, policy in (policies or {}).items():
            self._policies[name] = policy
        if pool is not None or _in_process(engine):
            for name, policy in [("default", self.default_policy), *self._policies.items()]:
                if policy.max_concurrency != 1:
                    raise ValueError(
                        f"max_concurrency for {name} is {policy.max_concurrency}, but an in-process model has one "
                        "llama context and serves one call at a time: use 1 (values above 1 are for remote servers)"
                    )
        self._queues: dict[str, _ModelQueue] = {}
        self._queues_lock = threading.Lock()

    # ------------------------------------------------------------------ engine calls (documented on `Engine`)

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
        timeout = timeout_s if timeout_s is not None else params.timeout_s
        return self._call(
            model, cancel, timeout,
            lambda token: self.engine.generate(model, adapters, messages, params, cancel=token, on_text=on_text),
        )

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
        timeout = timeout_s if timeout_s is not None else params.timeout_s
        return self._call(
            model, cancel, timeout,
            lambda token: self.engine.structured(model, adapters, messages, struct_type, params, cancel=token),
        )

    def decide(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        labels: Sequence[str],
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> Decision:
        return self._call(
            model, cancel, timeout_s, lambda token: self.engine.decide(model, adapters, messages, labels, cancel=token)
        )

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
        return self._call(
            model, cancel, timeout_s,
            lambda token: self.engine.decide_batch(model, adapters, prefix_messages, questions, labels, cancel=token),
        )

    def count_tokens(self, model: ModelSpec, text: str) -> int:
        # Tokenizing needs the model resident but not its context: no queue, only a lease.
        if self.pool is None:
            return int(self.engine.count_tokens(model, text))
        with self.pool.lease(model):
            return int(self.engine.count_tokens(model, text))

    # ------------------------------------------------------------------ queues

    def policy_for(self, model: ModelSpec) -> ModelPolicy:
        return self._policies.get(model.name) or self._policies.get(model_key(model)) or self.default_policy

    def queued(self, model: ModelSpec) -> int:
        """Calls waiting (not running) for `model`."""
        queue = self._queues.get(model_key(model))
        return len(queue.waiting) if queue is not None else 0

    def running(self, model: ModelSpec) -> int:
        queue = self._queues.get(model_key(model))
        return queue.running if queue is not None else 0

    def _queue(self, model: ModelSpec) -> _ModelQueue:
        key = model_key(model)
        with self._queues_lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _ModelQueue(self.policy_for(model))
            return queue

    def _call(
        self, model: ModelSpec, cancel: CancelToken | None, timeout_s: float | None, run: Callable[[CallToken], R]
    ) -> R:
        if timeout_s is None:
            timeout_s = self.policy_for(model).default_timeout
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        token = CallToken(cancel, timeout_s)
        queue = self._queue(model)
        try:
            queue.enter(token, model.name)
            try:
                if self.pool is None:
                    return run(token)
                with self.pool.lease(model, token):
                    return run(token)
            finally:
                queue.leave()
        except Cancelled as exc:
            if token.timed_out and not token.caller_cancelled:
                raise _timeout_from(exc, token, model) from exc
            raise


def _in_process(engine: Engine) -> bool:
    """Whether `engine` is a LocalEngine (without importing llama.cpp: if local.py is not loaded, it is not one)."""
    local = sys.modules.get(f"{__package__}.local")
    return local is not None and isinstance(engine, local.LocalEngine)


def _timeout_from(exc: Cancelled, token: CallToken, model: ModelSpec) -> Timeout:
    """The engine saw a tripped token; report it as what it was: the deadline passing."""
    waited = time.monotonic() - token.started
    timeout = Timeout(
        f"the call on model {model.name} ran past its timeout of {token.timeout_s:g} s (stopped after {waited:.2f} s)"
    )
    stats = getattr(exc, "stats", None)
    if stats is not None:
        stats.finish_reason = "timeout"
        timeout.stats = stats  # type: ignore[attr-defined]
    if hasattr(exc, "partial_text"):
        timeout.partial_text = exc.partial_text  # type: ignore[attr-defined]
    return timeout


def scheduler_from_config(config: Config, router: ModelRouter, engine: Engine) -> Scheduler:
    """The scheduler for a `cra.toml` config: the tier-0 role's model pinned, budget from engine.memory_budget_mb.

    Roles naming the same model share its queue; its default timeout is the longest of theirs (each role's own
    timeout still reaches the engine through the call's GenParams).
    """
    policies: dict[str, ModelPolicy] = {}
    specs: dict[str, ModelSpec] = {}
    for role, mc in config.models.items():
        spec, _resolved = router.model_for_role(role)
        key = model_key(spec)
        specs[role] = spec
        old = policies.get(key)
        concurrency = mc.max_concurrency if old is None else min(old.max_concurrency, mc.max_concurrency)
        timeout = mc.default_timeout if old is None or old.default_timeout is None else max(
            old.default_timeout, mc.default_timeout
        )
        policies[key] = ModelPolicy(max_concurrency=concurrency, default_timeout=timeout)
    if config.engine.backend == "remote":
        return Scheduler(engine, policies=policies)
    pinned = [specs[config.tiers.tier0]] if config.tiers.tier0 in specs else []
    # The in-process backend: an engine that loads and unloads models.
    pool = ModelPool(cast(ResidencyEngine, engine), budget_from_mb(config.engine.memory_budget_mb), pinned=pinned)
    return Scheduler(engine, pool=pool, policies=policies)
