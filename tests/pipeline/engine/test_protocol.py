"""The `Engine` protocol: LocalEngine, RemoteEngine, Scheduler (and the pipeline tests' ScriptedEngine) implement
it with the same signatures, and importing the engine package (or what the language server needs to answer
`initialize`) does not load llama.cpp."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scripted_engine import ScriptedEngine  # the pipeline tests' stand-in engine

import cra.pipeline.engine as engine_pkg
from cra.pipeline.engine import Engine, LocalEngine, RemoteEngine, Scheduler

CALLS = ("generate", "structured", "decide", "decide_batch", "count_tokens")
IMPLEMENTATIONS = (LocalEngine, RemoteEngine, Scheduler, ScriptedEngine)
REPO = Path(__file__).resolve().parents[3]


def _shape(signature: inspect.Signature) -> tuple[list[tuple[str, Any, Any, str]], str]:
    params = [(p.name, p.kind, p.default, str(p.annotation)) for p in signature.parameters.values()]
    return params, str(signature.return_annotation)


def test_protocol_declares_the_five_calls() -> None:
    declared = {name for name, value in vars(Engine).items() if inspect.isfunction(value) and not name.startswith("_")}
    assert declared == set(CALLS)
    for name in CALLS:
        assert inspect.getdoc(getattr(Engine, name)), f"Engine.{name} documents the call"


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_signatures_match_the_protocol(cls: type, name: str) -> None:
    """Names, order, kinds, defaults and annotations: a drifting signature fails here."""
    want = _shape(inspect.signature(getattr(Engine, name)))
    got = _shape(inspect.signature(getattr(cls, name)))
    assert got == want, f"{cls.__name__}.{name} differs from Engine.{name}"


def test_engines_are_engines(engine: LocalEngine) -> None:
    remote = RemoteEngine("http://127.0.0.1:9")
    for candidate in (engine, remote, Scheduler(engine), Scheduler(remote), ScriptedEngine()):
        assert isinstance(candidate, Engine), type(candidate).__name__

    class Partial:
        def generate(self) -> None: ...

    assert not isinstance(Partial(), Engine)


def test_lazy_names_resolve() -> None:
    for name in engine_pkg.__all__:
        assert getattr(engine_pkg, name) is not None
    assert set(engine_pkg.__all__) <= set(dir(engine_pkg))
    with pytest.raises(AttributeError, match="no_such_name"):
        engine_pkg.no_such_name  # noqa: B018


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "module",
    [
        "cra.pipeline.engine",
        "cra.pipeline.engine.types",
        "cra.pipeline.engine.errors",
        "cra.pipeline.engine.cancel",
        "cra.pipeline.engine.remote",
        "cra.pipeline.engine.scheduler",
        "cra.pipeline.llm",
        "cra.pipeline.runtime",
        "cra.pipeline.router",
        "cra.pipeline.orchestrator",
        "cra.server.app",
    ],
)
def test_import_does_not_load_llama_cpp(module: str) -> None:
    result = _run(f"import sys, {module}; assert 'llama_cpp' not in sys.modules, sorted(sys.modules)")
    assert result.returncode == 0, f"importing {module} failed or loaded llama_cpp:\n{result.stderr[-2000:]}"


def test_llama_logging_is_configured_by_the_first_local_engine() -> None:
    code = (
        "import cra.pipeline.engine as e\n"
        "from cra.pipeline.engine import session\n"
        "assert e.LocalEngine is not None and not session._backend_initialized[0], 'configured at import'\n"
        "e.LocalEngine()\n"
        "assert session._backend_initialized[0], 'not configured by LocalEngine()'\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-2000:]
