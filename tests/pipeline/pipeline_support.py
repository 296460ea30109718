"""Helpers shared by the pipeline tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cra.pipeline.actions import ActionRequest, ActionResult
from cra.pipeline.calllog import CallLog
from cra.pipeline.config import ROLES, STAGES, Config, load_config
from cra.pipeline.engine import CancelToken, Engine
from cra.pipeline.orchestrator import run_action

# Grammar-bounded outputs of the tiny byte-level model can take a token per byte: give them room.
STRUCTURED_BUDGET = 6000


def tiny_config(root: Path, model: Path, *, max_rounds: int = 1, extra: dict[str, Any] | None = None) -> Config:
    overrides: dict[str, Any] = {
        "models": {role: {"model": str(model), "context_length": 8192} for role in ROLES},
        "stages": {stage: {"max_tokens": STRUCTURED_BUDGET} for stage in STAGES if stage != "implement"},
        "validation": {"max_rounds": max_rounds},
        "context": {"budget_tokens": 300},
        "engine": {"threads": 2},
    }
    for key, value in (extra or {}).items():
        overrides.setdefault(key, {}).update(value)
    return load_config(root, overrides=overrides, user=False)


Runner = Callable[..., ActionResult]


def make_runner(engine: Engine, log: CallLog, model: Path) -> Runner:
    """Runs one action on a file of a workspace, every role on `model`, as the editor would request it."""
    def runner(root: Path, action: str, file: str, symbol: str | None = None, *, instruction: str = "",
               max_rounds: int = 1, extra: dict[str, Any] | None = None, cancel: CancelToken | None = None,
               progress: Callable[[str, int], None] | None = None) -> ActionResult:
        path = root / file
        request = ActionRequest(action=action, path=str(path), text=path.read_text(), root=str(root), symbol=symbol,
                                instruction=instruction)
        config = tiny_config(root, model, max_rounds=max_rounds, extra=extra)
        return run_action(request, config=config, engine=engine, log=log, cancel=cancel, progress=progress)

    return runner


def states(log: CallLog, task_id: str) -> list[str]:
    return [row["to_state"] for row in log.transitions(task_id)]


def notes(log: CallLog, task_id: str) -> list[str]:
    return [row["note"] for row in log.transitions(task_id) if row["note"]]
