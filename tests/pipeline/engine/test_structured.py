"""Grammar-constrained structured output always decodes into its Struct."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec
import pytest

from cra.pipeline.engine import GenParams, LocalEngine, Message, ModelSpec, StructuredOutputError

Short = Annotated[str, msgspec.Meta(max_length=6)]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Flat(msgspec.Struct):
    name: Short
    count: int
    ok: bool


class Item(msgspec.Struct):
    kind: Literal["fn", "var", "type"]
    color: Color
    score: float


class Nested(msgspec.Struct):
    title: Short
    items: Annotated[list[Item], msgspec.Meta(max_length=3)]
    tags: Annotated[list[Short], msgspec.Meta(max_length=2)]
    parent: Flat | None = None


class Unbounded(msgspec.Struct):
    text: str
    more: list[str]


MSG = [Message(role="user", content="Answer in JSON.")]


@pytest.mark.parametrize("struct_type", [Flat, Item, Nested])
def test_structured_output_decodes_greedy_and_sampled(
    engine: LocalEngine, tiny: ModelSpec, struct_type: type[msgspec.Struct]
) -> None:
    for params in [GenParams(max_tokens=400)] + [
        GenParams(max_tokens=400, temperature=1.0, seed=s) for s in range(4)
    ]:
        value, gen = engine.structured(tiny, (), MSG, struct_type, params)
        assert isinstance(value, struct_type)
        assert gen.stats.finish_reason == "stop"
        assert msgspec.json.decode(gen.text.encode(), type=struct_type) == value


def test_budget_running_out_mid_json_is_a_clear_error(engine: LocalEngine, tiny: ModelSpec) -> None:
    with pytest.raises(StructuredOutputError, match="token budget \\(3\\) ran out") as info:
        engine.structured(tiny, (), MSG, Unbounded, GenParams(max_tokens=3))
    assert info.value.text.startswith("{")


def test_stop_sequences_do_not_break_json(engine: LocalEngine, tiny: ModelSpec) -> None:
    value, gen = engine.structured(tiny, (), MSG, Flat, GenParams(max_tokens=400, stop=['"', "{"]))
    assert isinstance(value, Flat)
    assert gen.text.startswith("{")
