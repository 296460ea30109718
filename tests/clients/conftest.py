"""Fixtures for the client tests: a model slow enough that a run is still generating when it is interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.training.synthetic import write_tiny_model


@pytest.fixture(scope="session")
def slow_client_model(gguf_dir: Path) -> Path:
    """A wider random model (D=512) with a 4096-token context: greedy decoding of its gibberish runs into the
    token limit, so an action on it stays busy in the engine for seconds (the same model the server's cancel
    tests use, in a file of its own)."""
    return write_tiny_model(gguf_dir / "slow-client.gguf", seed=0, n_embd=512, n_ff=2048, n_ctx=4096)
