"""Concurrent calls on one engine serialize per model and give the same results as sequential calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cra.pipeline.engine import AdapterSpec, GenParams, LocalEngine, Message, ModelSpec


def test_concurrent_calls_match_sequential(tiny: ModelSpec, lora_a: AdapterSpec, lora_b: AdapterSpec) -> None:
    jobs = [
        (adapters, [Message(role="system", content="C helper."), Message(role="user", content=f"task {i}")])
        for i, adapters in enumerate([(), (lora_a,), (lora_b,), (), (lora_a,), (lora_a, lora_b)] * 2)
    ]
    params = GenParams(max_tokens=10)
    sequential = LocalEngine()
    expected = [sequential.generate(tiny, a, m, params).text for a, m in jobs]
    sequential.close()
    shared = LocalEngine()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: shared.generate(tiny, job[0], job[1], params).text, jobs))
    assert got == expected
    assert shared.stats.model_loads == 1
    assert shared.stats.adapter_loads == 2
    shared.close()
