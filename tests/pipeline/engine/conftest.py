"""Engine test fixtures: fresh engines and model specs over the generated GGUFs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cra.pipeline.engine import AdapterSpec, LocalEngine, ModelSpec
from cra.training.synthetic import write_tiny_model


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    eng = LocalEngine(prefill_chunk=32)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def tiny(tiny_model_path: Path) -> ModelSpec:
    return ModelSpec(name="tiny", path=str(tiny_model_path), n_ctx=512, n_threads=1)


@pytest.fixture(scope="session")
def lora_a(tiny_adapter_path: Path) -> AdapterSpec:
    return AdapterSpec(name="a", path=str(tiny_adapter_path))


@pytest.fixture(scope="session")
def lora_b(tiny_adapter2_path: Path) -> AdapterSpec:
    return AdapterSpec(name="b", path=str(tiny_adapter2_path))


@pytest.fixture(scope="session")
def medium(gguf_dir: Path) -> ModelSpec:
    """A wider random model whose long prefill takes long enough (~1 s) to be cancelled from another thread."""
    path = write_tiny_model(gguf_dir / "medium.gguf", seed=5, n_embd=256, n_layer=4, n_ff=768, n_ctx=2048)
    return ModelSpec(name="medium", path=str(path), n_ctx=2048, n_threads=1)
