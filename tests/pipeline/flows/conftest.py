"""Flow tests on a scripted engine: every model answer is queued by the test, so each path through a flow (success,
an adjustment round, giving up, cancellation) runs deterministically, with the real tree-sitter, gcc sandbox and
call log."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import Runner, make_runner
from scripted_engine import ScriptedEngine

from cra.pipeline.calllog import CallLog


@pytest.fixture(autouse=True)
def baseline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The unchanged tree's test reports go to the test's own folder, not the user's cache."""
    folder = tmp_path / "baseline-cache"
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(folder))
    return folder


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A model file the router can resolve; the scripted engine never reads it."""
    path = tmp_path / "scripted.gguf"
    path.write_bytes(b"GGUF scripted engine: not a model")
    return path


@pytest.fixture
def engine() -> ScriptedEngine:  # overrides the real engine of the pipeline tests
    return ScriptedEngine()


@pytest.fixture
def run(engine: ScriptedEngine, log: CallLog, fake_model: Path) -> Runner:
    return make_runner(engine, log, fake_model)
