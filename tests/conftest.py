"""Shared pytest fixtures: tiny generated GGUF models/adapters and the optional real default model."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cra.training.synthetic import write_lora_for, write_lora_for_other_base, write_tiny_model


@pytest.fixture(scope="session", autouse=True)
def adapter_layout_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The engine's adapter copies (CPU layout) go to a session directory, not the user's cache; set in the
    environment so that servers the tests start use it too."""
    path = tmp_path_factory.mktemp("adapter-layout")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRA_ADAPTER_CACHE", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def sandbox_caches() -> Iterator[Path]:
    """Persistent build copies and baseline test reports go to a throwaway folder (one the unprivileged sandbox
    user can enter), not the user's cache; set in the environment so that servers and CLIs the tests start use it."""
    path = Path(tempfile.mkdtemp(prefix="cra-test-caches-"))
    os.chmod(path, 0o711)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRA_BUILD_CACHE", str(path / "builds"))
        patch.setenv("CRA_BASELINE_CACHE", str(path / "baselines"))
        yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def tiny_model_path(gguf_dir: Path) -> Path:
    """A random-weight llama-architecture model (D=64, 2 blocks) with a ChatML template."""
    return write_tiny_model(gguf_dir / "tiny.gguf", seed=0)


@pytest.fixture(scope="session")
def long_tiny_model(gguf_dir: Path) -> Path:
    """The tiny model (same generator and seed) with a context long enough for a pipeline stage's prompt plus its
    assembled context and a grammar-bounded answer; `tiny_model_path`'s 512 tokens are too few for that."""
    return write_tiny_model(gguf_dir / "tiny-8k.gguf", seed=0, n_ctx=8192)


@pytest.fixture(scope="session")
def tiny_adapter_path(gguf_dir: Path, tiny_model_path: Path) -> Path:
    """Rank-4 LoRA on attn_q/attn_v of the tiny model."""
    return write_lora_for(tiny_model_path, gguf_dir / "tiny-lora-a.gguf", rank=4, seed=1)


@pytest.fixture(scope="session")
def tiny_adapter2_path(gguf_dir: Path, tiny_model_path: Path) -> Path:
    """A second, different LoRA for the tiny model (other seed, other projections)."""
    return write_lora_for(
        tiny_model_path, gguf_dir / "tiny-lora-b.gguf", rank=8, seed=2, targets=("attn_k", "attn_output", "ffn_up")
    )


@pytest.fixture(scope="session")
def wrong_base_adapter_path(gguf_dir: Path) -> Path:
    """A LoRA built for a tiny model of another width (D=32): it does not fit `tiny_model_path`."""
    return write_lora_for_other_base(gguf_dir / "wrong-base-lora.gguf")


@pytest.fixture(scope="session")
def real_model_0_5b() -> Path:
    """The real default 0.5B model: CRA_TEST_MODEL_0_5B, else the one `cra models install` assembled; skips the
    test when neither is there (`make test` installs it)."""
    from cra.pipeline.models.registry import find_installed

    value = os.environ.get("CRA_TEST_MODEL_0_5B")
    installed = find_installed("qwen2.5-coder-0.5b")
    if not value and installed is None:
        pytest.skip("the real 0.5B model is not installed (run: cra models install qwen2.5-coder-0.5b)")
    path = Path(value) if value else installed
    if not path.is_file():
        pytest.skip(f"CRA_TEST_MODEL_0_5B points to a missing file: {path}")
    return path
