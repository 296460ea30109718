"""The GGUF fixture factory produces files llama.cpp loads, and adapters that change the model's output."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from cra.pipeline.engine import AdapterSpec, GenParams, LocalEngine, Message, ModelSpec
from cra.training.synthetic import write_lora_for, write_tiny_model


def test_tiny_model_is_deterministic_from_seed(tmp_path: Path) -> None:
    a = write_tiny_model(tmp_path / "a.gguf", seed=7)
    b = write_tiny_model(tmp_path / "b.gguf", seed=7)
    c = write_tiny_model(tmp_path / "c.gguf", seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_tiny_model_metadata(tiny_model_path: Path) -> None:
    reader = gguf.GGUFReader(str(tiny_model_path))
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"} <= names
    assert reader.get_field("tokenizer.chat_template") is not None
    assert reader.get_field("tokenizer.ggml.merges") is not None


def test_lora_tensors_are_float_and_fit(tiny_model_path: Path, tmp_path: Path) -> None:
    path = write_lora_for(tiny_model_path, tmp_path / "l.gguf", rank=3, targets=("q", "ffn_down"))
    reader = gguf.GGUFReader(str(path))
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    types = {t.tensor_type for t in reader.tensors}
    assert types == {gguf.GGMLQuantizationType.F32}
    assert shapes["blk.0.attn_q.weight.lora_a"] == (64, 3)  # ggml order (in, r)
    assert shapes["blk.0.attn_q.weight.lora_b"] == (3, 64)
    assert shapes["blk.1.ffn_down.weight.lora_a"] == (128, 3)
    assert shapes["blk.1.ffn_down.weight.lora_b"] == (3, 64)
    assert "blk.0.attn_v.weight.lora_a" not in shapes


def test_lora_rejects_unknown_target(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown LoRA target"):
        write_lora_for(tiny_model_path, tmp_path / "x.gguf", targets=("attn_zz",))


def test_adapter_visibly_changes_greedy_output(
    engine: LocalEngine, tiny: ModelSpec, tiny_adapter_path: Path
) -> None:
    messages = [Message(role="user", content="hello there")]
    params = GenParams(max_tokens=24)
    base = engine.generate(tiny, (), messages, params)
    tuned = engine.generate(tiny, (AdapterSpec(name="a", path=str(tiny_adapter_path)),), messages, params)
    assert base.stats.tokens_out > 0
    assert base.text != tuned.text


def test_generated_model_loads_with_real_tokenizer(engine: LocalEngine, tiny: ModelSpec) -> None:
    tokens = engine.tokenize(tiny, "the cat in the hat")
    # merges fire: "Ġthe" and "in" are single tokens, so fewer tokens than bytes
    assert len(tokens) < len("the cat in the hat")
    assert engine.detokenize(tiny, tokens) == "the cat in the hat"
    special = engine.tokenize(tiny, "<|im_start|>user", special=True)
    assert len(special) == 1 + len(engine.tokenize(tiny, "user"))
    assert np.all(np.asarray(tokens) >= 0)


def test_f16_adapter_loads_and_changes_output(engine: LocalEngine, tiny: ModelSpec, tiny_model_path: Path,
                                              tmp_path: Path) -> None:
    path = write_lora_for(tiny_model_path, tmp_path / "h.gguf", rank=4, targets=("q", "v", "up"), dtype="f16")
    types = {t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
    assert types == {gguf.GGMLQuantizationType.F16}
    messages = [Message(role="user", content="hello there")]
    params = GenParams(max_tokens=24)
    base = engine.generate(tiny, (), messages, params)
    tuned = engine.generate(tiny, (AdapterSpec(name="h", path=str(path)),), messages, params)
    assert tuned.text != base.text
    assert engine.generate(tiny, (), messages, params).text == base.text


def test_lora_rejects_unknown_dtype(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown LoRA dtype"):
        write_lora_for(tiny_model_path, tmp_path / "x.gguf", dtype="q4_0")
