"""Fixtures for sandbox tests: a throwaway sandbox dir and a helper that builds C programs inside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cra.pipeline.sandbox import Limits, make_sandbox_dir, remove_sandbox_dir, run_sandboxed

BUILD_LIMITS = Limits(cpu_seconds=20, wall_seconds=30.0, memory_mb=1024)


@pytest.fixture
def sandbox_dir() -> Iterator[Path]:
    path = make_sandbox_dir("cra-test-")
    yield path
    remove_sandbox_dir(path)


def _build_program(sandbox: Path, name: str, source: str) -> str:
    (sandbox / f"{name}.c").write_text(source)
    result = run_sandboxed(["gcc", "-O0", "-o", name, f"{name}.c"], sandbox, BUILD_LIMITS)
    assert result.returncode == 0, result.stderr
    return f"./{name}"


@pytest.fixture
def build_program() -> Callable[[Path, str, str], str]:
    """Compile C source with gcc inside a sandbox dir: build_program(sandbox, name, source) -> argv[0]."""
    return _build_program
