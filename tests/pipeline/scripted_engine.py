"""A scripted engine for flow tests: the `Engine` protocol (generate, structured, decide, decide_batch,
count_tokens) answering from per-stage queues, recording every call. No model
is loaded, so a flow's success and failure paths run deterministically and fast.

Which stage a call is for: the engine's interface does not say (it gets a model, adapters and messages), so it
is read off the call the way the stage built it: a structured call's output type belongs to one stage module, and
every other call carries its stage's system instructions in its messages.

    engine = ScriptedEngine()
    engine.script("implement", "return a + b;")           # generate: the text (cut at the first stop sequence)
    engine.script("documentation", a9.FunctionDoc(...))   # structured: a Struct, a dict, or a JSON string
    engine.script("routing", "include", "exclude")        # decide/decide_batch: one label per question
    engine.script("implement", RuntimeError("boom"))      # an exception is raised
    engine.script("implement", lambda call: ...)          # a callable gets the call and returns the answer

A call whose stage has no answer left raises `ScriptExhausted`. When the call's cancel token is set (before the
answer, or by a callable answer), the call raises `Cancelled` as a real engine does.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any, Literal, TypeVar

import msgspec

from cra.pipeline.engine import (
    AdapterSpec,
    CallStats,
    Cancelled,
    CancelToken,
    Decision,
    Generation,
    GenParams,
    Message,
    ModelSpec,
    StructuredOutputError,
)

T = TypeVar("T")
Kind = Literal["generate", "structured", "decide", "decide_batch"]


class ScriptExhausted(Exception):
    """A stage was called more often than the test scripted it."""


@dataclass
class ScriptedCall:
    kind: Kind
    stage: str
    model: ModelSpec
    adapters: tuple[AdapterSpec, ...]
    messages: list[Message]
    params: GenParams | None = None
    struct_type: type | None = None
    labels: tuple[str, ...] = ()
    questions: list[str] = field(default_factory=list)
    answer: Any = None  # what the engine answered (text, Struct, labels)

    @property
    def prompt(self) -> str:
        return "\n".join(m.content for m in self.messages)


# ---- which stage a call is for -------------------------------------------------------------------------------
def _stage_modules() -> list[ModuleType]:
    import cra.pipeline.stages as stages

    return [importlib.import_module(f"{stages.__name__}.{info.name}") for info in pkgutil.iter_modules(stages.__path__)]


def _stage_name(module: ModuleType) -> str | None:
    name = getattr(module, "STAGE", None)
    spec = getattr(module, "SPEC", None)
    if name is None and spec is not None:
        name = getattr(spec, "name", None) or getattr(spec, "stage", None)
    return name if isinstance(name, str) else None


@cache
def _systems() -> tuple[tuple[str, str], ...]:
    """(system instructions, stage) for every stage module, longest instructions first."""
    found: list[tuple[str, str]] = []
    for module in _stage_modules():
        stage = _stage_name(module)
        if stage is None:
            continue
        spec = getattr(module, "SPEC", None)
        holders = [(module, a) for a in dir(module) if a.endswith("SYSTEM")]
        holders += [(spec, a) for a in dir(spec) if "system" in a.lower() and not a.startswith("_")] if spec else []
        for holder, attr in holders:
            text = getattr(holder, attr, None)
            if isinstance(text, str) and text.strip():
                found.append((text, stage))
    return tuple(sorted(found, key=lambda pair: -len(pair[0])))


def stage_of(messages: Sequence[Message], struct_type: type | None = None) -> str:
    if struct_type is not None and struct_type.__module__.startswith("cra.pipeline.stages."):
        stage = _stage_name(importlib.import_module(struct_type.__module__))
        if stage is not None:
            return stage
    text = "\n".join(m.content for m in messages)
    for system, stage in _systems():
        if system in text:
            return stage
    return "unknown"


# ---- the engine ------------------------------------------------------------------------------------------------
class ScriptedEngine:
    def __init__(self, *, tokens: Callable[[str], int] | None = None) -> None:
        self._answers: dict[str, deque[Any]] = {}
        self._always: dict[str, Any] = {}
        self._tokens = tokens or (lambda text: len(text) // 4 + 1)
        self.calls: list[ScriptedCall] = []
        self.token_counts = 0

    # -- scripting
    def script(self, stage: str, *answers: Any) -> ScriptedEngine:
        """Queue answers for `stage`, used in order, one per call (one per question for decide_batch)."""
        self._answers.setdefault(stage, deque()).extend(answers)
        return self

    def always(self, stage: str, answer: Any) -> ScriptedEngine:
        """The answer for `stage` whenever its queue is empty."""
        self._always[stage] = answer
        return self

    def stages(self) -> list[str]:
        """The stage of every call, in order."""
        return [c.stage for c in self.calls]

    def unused(self) -> dict[str, int]:
        """Stages with scripted answers nobody asked for."""
        return {stage: len(q) for stage, q in self._answers.items() if q}

    def _next(self, call: ScriptedCall) -> Any:
        queue = self._answers.get(call.stage)
        if queue:
            answer = queue.popleft()
        elif call.stage in self._always:
            answer = self._always[call.stage]
        else:
            raise ScriptExhausted(f"no scripted answer left for a {call.kind} call of stage {call.stage!r} "
                                  f"(calls so far: {self.stages()})")
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer) and not isinstance(answer, type):
            answer = answer(call)
            if isinstance(answer, BaseException):
                raise answer
        return answer

    def _call(self, kind: Kind, model: ModelSpec, adapters: Sequence[AdapterSpec], messages: Sequence[Message],
              cancel: CancelToken | None, **extra: Any) -> ScriptedCall:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled before the call")
        call = ScriptedCall(kind=kind, stage=stage_of(messages, extra.get("struct_type")), model=model,
                            adapters=tuple(adapters), messages=list(messages), **extra)
        self.calls.append(call)
        return call

    @staticmethod
    def _check(cancel: CancelToken | None) -> None:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled during the call")

    def _stats(self, messages: Sequence[Message], text: str, finish: str = "stop") -> CallStats:
        return CallStats(tokens_in=sum(self._tokens(m.content) for m in messages), tokens_out=self._tokens(text),
                         finish_reason=finish)  # type: ignore[arg-type]

    # -- the engine's interface
    def count_tokens(self, model: ModelSpec, text: str) -> int:
        self.token_counts += 1
        return self._tokens(text)

    def generate(self, model: ModelSpec, adapters: Sequence[AdapterSpec], messages: Sequence[Message],
                 params: GenParams | None = None, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None, timeout_s: float | None = None) -> Generation:
        params = params or GenParams()
        call = self._call("generate", model, adapters, messages, cancel, params=params)
        answer = self._next(call)
        self._check(cancel)
        if isinstance(answer, Generation):
            gen = answer
        else:
            text = str(answer)
            hits = [i for i in (text.find(s) for s in params.stop if s) if i >= 0]
            gen = Generation(text=text[:min(hits)] if hits else text, stats=self._stats(messages, text))
        if on_text is not None and gen.text:
            on_text(gen.text)
        call.answer = gen.text
        return gen

    def structured(self, model: ModelSpec, adapters: Sequence[AdapterSpec], messages: Sequence[Message],
                   struct_type: type[T], params: GenParams | None = None, cancel: CancelToken | None = None,
                   timeout_s: float | None = None) -> tuple[T, Generation]:
        call = self._call("structured", model, adapters, messages, cancel, params=params, struct_type=struct_type)
        answer = self._next(call)
        self._check(cancel)
        try:
            if isinstance(answer, (str, bytes)):
                value = msgspec.json.decode(answer, type=struct_type)
            elif isinstance(answer, struct_type):
                value = answer
            else:
                value = msgspec.convert(msgspec.to_builtins(answer), struct_type)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise StructuredOutputError(f"scripted answer is not a {struct_type.__name__}: {exc}",
                                        str(answer)) from exc
        text = msgspec.json.encode(value).decode()
        call.answer = value
        return value, Generation(text=text, stats=self._stats(messages, text))

    def decide(self, model: ModelSpec, adapters: Sequence[AdapterSpec], messages: Sequence[Message],
               labels: Sequence[str], cancel: CancelToken | None = None, timeout_s: float | None = None) -> Decision:
        call = self._call("decide", model, adapters, messages, cancel, labels=tuple(labels))
        decision = self._decision(self._next(call), tuple(labels), messages)
        self._check(cancel)
        call.answer = decision.label
        return decision

    def decide_batch(self, model: ModelSpec, adapters: Sequence[AdapterSpec], prefix_messages: Sequence[Message],
                     questions: Sequence[str], labels: Sequence[str] = ("yes", "no"),
                     cancel: CancelToken | None = None, timeout_s: float | None = None) -> list[Decision]:
        if not questions:
            return []
        call = self._call("decide_batch", model, adapters, prefix_messages, cancel, labels=tuple(labels),
                          questions=list(questions))
        decisions = [self._decision(self._next(call), tuple(labels), prefix_messages) for _ in questions]
        self._check(cancel)
        call.answer = [d.label for d in decisions]
        return decisions

    def _decision(self, answer: Any, labels: tuple[str, ...], messages: Sequence[Message]) -> Decision:
        if isinstance(answer, Decision):
            return answer
        label = str(answer)
        if label not in labels:
            raise ValueError(f"scripted label {label!r} is not one of {labels}")
        probs = {x: 1.0 if x == label else 0.0 for x in labels}
        return Decision(label=label, prob=1.0, probs=probs, stats=self._stats(messages, label))
