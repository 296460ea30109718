"""Cancellation and timeouts: quick to take effect, mid-prefill and mid-decode, engine consistent afterwards."""

from __future__ import annotations

import threading
import time

import pytest

from cra.pipeline.engine import Cancelled, CancelToken, GenParams, LocalEngine, Message, ModelSpec, Timeout

SYSTEM = Message(role="system", content="You write C.")


class CancelAfterPolls(CancelToken):
    """A real CancelToken that cancels itself at its n-th poll: makes 'cancel mid-prefill' deterministic."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.remaining = polls

    @property
    def cancelled(self) -> bool:
        if not super().cancelled:
            self.remaining -= 1
            if self.remaining <= 0:
                self.cancel()
        return super().cancelled


def _long_messages(n: int) -> list[Message]:
    body = " ".join(f"int f{i}(int x) {{ return x + {i}; }}" for i in range(n))
    return [SYSTEM, Message(role="user", content=body)]


def _fresh_text(spec: ModelSpec, messages: list[Message], params: GenParams) -> str:
    eng = LocalEngine(prefill_chunk=32)
    try:
        return eng.generate(spec, (), messages, params).text
    finally:
        eng.close()


def test_cancel_mid_prefill_keeps_engine_consistent(engine: LocalEngine, tiny: ModelSpec) -> None:
    messages = _long_messages(10)
    params = GenParams(max_tokens=10)
    # Count the polls a full prefill makes (on another engine), then cancel half-way through it.
    counter = CancelAfterPolls(10**9)
    other = LocalEngine(prefill_chunk=32)
    other.decide(tiny, (), messages, ("yes", "no"), cancel=counter)
    other.close()
    token = CancelAfterPolls((10**9 - counter.remaining) // 2)
    with pytest.raises(Cancelled):
        engine.generate(tiny, (), messages, params, cancel=token)
    prompt_len = len(engine.tokenize(tiny, engine.render(tiny, messages), special=True))
    # Part of the prompt was evaluated; nothing half-evaluated is left behind.
    gen = engine.generate(tiny, (), messages, params)
    assert 0 < gen.stats.cached_tokens < prompt_len - 1
    assert gen.text == _fresh_text(tiny, messages, params)


def test_cancel_mid_decode_from_stream_callback(engine: LocalEngine, tiny: ModelSpec) -> None:
    messages = [SYSTEM, Message(role="user", content="go")]
    params = GenParams(max_tokens=60)
    token = CancelToken()
    seen: list[str] = []

    def on_text(chunk: str) -> None:
        seen.append(chunk)
        if len(seen) == 3:
            token.cancel()

    with pytest.raises(Cancelled) as info:
        engine.generate(tiny, (), messages, params, cancel=token, on_text=on_text)
    assert info.value.stats.finish_reason == "cancelled"  # type: ignore[attr-defined]
    assert 3 <= info.value.stats.tokens_out < 60  # type: ignore[attr-defined]
    assert engine.generate(tiny, (), messages, params).text == _fresh_text(tiny, messages, params)


def test_already_cancelled_token_runs_nothing(engine: LocalEngine, tiny: ModelSpec) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.decide(tiny, (), [SYSTEM], ("yes", "no"), cancel=token)
    assert engine.stats.calls == 0


def test_cancel_from_another_thread_is_fast(medium: ModelSpec) -> None:
    engine = LocalEngine(prefill_chunk=512)  # big batches: the abort callback must interrupt inside one
    messages = _long_messages(50)
    engine.load(medium)
    token = CancelToken()
    cancelled_at: list[float] = []

    def cancel_soon() -> None:
        time.sleep(0.15)
        cancelled_at.append(time.monotonic())
        token.cancel()

    threading.Thread(target=cancel_soon).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        engine.generate(medium, (), messages, GenParams(max_tokens=200), cancel=token)
    done = time.monotonic()
    assert cancelled_at, "the call finished before it could be cancelled: the test prompt is too short"
    assert done - cancelled_at[0] < 0.2
    assert done - start < 1.0
    after = engine.generate(medium, (), messages[:1] + [Message(role="user", content="hi")], GenParams(max_tokens=5))
    fresh = _fresh_text(medium, messages[:1] + [Message(role="user", content="hi")], GenParams(max_tokens=5))
    assert after.text == fresh
    engine.close()


def test_timeout(medium: ModelSpec) -> None:
    engine = LocalEngine(prefill_chunk=512)
    engine.load(medium)
    start = time.monotonic()
    with pytest.raises(Timeout, match="timeout of 0.1 s"):
        engine.generate(medium, (), _long_messages(50), GenParams(max_tokens=200, timeout_s=0.1))
    assert time.monotonic() - start < 0.3
    with pytest.raises(Timeout):
        engine.decide(medium, (), _long_messages(50), ("yes", "no"), timeout_s=0.05)
    engine.close()
