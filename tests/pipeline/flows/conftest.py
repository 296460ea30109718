"""Flow tests on a scripted engine: every model answer is queued by the test, so each path through a flow (success,
an adjustment round, giving up, cancellation) runs deterministically, with the real tree-sitter, gcc sandbox and
call log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import Runner, tiny_config
from scripted_engine import ScriptedEngine

from cra.pipeline.actions import ActionRequest, ActionResult
from cra.pipeline.calllog import CallLog
from cra.pipeline.engine import CancelToken
from cra.pipeline.orchestrator import run_action


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
    def runner(root: Path, action: str, file: str, symbol: str | None = None, *, instruction: str = "",
               max_rounds: int = 1, extra: dict[str, Any] | None = None, cancel: CancelToken | None = None,
               progress: Callable[[str, int], None] | None = None) -> ActionResult:
        path = root / file
        request = ActionRequest(action=action, path=str(path), text=path.read_text(), root=str(root), symbol=symbol,
                                instruction=instruction)
        config = tiny_config(root, fake_model, max_rounds=max_rounds, extra=extra)
        return run_action(request, config=config, engine=engine, log=log, cancel=cancel, progress=progress)

    return runner
