"""Prefix KV reuse: outputs with reuse are token-identical to a fresh engine's, across adapter switches."""

from __future__ import annotations

from cra.pipeline.engine import AdapterSpec, GenParams, LocalEngine, Message, ModelSpec

SYSTEM = Message(role="system", content="You are a C assistant. Context follows: int add(int a, int b);")


def _fresh(tiny: ModelSpec, adapters: tuple[AdapterSpec, ...], messages: list[Message], params: GenParams) -> str:
    eng = LocalEngine(prefill_chunk=32)
    try:
        return eng.generate(tiny, adapters, messages, params).text
    finally:
        eng.close()


def test_reuse_matches_fresh_engine_across_adapter_sequences(
    tiny: ModelSpec, lora_a: AdapterSpec, lora_b: AdapterSpec
) -> None:
    questions = ["Implement add.", "Document add.", "Implement add.", "Write tests for add, please, now."]
    plan = [
        ((), questions[0]),
        ((), questions[1]),  # shares the system prefix under the same (base) weights
        ((lora_a,), questions[1]),  # same tokens, other weights: nothing reusable
        ((lora_a,), questions[2]),
        ((lora_b,), questions[2]),
        ((lora_a, lora_b), questions[3]),
        ((), questions[0]),
        ((lora_a,), questions[3]),
    ]
    params = GenParams(max_tokens=12)
    engine = LocalEngine(prefill_chunk=32)
    cached = []
    for adapters, question in plan:
        messages = [SYSTEM, Message(role="user", content=question)]
        gen = engine.generate(tiny, adapters, messages, params)
        assert gen.text == _fresh(tiny, adapters, messages, params), (adapters, question)
        cached.append(gen.stats.cached_tokens)
    engine.close()
    assert cached[0] == 0
    assert cached[1] > 20  # the system prompt came from the cache
    assert cached[2] == 0  # adapter switch invalidates the cache
    assert cached[3] > 20
    assert cached[4] == 0 and cached[5] == 0 and cached[6] == 0 and cached[7] == 0


def test_reuse_after_generation_continues_conversation(tiny: ModelSpec) -> None:
    engine = LocalEngine(prefill_chunk=16)
    params = GenParams(max_tokens=10)
    first = [SYSTEM, Message(role="user", content="hi")]
    reply = engine.generate(tiny, (), first, params)
    follow = [*first, Message(role="assistant", content=reply.text), Message(role="user", content="more")]
    gen = engine.generate(tiny, (), follow, params)
    assert gen.text == _fresh(tiny, (), follow, params)
    assert gen.stats.cached_tokens >= reply.stats.tokens_in - 1
    engine.close()


def test_decisions_and_generation_share_cache_consistently(tiny: ModelSpec, lora_a: AdapterSpec) -> None:
    engine = LocalEngine(prefill_chunk=32)
    params = GenParams(max_tokens=8)
    msgs = [SYSTEM, Message(role="user", content="Is add pure?")]
    engine.decide_batch(tiny, (lora_a,), [SYSTEM], ["a?", "b?", "c?"], labels=("yes", "no"))
    engine.decide(tiny, (), msgs, ("yes", "no"))
    gen = engine.generate(tiny, (lora_a,), msgs, params)
    assert gen.text == _fresh(tiny, (lora_a,), msgs, params)
    engine.close()
