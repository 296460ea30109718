"""StageLLM: the only way pipeline stages talk to a model. It routes each stage to its base model and adapter
(ModelRouter) and writes one call-log row per call — also when the call fails, times out or is cancelled. While a
`generate` or `structured` call decodes, `on_speed(stage, tokens_per_s)` hears its speed (at most every 0.5 s)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec

from cra.pipeline.calllog import CallLog, CallRecord, file_fingerprint
from cra.pipeline.engine import CallStats, Cancelled, CancelToken, Decision, Engine, Generation, Message, Timeout
from cra.pipeline.engine.meter import DecodeMeter, metering
from cra.pipeline.router import ModelRouter, Route

T = TypeVar("T")


SPEED_INTERVAL_S = 0.5  # how often `on_speed` hears a running generation's speed, at most


class StageLLM:
    def __init__(self, router: ModelRouter, engine: Engine, log: CallLog | None, *, task_id: str | None = None,
                 cancel: CancelToken | None = None,
                 on_speed: Callable[[str, float], None] | None = None) -> None:
        self.router = router
        self.engine = engine
        self.log = log
        self.task_id = task_id
        self.cancel = cancel or CancelToken()
        self.calls: list[tuple[str, CallStats]] = []  # per-stage stats of this task, for reports
        self._on_speed = on_speed
        self._stage = ""  # the stage whose call the meter is counting
        # One meter for the task's calls: reports stay at least SPEED_INTERVAL_S apart across calls too.
        self._meter = DecodeMeter(self._speed, interval_s=SPEED_INTERVAL_S) if on_speed is not None else None

    def _speed(self, tokens_per_s: float) -> None:
        if self._on_speed is not None:
            self._on_speed(self._stage, tokens_per_s)

    def _metered(self, stage: str) -> contextlib.AbstractContextManager[None]:
        self._stage = stage
        return metering(self._meter)

    def route(self, stage: str) -> Route:
        return self.router.route(stage)

    def count_tokens(self, stage: str, text: str) -> int:
        return int(self.engine.count_tokens(self.route(stage).model, text))

    def generate(self, stage: str, messages: Sequence[Message], *, max_tokens: int | None = None,
                 stop: list[str] | None = None, on_text: Callable[[str], None] | None = None) -> Generation:
        route = self.route(stage)
        params = route.params
        if max_tokens is not None or stop is not None:
            params = msgspec.structs.replace(params, max_tokens=max_tokens or params.max_tokens,
                                             stop=stop if stop is not None else params.stop)

        def call() -> tuple[str, CallStats, Generation]:
            with self._metered(stage):
                gen = self.engine.generate(route.model, route.adapters, list(messages), params, cancel=self.cancel,
                                           on_text=on_text)
            return gen.text, gen.stats, gen

        return self._logged(route, messages, None, call)

    def structured(self, stage: str, messages: Sequence[Message], struct_type: type[T]) -> T:
        route = self.route(stage)
        schema = msgspec.json.encode(msgspec.json.schema(struct_type)).decode()

        def call() -> tuple[str, CallStats, T]:
            with self._metered(stage):
                obj, gen = self.engine.structured(route.model, route.adapters, list(messages), struct_type,
                                                  route.params, cancel=self.cancel)
            return gen.text, gen.stats, obj

        return self._logged(route, messages, schema, call)

    def decide(self, stage: str, messages: Sequence[Message], labels: Sequence[str]) -> Decision:
        route = self.route(stage)

        def call() -> tuple[str, CallStats, Decision]:
            d = self.engine.decide(route.model, route.adapters, list(messages), list(labels), cancel=self.cancel,
                                  timeout_s=route.timeout_s)
            return d.label, d.stats, d

        return self._logged(route, messages, "labels: " + " | ".join(labels), call)

    def decide_batch(self, stage: str, prefix: Sequence[Message], questions: Sequence[str],
                     labels: Sequence[str] = ("yes", "no")) -> list[Decision]:
        """One batched engine call; one log row per question so each decision is a training pair."""
        if not questions:
            return []
        route = self.route(stage)
        started = time.time()
        error: str | None = None
        decisions: list[Decision] = []
        try:
            decisions = list(self.engine.decide_batch(route.model, route.adapters, list(prefix), list(questions),
                                                      labels=tuple(labels), cancel=self.cancel,
                                                      timeout_s=route.timeout_s))
            return decisions
        except Exception as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            raise
        finally:
            for i, question in enumerate(questions):
                d = decisions[i] if i < len(decisions) else None
                msgs = [*prefix, Message(role="user", content=question)]
                self._write(route, msgs, "labels: " + " | ".join(labels), d.label if d else None,
                            d.stats if d else None, error, started)

    # -- logging ---------------------------------------------------------------------------------------------------
    def _logged(self, route: Route, messages: Sequence[Message], grammar: str | None,
                call: Callable[[], tuple[str, CallStats, T]]) -> T:
        started = time.time()
        try:
            text, stats, value = call()
        except Exception as exc:
            self._write(route, messages, grammar, None, None, f"{exc.__class__.__name__}: {exc}", started,
                        cancelled=isinstance(exc, Cancelled), timed_out=isinstance(exc, Timeout))
            raise
        self._write(route, messages, grammar, text, stats, None, started)
        return value

    def _write(self, route: Route, messages: Sequence[Message], grammar: str | None, response: str | None,
               stats: CallStats | None, error: str | None, started: float, *, cancelled: bool = False,
               timed_out: bool = False) -> None:
        if stats is not None:
            self.calls.append((route.stage, stats))
        if self.log is None:
            return
        adapter = route.adapters[0] if route.adapters else None
        finish = stats.finish_reason if stats else ("cancelled" if cancelled else "timeout" if timed_out else "error")
        self.log.log_call(CallRecord(
            task_id=self.task_id, stage=route.stage, role=route.role, model_name=route.model.name,
            model_hash=route.model_sha256 or _fingerprint(route.model.path),
            adapter_name=adapter.name if adapter else None,
            adapter_hash=_fingerprint(adapter.path) if adapter else None,
            messages=[{"role": m.role, "content": m.content} for m in messages], response=response,
            grammar=grammar, tokens_in=stats.tokens_in if stats else None,
            tokens_out=stats.tokens_out if stats else None, cached_tokens=stats.cached_tokens if stats else None,
            prefill_s=stats.prefill_s if stats else None, decode_s=stats.decode_s if stats else None,
            ttft_s=stats.ttft_s if stats else None, finish_reason=finish, error=error,
            cancelled=cancelled, started_at=started, duration_s=time.time() - started))


def _fingerprint(path: str) -> str | None:
    try:
        return file_fingerprint(Path(path))
    except OSError:
        return None
