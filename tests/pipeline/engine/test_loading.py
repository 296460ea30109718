"""Model residency, adapter hot swap without reloads, and clear errors for bad model/adapter files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from cra.pipeline.engine import (
    AdapterMismatchError,
    AdapterSpec,
    GenParams,
    LocalEngine,
    Message,
    ModelLoadError,
    ModelSpec,
)

MSG = [Message(role="user", content="switch")]


def test_adapter_switches_never_reload_the_model(
    engine: LocalEngine, tiny: ModelSpec, lora_a: AdapterSpec, lora_b: AdapterSpec
) -> None:
    params = GenParams(max_tokens=4)
    for adapters in [(), (lora_a,), (lora_b,), (lora_a, lora_b), (), (lora_a,)]:
        engine.generate(tiny, adapters, MSG, params)
    assert engine.stats.model_loads == 1
    assert engine.stats.adapter_loads == 2
    assert engine.stats.adapter_switches == 5  # base → a → b → a+b → base → a (the first base call needs none)
    engine.generate(tiny, (lora_a,), MSG, params)
    assert engine.stats.adapter_switches == 5  # same set: nothing to switch


def test_same_path_shares_one_loaded_model(engine: LocalEngine, tiny: ModelSpec) -> None:
    alias = ModelSpec(name="alias", path=tiny.path, n_ctx=256)
    engine.count_tokens(tiny, "x")
    engine.count_tokens(alias, "x")
    assert engine.stats.model_loads == 1
    assert engine.loaded_models() == [str(Path(tiny.path).resolve())]
    assert engine.unload(alias)
    assert engine.loaded_models() == []


def test_clearing_adapter_restores_base_output_exactly(
    engine: LocalEngine, tiny: ModelSpec, lora_a: AdapterSpec
) -> None:
    params = GenParams(max_tokens=20)
    base = engine.generate(tiny, (), MSG, params).text
    tuned = engine.generate(tiny, (lora_a,), MSG, params).text
    again = engine.generate(tiny, (), MSG, params).text
    assert tuned != base
    assert again == base


def test_adapter_scale_is_part_of_the_call(engine: LocalEngine, tiny: ModelSpec, lora_a: AdapterSpec) -> None:
    params = GenParams(max_tokens=20)
    full = engine.generate(tiny, (lora_a,), MSG, params).text
    zero = engine.generate(tiny, (AdapterSpec(name="a0", path=lora_a.path, scale=0.0),), MSG, params).text
    base = engine.generate(tiny, (), MSG, params).text
    assert zero == base
    assert full != base


def test_wrong_base_adapter_is_rejected_clearly(
    engine: LocalEngine, tiny: ModelSpec, wrong_base_adapter_path: Path
) -> None:
    bad = AdapterSpec(name="wrong", path=str(wrong_base_adapter_path))
    before = engine.generate(tiny, (), MSG, GenParams(max_tokens=8)).text
    with pytest.raises(AdapterMismatchError, match="attn_q") as info:
        engine.generate(tiny, (bad,), MSG, GenParams(max_tokens=8))
    assert str(wrong_base_adapter_path) in str(info.value)
    assert engine.stats.adapter_loads == 0
    # The engine is still usable afterwards, and unchanged.
    assert engine.generate(tiny, (), MSG, GenParams(max_tokens=8)).text == before


def test_model_file_used_as_adapter_is_rejected(engine: LocalEngine, tiny: ModelSpec) -> None:
    with pytest.raises(AdapterMismatchError, match="expected a LoRA adapter GGUF, found a base model"):
        engine.load_adapter(tiny, AdapterSpec(name="m", path=tiny.path))


def test_missing_adapter_file(engine: LocalEngine, tiny: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(AdapterMismatchError, match="does not exist"):
        engine.load_adapter(tiny, AdapterSpec(name="m", path=str(tmp_path / "nope.gguf")))


def _load(engine: LocalEngine, path: Path) -> None:
    engine.load(ModelSpec(name="bad", path=str(path), n_ctx=128))


def test_missing_model_file(engine: LocalEngine, tmp_path: Path) -> None:
    path = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        _load(engine, path)
    assert str(path) in str(info.value)


def test_non_gguf_model_file(engine: LocalEngine, tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        _load(engine, path)


def test_truncated_model_file(engine: LocalEngine, tiny_model_path: Path, tmp_path: Path) -> None:
    data = tiny_model_path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 200):
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError, match="truncated|corrupt"):
            _load(engine, path)
    assert engine.stats.model_loads == 0


def test_corrupt_header_counts(engine: LocalEngine, tiny_model_path: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_model_path.read_bytes())
    # Claim an absurd number of tensors/metadata entries right after magic + version.
    data[8:16] = struct.pack("<Q", 2**40)
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="corrupt|truncated"):
        _load(engine, path)


def test_unsupported_gguf_version(engine: LocalEngine, tiny_model_path: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_model_path.read_bytes())
    data[4:8] = struct.pack("<I", 99)
    path = tmp_path / "v99.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="unsupported GGUF version 99"):
        _load(engine, path)


def test_adapter_file_used_as_model(engine: LocalEngine, tiny_adapter_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="expected a base model GGUF, found a LoRA adapter"):
        _load(engine, tiny_adapter_path)


def test_empty_and_directory_paths(engine: LocalEngine, tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="too small"):
        _load(engine, empty)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        _load(engine, tmp_path)
