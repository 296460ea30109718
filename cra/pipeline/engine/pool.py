"""Model residency under a memory budget: the tier-0 model stays pinned, other models are evicted LRU-first.

The pool sits in front of one `LocalEngine` (which can hold several models) and decides which models may be
resident. A call takes a lease on its model: the lease loads it if needed (evicting least-recently-used idle
models until it fits) and keeps it from being evicted while the call runs.

Memory per model is estimated before loading, from the GGUF file size (weights are mmapped, so the file size is
what the weights cost) plus the KV cache for `n_ctx` tokens at f16.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from cra.pipeline.models.gguf_info import GGUFError, read_gguf_info

from .cancel import CancelToken
from .errors import Cancelled, EngineError, ModelLoadError
from .types import ModelSpec

_KV_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is f16
_POLL_S = 0.02  # how often a waiting lease re-checks its cancel token


class MemoryBudgetError(EngineError):
    """A model cannot fit in the memory budget even with every other unpinned model evicted."""


class ResidencyEngine(Protocol):
    """What the pool needs from an engine (LocalEngine has it)."""

    def load(self, model: ModelSpec) -> None: ...

    def unload(self, model: ModelSpec) -> bool: ...

    def is_loaded(self, model: ModelSpec) -> bool: ...


class PoolStats(msgspec.Struct):
    loads: int = 0
    unloads: int = 0
    evictions: int = 0


def model_key(model: ModelSpec) -> str:
    """Models are identified by resolved path, as in LocalEngine: two specs naming one file share one model."""
    return str(Path(model.path).expanduser().resolve())


def kv_cache_bytes(metadata: dict[str, Any], architecture: str, n_ctx: int) -> int:
    """K and V for every layer: n_ctx × n_layer × (head_dim × n_head_kv) values each, at f16."""

    def meta(name: str) -> int | None:
        value = metadata.get(f"{architecture}.{name}")
        return int(value) if isinstance(value, (int, float)) else None

    n_layer = meta("block_count") or 0
    n_embd = meta("embedding_length") or 0
    n_head = meta("attention.head_count") or 1
    n_head_kv = meta("attention.head_count_kv") or n_head
    key_len = meta("attention.key_length") or (n_embd // n_head if n_head else 0)
    value_len = meta("attention.value_length") or key_len
    n_ctx_train = meta("context_length")
    if n_ctx_train:  # the engine never makes a context longer than the trained length
        n_ctx = min(n_ctx, n_ctx_train)
    return n_ctx * n_layer * n_head_kv * (key_len + value_len) * _KV_BYTES_PER_VALUE


def estimate_model_bytes(model: ModelSpec) -> int:
    """Bytes a resident model costs: its GGUF file plus its KV cache at `model.n_ctx`."""
    path = model_key(model)
    try:
        info = read_gguf_info(path)
    except GGUFError as exc:
        raise ModelLoadError(path, str(exc).removeprefix(f"{path}: ")) from exc
    return info.file_size + kv_cache_bytes(info.metadata, info.architecture, model.n_ctx)


class _Resident:
    __slots__ = ("spec", "bytes", "leases")

    def __init__(self, spec: ModelSpec, size: int) -> None:
        self.spec = spec
        self.bytes = size
        self.leases = 0


class ModelPool:
    """Keeps the resident models of `engine` within `budget_bytes`.

    Pinned models (the tier-0 router) are loaded by `pin` and never evicted. A lease on an unpinned model that does
    not fit evicts idle models least-recently-used first; when the only candidates are busy, it waits for them to
    finish (bounded by the caller's cancel token). A model that cannot fit even next to the pinned ones alone is a
    `MemoryBudgetError`, raised at once.
    """

    def __init__(
        self,
        engine: ResidencyEngine,
        budget_bytes: int,
        *,
        pinned: Sequence[ModelSpec] = (),
        estimate: Callable[[ModelSpec], int] = estimate_model_bytes,
    ) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"the memory budget must be positive, got {budget_bytes} bytes")
        self.engine = engine
        self.budget_bytes = budget_bytes
        self.stats = PoolStats()
        self._estimate = estimate
        self._estimates: dict[str, int] = {}
        self._pinned: set[str] = set()
        # Resident models, least recently used first.
        self._resident: collections.OrderedDict[str, _Resident] = collections.OrderedDict()
        self._cond = threading.Condition()
        for spec in pinned:
            self.pin(spec)

    # ------------------------------------------------------------------ queries

    @property
    def used_bytes(self) -> int:
        with self._cond:
            return sum(r.bytes for r in self._resident.values())

    def resident(self) -> list[str]:
        """Resolved paths of the resident models, least recently used first."""
        with self._cond:
            return list(self._resident)

    def is_resident(self, model: ModelSpec) -> bool:
        with self._cond:
            return model_key(model) in self._resident

    def is_pinned(self, model: ModelSpec) -> bool:
        return model_key(model) in self._pinned

    def estimate(self, model: ModelSpec) -> int:
        key = model_key(model)
        size = self._estimates.get(key)
        if size is None:
            size = self._estimate(model)
            self._estimates[key] = size
        return size

    # ------------------------------------------------------------------ residency

    def pin(self, model: ModelSpec) -> None:
        """Load `model` now and keep it resident for the pool's lifetime."""
        key = model_key(model)
        size = self.estimate(model)
        with self._cond:
            pinned_bytes = sum(self._size_of(k) for k in self._pinned if k != key)
            if pinned_bytes + size > self.budget_bytes:
                raise MemoryBudgetError(
                    f"cannot pin {model.name}: it needs {_mb(size)} and the pinned models already take "
                    f"{_mb(pinned_bytes)} of the {_mb(self.budget_bytes)} budget"
                )
            self._pinned.add(key)
        with self.lease(model):
            pass

    @contextlib.contextmanager
    def lease(self, model: ModelSpec, cancel: CancelToken | None = None) -> Iterator[None]:
        """Make `model` resident (loading and evicting as needed) and keep it so until the block exits."""
        key = model_key(model)
        self._acquire(key, model, cancel)
        try:
            yield
        finally:
            with self._cond:
                entry = self._resident.get(key)
                if entry is not None:
                    entry.leases -= 1
                self._cond.notify_all()

    def unload_idle(self) -> int:
        """Evict every idle unpinned model (e.g. when the editor goes quiet); returns how many were unloaded."""
        with self._cond:
            victims = [r.spec for k, r in self._resident.items() if r.leases == 0 and k not in self._pinned]
            for spec in victims:
                self._unload(model_key(spec))
            return len(victims)

    def _size_of(self, key: str) -> int:
        entry = self._resident.get(key)
        return entry.bytes if entry is not None else self._estimates.get(key, 0)

    def _acquire(self, key: str, model: ModelSpec, cancel: CancelToken | None) -> None:
        size = self.estimate(model)
        with self._cond:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("the call was cancelled while waiting for memory to load its model")
                entry = self._resident.get(key)
                if entry is not None:
                    entry.leases += 1
                    self._resident.move_to_end(key)
                    return
                if self.engine.is_loaded(model):  # loaded behind the pool's back: account for it from now on
                    self._resident[key] = _Resident(model, size)
                    continue
                pinned_bytes = sum(self._size_of(k) for k in self._pinned if k != key)
                if pinned_bytes + size > self.budget_bytes:
                    raise MemoryBudgetError(
                        f"model {model.name} needs {_mb(size)} but only {_mb(self.budget_bytes - pinned_bytes)} of "
                        f"the {_mb(self.budget_bytes)} memory budget is left beside the pinned models; raise "
                        "engine.memory_budget_mb or use a smaller model/context"
                    )
                if self._make_room(size):
                    break
                # Everything evictable is busy: wait for a lease to end, then try again.
                self._cond.wait(_POLL_S)
            # Load while holding the lock: the accounting must not admit a second load into the same room.
            # Loading from mmap takes well under a second for the default models.
            try:
                self.engine.load(model)
            finally:
                self._cond.notify_all()
            self.stats.loads += 1
            entry = _Resident(model, size)
            entry.leases = 1
            self._resident[key] = entry

    def _make_room(self, size: int) -> bool:
        """Evict idle unpinned models, LRU first, until `size` more bytes fit; False if busy models block it."""
        used = sum(r.bytes for r in self._resident.values())
        if used + size <= self.budget_bytes:
            return True
        idle = [k for k, r in self._resident.items() if r.leases == 0 and k not in self._pinned]
        freeable = sum(self._resident[k].bytes for k in idle)
        if used - freeable + size > self.budget_bytes:
            return False  # evicting now would not be enough; keep the idle ones until it is
        for key in idle:
            if used + size <= self.budget_bytes:
                break
            used -= self._resident[key].bytes
            self._unload(key)
            self.stats.evictions += 1
        return True

    def _unload(self, key: str) -> None:
        entry = self._resident.pop(key)
        self.engine.unload(entry.spec)
        self.stats.unloads += 1


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


def budget_from_mb(megabytes: int) -> int:
    if megabytes <= 0:
        raise ValueError(f"engine.memory_budget_mb must be positive, got {megabytes}")
    return megabytes << 20
