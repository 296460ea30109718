"""Data crossing the engine boundary (msgspec Structs)."""

from __future__ import annotations

from typing import Literal

import msgspec

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
