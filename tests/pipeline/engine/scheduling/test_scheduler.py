"""Scheduler: FIFO per-model queues, one call at a time per llama context, timeouts → Timeout, engine usable after."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from cra.pipeline.engine import Cancelled, CancelToken, GenParams, LocalEngine, Message, ModelSpec, Timeout
from cra.pipeline.engine.pool import ModelPool, estimate_model_bytes
from cra.pipeline.engine.scheduler import ModelPolicy, QueueFull, Scheduler

# Long enough to be interrupted; no stop sequences, and the tiny model's n_ctx (512) bounds it.
LONG = GenParams(max_tokens=300)
SHORT = GenParams(max_tokens=8)


def slow_reader(delay: float) -> Callable[[str], None]:
    """A streaming consumer that takes `delay` per piece, as a slow editor client would: makes a call last."""
    return lambda _text: time.sleep(delay)


def wait_until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def sched(engine: LocalEngine, three_models: tuple[ModelSpec, ...]) -> Scheduler:
    pool = ModelPool(engine, budget_bytes=estimate_model_bytes(three_models[0]) * 10, pinned=[three_models[0]])
    return Scheduler(engine, pool=pool)


def test_calls_on_one_model_run_one_at_a_time_in_fifo_order(
    sched: Scheduler, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    model = three_models[1]
    intervals: dict[str, tuple[float, float]] = {}
    errors: list[BaseException] = []

    def call(name: str, params: GenParams, delay: float) -> None:
        first: list[float] = []

        def on_text(text: str) -> None:
            if not first:
                first.append(time.monotonic())
            time.sleep(delay)

        try:
            sched.generate(model, (), prompt, params, on_text=on_text)
            intervals[name] = (first[0] if first else time.monotonic(), time.monotonic())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=("head", LONG, 0.002))]
    threads[0].start()
    wait_until(lambda: sched.running(model) == 1)
    for i, name in enumerate(("second", "third", "fourth")):
        t = threading.Thread(target=call, args=(name, GenParams(max_tokens=40), 0.001))
        t.start()
        threads.append(t)
        wait_until(lambda i=i: sched.queued(model) == i + 1)
        assert sched.running(model) == 1, "a llama context serves one call at a time"
    for t in threads:
        t.join(20)
    assert not errors, errors
    order = sorted(intervals, key=lambda name: intervals[name][0])
    assert order == ["head", "second", "third", "fourth"]
    spans = [intervals[name] for name in order]
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "calls on one model must not overlap"
    assert sched.queued(model) == 0 and sched.running(model) == 0


def test_other_models_are_not_blocked_by_a_busy_one(
    sched: Scheduler, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    busy, other = three_models[1], three_models[2]
    done = threading.Event()
    t = threading.Thread(
        target=lambda: (sched.generate(busy, (), prompt, LONG, on_text=slow_reader(0.003)), done.set())
    )
    t.start()
    wait_until(lambda: sched.running(busy) == 1)
    sched.generate(other, (), prompt, SHORT)
    assert not done.is_set(), "the other model's call finished while the busy model was still generating"
    t.join(20)
    assert done.is_set()


def test_timeout_surfaces_as_timeout_and_engine_stays_usable(
    sched: Scheduler, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    model = three_models[1]
    before = sched.generate(model, (), prompt, SHORT).text
    started = time.monotonic()
    with pytest.raises(Timeout, match="timeout of 0.2 s") as info:
        sched.generate(model, (), prompt, LONG, on_text=slow_reader(0.01), timeout_s=0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.45
    assert info.value.stats.finish_reason == "timeout"  # type: ignore[attr-defined]
    assert 0 < info.value.stats.tokens_out < LONG.max_tokens  # type: ignore[attr-defined]
    assert sched.generate(model, (), prompt, SHORT).text == before, "the engine answers as before the timeout"
    assert sched.running(model) == 0


def test_model_default_timeout_applies_and_queue_time_counts(
    engine: LocalEngine, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    model = three_models[1]
    sched = Scheduler(engine, policies={model.name: ModelPolicy(default_timeout=0.15)})
    head_error: list[BaseException] = []

    def head() -> None:
        try:
            sched.generate(model, (), prompt, LONG, on_text=slow_reader(0.003), timeout_s=30)
        except BaseException as exc:
            head_error.append(exc)

    t = threading.Thread(target=head)
    t.start()
    wait_until(lambda: sched.running(model) == 1)
    started = time.monotonic()
    with pytest.raises(Timeout, match="timeout of 0.15 s"):
        sched.decide(model, (), prompt, ["yes", "no"])  # waits behind the head call past its default timeout
    assert time.monotonic() - started < 0.4
    assert sched.queued(model) == 0, "a timed-out waiter leaves the queue"
    t.join(20)
    assert not head_error
    decision = sched.decide(model, (), prompt, ["yes", "no"])
    assert decision.label in ("yes", "no")


def test_caller_cancel_is_cancelled_not_timeout(
    sched: Scheduler, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    model = three_models[1]
    token = CancelToken()
    threading.Timer(0.1, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled) as info:
        sched.generate(model, (), prompt, LONG, cancel=token, on_text=slow_reader(0.01), timeout_s=10)
    assert not isinstance(info.value, Timeout)
    assert time.monotonic() - started < 0.4


def test_full_queue_rejects_at_once(
    engine: LocalEngine, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    model = three_models[1]
    sched = Scheduler(engine, default_policy=ModelPolicy(max_queue=1))
    threads = [
        threading.Thread(target=sched.generate, args=(model, (), prompt, LONG), kwargs={"on_text": slow_reader(0.002)}),
        threading.Thread(target=sched.generate, args=(model, (), prompt, SHORT)),
    ]
    threads[0].start()
    wait_until(lambda: sched.running(model) == 1)
    threads[1].start()
    wait_until(lambda: sched.queued(model) == 1)
    with pytest.raises(QueueFull, match="max_queue 1"):
        sched.generate(model, (), prompt, SHORT)
    for t in threads:
        t.join(20)


def test_in_process_engine_rejects_concurrency_above_one(engine: LocalEngine) -> None:
    pool = ModelPool(engine, budget_bytes=1 << 30)
    with pytest.raises(ValueError, match="one call at a time"):
        Scheduler(engine, pool=pool, default_policy=ModelPolicy(max_concurrency=2))
    with pytest.raises(ValueError, match="max_concurrency must be >= 1"):
        ModelPolicy(max_concurrency=0)


def test_decide_batch_and_count_tokens_go_through(
    sched: Scheduler, engine: LocalEngine, three_models: tuple[ModelSpec, ...], prompt: list[Message]
) -> None:
    model = three_models[2]
    got = sched.decide_batch(model, (), prompt, ["is it C?", "is it fast?"])
    direct = [engine.decide(model, (), [*prompt, Message(role="user", content=q)], ["yes", "no"])
              for q in ("is it C?", "is it fast?")]
    assert [d.label for d in got] == [d.label for d in direct]
    assert sched.count_tokens(model, "hello world") == engine.count_tokens(model, "hello world")
