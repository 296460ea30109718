"""The engine's CPU layout for adapters: a Q8_0 copy with the rank padded to 32 that computes what the file does."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from cra.pipeline.engine import AdapterSpec, LocalEngine, Message, ModelSpec
from cra.pipeline.engine.adapter_layout import cpu_layout, prune
from cra.training.synthetic import write_lora_for, write_tiny_model

Q8_0 = gguf.GGMLQuantizationType.Q8_0
TARGETS = ("q", "v", "up", "down")


def _tensors(path: Path) -> dict[str, gguf.ReaderTensor]:
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def _delta(tensors: dict[str, gguf.ReaderTensor], target: str) -> np.ndarray:
    """B·A of one projection, in float32 (numpy order: B is (out, r), A is (r, in))."""
    a, b = tensors[f"{target}.lora_a"], tensors[f"{target}.lora_b"]
    return gguf.quants.dequantize(b.data, b.tensor_type) @ gguf.quants.dequantize(a.data, a.tensor_type)


def _alpha(path: Path) -> float:
    return float(gguf.GGUFReader(str(path)).fields["adapter.lora.alpha"].contents())


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_layout_is_q8_0_padded_to_32_with_the_same_product(tiny_model_path: Path, tmp_path: Path, dtype: str) -> None:
    source = write_lora_for(tiny_model_path, tmp_path / "a.gguf", rank=4, targets=TARGETS, alpha=8.0, dtype=dtype)
    copy = cpu_layout(source, tmp_path / "cache")
    assert copy != source and copy.parent == tmp_path / "cache"
    original, laid_out = _tensors(source), _tensors(copy)
    assert original.keys() == laid_out.keys()
    assert {t.tensor_type for t in laid_out.values()} == {Q8_0}
    for name, tensor in laid_out.items():
        before = [int(n) for n in original[name].shape]
        # ggml order: lora_a (in, r) and lora_b (r, out): the rank axis grows from 4 to 32, nothing else changes.
        expected = [before[0], 32] if name.endswith(".lora_a") else [32, before[1]]
        assert [int(n) for n in tensor.shape] == expected
    # alpha / rank is llama.cpp's scale: it must not move.
    assert _alpha(copy) / 32 == pytest.approx(_alpha(source) / 4)
    for target in {name.rsplit(".", 1)[0] for name in original}:
        exact, approx = _delta(original, target), _delta(laid_out, target)
        assert np.abs(approx - exact).max() <= 0.02 * np.abs(exact).max()


def test_layout_is_cached_and_a_laid_out_file_is_kept(tiny_model_path: Path, tmp_path: Path) -> None:
    source = write_lora_for(tiny_model_path, tmp_path / "a.gguf", rank=4, targets=TARGETS)
    copy = cpu_layout(source, tmp_path / "cache")
    inode = copy.stat().st_ino
    assert cpu_layout(source, tmp_path / "cache") == copy and copy.stat().st_ino == inode  # not written again
    assert cpu_layout(copy, tmp_path / "cache") == copy  # already Q8_0: no copy of the copy
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_files_the_layout_cannot_represent_load_as_they_are(tmp_path: Path) -> None:
    # An input width of 48 is not a whole number of Q8_0 blocks.
    narrow = write_tiny_model(tmp_path / "narrow.gguf", n_embd=48, n_ff=96, n_head=4)
    source = write_lora_for(narrow, tmp_path / "n.gguf", rank=4, targets=("q", "v"))
    assert cpu_layout(source, tmp_path / "cache") == source
    assert not (tmp_path / "cache").exists()


def _yes_probability(engine: LocalEngine, model: ModelSpec, adapters: tuple[AdapterSpec, ...]) -> float:
    messages = [Message(role="user", content="Is the sky green? Answer yes or no.")]
    return engine.decide(model, adapters, messages, ("yes", "no")).probs["yes"]


def _layout_engine_decides_exactly_like_the_file(model: ModelSpec, adapter: AdapterSpec, cache: Path) -> bool:
    """Whether an engine with the CPU layout (copies in `cache`) gives the same decision as one loading the file:
    true exactly when it ended up loading the file itself."""
    exact_engine = LocalEngine(adapter_layout="as-is")
    engine = LocalEngine(adapter_cache=cache)
    try:
        return _yes_probability(engine, model, (adapter,)) == _yes_probability(exact_engine, model, (adapter,))
    finally:
        engine.close()
        exact_engine.close()


def test_engine_with_the_layout_decides_like_the_original_file(tiny: ModelSpec, tiny_model_path: Path,
                                                               tmp_path: Path) -> None:
    source = write_lora_for(tiny_model_path, tmp_path / "a.gguf", rank=4, targets=TARGETS, scale_init=2.0)
    adapter = (AdapterSpec(name="a", path=str(source)),)
    exact_engine = LocalEngine(adapter_layout="as-is")
    fast_engine = LocalEngine(adapter_layout="cpu", adapter_cache=tmp_path / "cache")
    try:
        base = _yes_probability(exact_engine, tiny, ())
        exact = _yes_probability(exact_engine, tiny, adapter)
        fast = _yes_probability(fast_engine, tiny, adapter)
    finally:
        exact_engine.close()
        fast_engine.close()
    assert list((tmp_path / "cache").iterdir())  # the fast engine loaded the copy
    assert abs(exact - base) > 0.01  # the adapter matters here...
    assert abs(fast - exact) < 0.1 * abs(exact - base)  # ...and the copy does what the file does


def test_engine_loads_the_original_when_the_copy_cannot_be_written(tiny: ModelSpec, lora_a: AdapterSpec,
                                                                   tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    assert _layout_engine_decides_exactly_like_the_file(tiny, lora_a, blocked / "cache")


def test_unknown_layout_is_rejected() -> None:
    with pytest.raises(ValueError, match="adapter_layout must be one of cpu, as-is"):
        LocalEngine(adapter_layout="q4")


def test_cache_drops_the_least_recently_used_copies_beyond_its_limit(tiny_model_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copies = []
    for seed in range(3):
        source = write_lora_for(tiny_model_path, tmp_path / f"{seed}.gguf", rank=4, targets=TARGETS, seed=seed)
        copies.append(cpu_layout(source, cache))
        os.utime(copies[-1], (1000 + seed, 1000 + seed))  # made in this order, a second apart
    size = copies[0].stat().st_size
    os.utime(copies[0])  # the oldest copy was just used again
    assert prune(cache, keep=copies[2], limit=2 * size) == [copies[1]]
    assert prune(cache, keep=copies[2], limit=0) == [copies[0]]  # never the copy about to be loaded
    assert sorted(cache.iterdir()) == [copies[2]]


def test_a_damaged_cached_copy_is_replaced_by_the_original(tiny: ModelSpec, lora_a: AdapterSpec,
                                                           tmp_path: Path) -> None:
    copy = cpu_layout(lora_a.path, tmp_path / "cache")
    copy.write_bytes(copy.read_bytes()[:200])  # truncated, e.g. by a full disk or a crash outside cra
    assert _layout_engine_decides_exactly_like_the_file(tiny, lora_a, tmp_path / "cache")
    assert not copy.exists()  # dropped: the next load writes a sound copy


def test_non_finite_weights_load_as_they_are(tiny_model_path: Path, tmp_path: Path) -> None:
    source = write_lora_for(tiny_model_path, tmp_path / "a.gguf", rank=4, targets=("q", "v"))
    reader = gguf.GGUFReader(str(source), "r+")  # writable memory map: poke one weight in place
    reader.tensors[0].data.reshape(-1)[0] = np.inf
    del reader
    assert cpu_layout(source, tmp_path / "cache") == source
    assert not list((tmp_path / "cache").glob("*.gguf"))
