"""Data crossing the engine boundary (msgspec Structs) and the `Engine` protocol every engine implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, TypeVar, runtime_checkable

import msgspec

from .cancel import CancelToken

T = TypeVar("T")

FinishReason = Literal["stop", "length", "cancelled", "timeout", "error"]


class ModelSpec(msgspec.Struct, frozen=True):
    """A base model to load. Models are keyed by `path`: two specs with the same path share one loaded model."""

    name: str
    path: str
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None


class AdapterSpec(msgspec.Struct, frozen=True):
    """A LoRA adapter for one base model, applied with `scale`."""

    name: str
    path: str
    scale: float = 1.0


class Message(msgspec.Struct):
    role: str
    content: str


class GenParams(msgspec.Struct):
    max_tokens: int = 256
    temperature: float = 0.0
    stop: list[str] = msgspec.field(default_factory=list)
    seed: int = 0
    timeout_s: float | None = None


class CallStats(msgspec.Struct):
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    ttft_s: float = 0.0
    finish_reason: FinishReason = "stop"


class Generation(msgspec.Struct):
    text: str
    stats: CallStats


class Decision(msgspec.Struct):
    label: str
    prob: float
    probs: dict[str, float]
    stats: CallStats


class EngineStats(msgspec.Struct):
    """Counters over the engine's lifetime (residency and reuse behaviour is observable through these)."""

    model_loads: int = 0
    model_unloads: int = 0
    adapter_loads: int = 0
    adapter_switches: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0


@runtime_checkable
class Engine(Protocol):
    """The calls every engine serves: `LocalEngine` (in-process llama.cpp), `RemoteEngine` (an OpenAI-compatible
    server) and `Scheduler` (queues, timeouts and model residency in front of either).

    Common arguments:

    - `model`: the base model; `adapters`: the LoRA adapters applied for this call, in order (empty = the base).
    - `cancel`: a `CancelToken`; once it is cancelled the call raises `Cancelled` within 200 ms and the engine stays
      usable.
    - `timeout_s`: a deadline for this call, in seconds; past it the call raises `Timeout`. For `generate` and
      `structured` it takes precedence over `params.timeout_s`. A `Cancelled` or `Timeout` raised by `generate`
      carries `.stats` (CallStats with finish_reason "cancelled"/"timeout") and `.partial_text`.

    Failures are `EngineError` subclasses (errors.py), each naming its cause.
    """

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
        """Chat completion of `messages`: sampling (greedy at temperature 0), stop sequences (the text ends before
        the first one), the text streamed through `on_text` as it is decoded."""
        ...

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
        """JSON constrained to `struct_type`'s schema, decoded into it. Stop sequences are ignored (the grammar ends
        the output). `StructuredOutputError` when the token budget runs out first or the JSON fails validation."""
        ...

    def decide(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        labels: Sequence[str],
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> Decision:
        """Pick one of `labels` (distinct, non-empty, at least two) from the model's next-token distribution after
        `messages`: `probs` over the labels sum to 1, `label` is the most likely. No text is generated."""
        ...

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
        """Many decisions sharing a prefix, one per question (in order): each equals `decide(prefix_messages +
        [user question], labels)`. `timeout_s` bounds the whole batch. No questions: an empty list."""
        ...

    def count_tokens(self, model: ModelSpec, text: str) -> int:
        """Tokens `text` takes in `model`'s vocabulary (no special tokens, no BOS)."""
        ...
