"""Fixtures for scheduling/pool tests: three distinct tiny models and a fresh in-process engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cra.pipeline.engine import LocalEngine, Message, ModelSpec
from cra.training.synthetic import write_tiny_model


@pytest.fixture(scope="session")
def three_models(gguf_dir: Path) -> tuple[ModelSpec, ModelSpec, ModelSpec]:
    """Three tiny models with different weights (seeds), so each one's output is its own."""
    specs = []
    for name, seed in (("router", 10), ("coder", 11), ("reasoner", 12)):
        path = write_tiny_model(gguf_dir / f"sched-{name}.gguf", seed=seed)
        specs.append(ModelSpec(name=name, path=str(path), n_ctx=512, n_threads=1))
    return specs[0], specs[1], specs[2]


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    eng = LocalEngine(prefill_chunk=64)
    yield eng
    eng.close()


@pytest.fixture
def prompt() -> list[Message]:
    return [Message(role="system", content="You write C."), Message(role="user", content="the sum of two ints")]


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path) -> ModelSpec:
    """The tiny model as the remote-engine tests name it (the servers serve it as `tiny`)."""
    return ModelSpec(name="tiny", path=str(tiny_model_path), n_ctx=512, n_threads=1)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEngine]:
    """An in-process engine the remote results are compared with: adapters as they are, the arithmetic the servers
    do (the CPU layout's Q8_0 copy would differ by its rounding)."""
    engine = LocalEngine(adapter_layout="as-is")
    yield engine
    engine.close()
