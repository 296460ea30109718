"""The engine on the real default 0.5B model (skipped when CRA_TEST_MODEL_0_5B is unset)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import msgspec
import pytest

from cra.pipeline.engine import AdapterSpec, GenParams, LocalEngine, Message, ModelSpec
from cra.training.synthetic import write_lora_for

pytestmark = pytest.mark.real_model


class Verdict(msgspec.Struct):
    compiles: bool
    language: Literal["c", "python", "rust"]


@pytest.fixture(scope="module")
def real(real_model_0_5b: Path) -> ModelSpec:
    return ModelSpec(name="qwen-0.5b", path=str(real_model_0_5b), n_ctx=2048)


@pytest.fixture(scope="module")
def real_engine():
    eng = LocalEngine()
    yield eng
    eng.close()


def test_generate_structured_decide(real_engine: LocalEngine, real: ModelSpec) -> None:
    msgs = [
        Message(role="system", content="You are a C expert. Be brief."),
        Message(role="user", content="Write a C function `int add(int a, int b)` that returns a + b."),
    ]
    gen = real_engine.generate(real, (), msgs, GenParams(max_tokens=60))
    assert "add" in gen.text and "return" in gen.text
    value, _ = real_engine.structured(
        real, (), [Message(role="user", content="Classify: `int main(void) { return 0; }`. Answer in JSON.")],
        Verdict, GenParams(max_tokens=40),
    )
    assert value.language == "c"
    d = real_engine.decide(real, (), [Message(role="user", content="Is 7 a prime number? Answer yes or no.")],
                           ("yes", "no"))
    assert d.label == "yes" and math.isclose(sum(d.probs.values()), 1.0)


def test_rank16_synthetic_lora_loads_and_changes_output(
    real_engine: LocalEngine, real: ModelSpec, real_model_0_5b: Path, tmp_path: Path
) -> None:
    path = write_lora_for(
        real_model_0_5b, tmp_path / "r16.gguf", rank=16,
        targets=("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"), alpha=16.0,
    )
    lora = AdapterSpec(name="r16", path=str(path))
    msgs = [Message(role="user", content="Name a C keyword.")]
    params = GenParams(max_tokens=12)
    base = real_engine.generate(real, (), msgs, params).text
    tuned = real_engine.generate(real, (lora,), msgs, params).text
    assert tuned != base
    assert real_engine.generate(real, (), msgs, params).text == base
