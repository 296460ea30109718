"""Fixtures for the language-server tests: a real `python -m server` subprocess driven by pytest-lsp."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_support import STUB_SOURCE

from cra.training.synthetic import write_tiny_model


@pytest.fixture()
def c_workspace(tmp_path: Path) -> Path:
    (tmp_path / "math.c").write_text(STUB_SOURCE)
    return tmp_path


@pytest.fixture(scope="session")
def slow_model_path(gguf_dir: Path) -> Path:
    """A wider random model (D=512) with a 4096-token context: greedy decoding of its gibberish runs into the
    token limit, so an action on it stays busy in the engine for seconds (what the cancel tests need)."""
    return write_tiny_model(gguf_dir / "slow.gguf", seed=0, n_embd=512, n_ff=2048, n_ctx=4096)
