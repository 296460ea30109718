"""ModelPool: LRU eviction under a memory budget, the pinned model stays, evicted models reload on demand."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cra.pipeline.engine import Cancelled, CancelToken, GenParams, LocalEngine, Message, ModelLoadError, ModelSpec
from cra.pipeline.engine.pool import MemoryBudgetError, ModelPool, estimate_model_bytes, kv_cache_bytes, model_key
from cra.pipeline.engine.scheduler import Scheduler

PARAMS = GenParams(max_tokens=12)


def test_estimate_counts_file_and_kv_cache(three_models: tuple[ModelSpec, ...]) -> None:
    router = three_models[0]
    size = estimate_model_bytes(router)
    file_bytes = os.path.getsize(router.path)
    # tiny model: 2 layers, 4 KV heads of 16 dims, K and V at f16, 512 positions.
    assert size - file_bytes == 512 * 2 * 4 * (16 + 16) * 2
    # A longer context costs more KV, capped at the trained length (512 for the tiny model).
    assert kv_cache_bytes({"llama.block_count": 2, "llama.embedding_length": 64, "llama.attention.head_count": 4},
                          "llama", 1024) == 2 * kv_cache_bytes(
        {"llama.block_count": 2, "llama.embedding_length": 64, "llama.attention.head_count": 4}, "llama", 512)


def test_lru_unloading_keeps_pinned_and_reloads_on_demand(
    engine: LocalEngine, three_models: tuple[ModelSpec, ModelSpec, ModelSpec], prompt: list[Message]
) -> None:
    router, coder, reasoner = three_models
    per_model = estimate_model_bytes(coder)
    # Room for two tiny models, not three.
    pool = ModelPool(engine, budget_bytes=int(per_model * 2.5), pinned=[router])
    sched = Scheduler(engine, pool=pool)
    assert engine.is_loaded(router)

    first = sched.generate(coder, (), prompt, PARAMS).text
    assert pool.resident() == [model_key(router), model_key(coder)]
    sched.generate(router, (), prompt, PARAMS)  # router is now the most recent; coder is the LRU unpinned model
    sched.generate(reasoner, (), prompt, PARAMS)

    assert not engine.is_loaded(coder), "the least recently used unpinned model must be unloaded"
    assert engine.is_loaded(router) and engine.is_loaded(reasoner)
    assert pool.used_bytes <= pool.budget_bytes
    loads_before = engine.stats.model_loads

    again = sched.generate(coder, (), prompt, PARAMS).text
    assert engine.stats.model_loads == loads_before + 1, "the evicted model is reloaded on demand"
    assert again == first, "a reloaded model answers exactly as before"
    assert engine.is_loaded(router), "the pinned router model is never evicted"
    assert not engine.is_loaded(reasoner)
    assert pool.stats.evictions == 2


def test_model_too_big_for_budget_is_a_clear_error(
    engine: LocalEngine, three_models: tuple[ModelSpec, ModelSpec, ModelSpec]
) -> None:
    router, coder, _ = three_models
    per_model = estimate_model_bytes(coder)
    pool = ModelPool(engine, budget_bytes=int(per_model * 1.5), pinned=[router])
    with pytest.raises(MemoryBudgetError, match="coder needs .* MB"):
        with pool.lease(coder):
            pass
    assert pool.resident() == [model_key(router)]
    with pytest.raises(MemoryBudgetError, match="cannot pin"):
        pool.pin(coder)


def test_busy_model_is_not_evicted_until_its_call_ends(
    engine: LocalEngine, three_models: tuple[ModelSpec, ModelSpec, ModelSpec]
) -> None:
    router, coder, reasoner = three_models
    per_model = estimate_model_bytes(coder)
    pool = ModelPool(engine, budget_bytes=int(per_model * 2.5), pinned=[router])
    token = CancelToken()
    with pool.lease(coder):
        threading.Timer(0.15, token.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled, match="waiting for memory"):
            with pool.lease(reasoner, token):
                pass
        assert 0.1 <= time.monotonic() - started < 1.0
        assert engine.is_loaded(coder)

    got_in = threading.Event()

    def use_reasoner() -> None:
        with pool.lease(reasoner):
            got_in.set()

    with pool.lease(coder):
        worker = threading.Thread(target=use_reasoner)
        worker.start()
        assert not got_in.wait(0.2), "the lease must wait while the only evictable model is busy"
    worker.join(5)
    assert got_in.is_set()
    assert not engine.is_loaded(coder) and engine.is_loaded(reasoner)


def test_unload_idle_frees_everything_but_the_pinned(
    engine: LocalEngine, three_models: tuple[ModelSpec, ModelSpec, ModelSpec]
) -> None:
    router, coder, reasoner = three_models
    pool = ModelPool(engine, budget_bytes=estimate_model_bytes(coder) * 10, pinned=[router])
    for spec in (coder, reasoner):
        with pool.lease(spec):
            pass
    assert pool.unload_idle() == 2
    assert engine.loaded_models() == [model_key(router)]


def test_invalid_budget_and_missing_model_are_clear(engine: LocalEngine, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="budget must be positive"):
        ModelPool(engine, budget_bytes=0)
    pool = ModelPool(engine, budget_bytes=1 << 30)
    missing = ModelSpec(name="gone", path=str(tmp_path / "gone.gguf"))
    with pytest.raises(ModelLoadError, match="gone.gguf.*does not exist"):
        with pool.lease(missing):
            pass
    assert pool.resident() == []
