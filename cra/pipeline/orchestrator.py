"""The deterministic control loop: each action is a state machine (a `flows.base.Flow`: its own enum of states,
steps that are plain functions returning the next state, its own typed data). Models decide only inside a step.
Every transition is logged with the task id; cancellation is checked between steps (and inside every engine
call). The flows come from the `flows` registry; this module knows none of them."""

from __future__ import annotations

import enum
from typing import Any

from cra.pipeline.actions import ACTIONS, ActionRequest, ActionResult, Verdict
from cra.pipeline.calllog import CallLog, new_task_id
from cra.pipeline.config import Config, ConfigError
from cra.pipeline.context import ContextError
from cra.pipeline.engine import Cancelled, CancelToken, Engine, EngineError, Timeout
from cra.pipeline.flows import flows
from cra.pipeline.flows.base import DONE, FAILED, ActionFailed, Progress, Task, Terminal
from cra.pipeline.llm import StageLLM
from cra.pipeline.models.registry import ModelError
from cra.pipeline.router import ModelRouter
from cra.pipeline.sandbox import SandboxError

__all__ = ["ActionFailed", "Progress", "available_actions", "run_action"]


def available_actions() -> tuple[str, ...]:
    return tuple(a for a in ACTIONS if a in flows())


def run_action(request: ActionRequest, *, config: Config, engine: Engine, log: CallLog | None = None,
               progress: Progress | None = None, cancel: CancelToken | None = None, index: Any = None,
               trusted: bool = False) -> ActionResult:
    """Run one action to a terminal state. Never raises for a user-facing failure: the result says why."""
    cancel = cancel or CancelToken()
    progress = progress or (lambda message, percent: None)
    known_flows = flows()
    if request.action not in known_flows:
        known = ", ".join(available_actions())
        return ActionResult(ok=False, task_id="", action=request.action, path=request.path, symbol=request.symbol,
                            error=f"action {request.action!r} is not available yet (available: {known})")
    task_id = new_task_id()
    if log is not None:
        log.start_task(request.action, request.path, request.symbol, task_id)
    router = ModelRouter(config, root=request.root)
    llm = StageLLM(router, engine, log, task_id=task_id, cancel=cancel)
    flow = known_flows[request.action]
    task = Task(request, config, llm, log, progress, cancel, flow=flow, data=flow.new_data(), index=index,
                trusted=trusted)
    state: enum.Enum | None = None
    nxt: enum.Enum = flow.start
    status = "failed"
    try:
        while not isinstance(nxt, Terminal):
            if cancel.cancelled:
                raise Cancelled("cancelled between steps")
            if nxt not in flow.steps:
                raise RuntimeError(f"{flow.action}: a step went to {nxt!r}, which is not one of its flow's states")
            _transition(task, state, nxt, _take_note(task))
            state = nxt
            progress(state.value, flow.percent.get(state, 0))
            nxt = flow.steps[state](task)
        _transition(task, state, nxt, _take_note(task))
        status = "done" if nxt is DONE else "failed"
        task.result.ok = nxt is DONE
    except Cancelled:
        status = "cancelled"
        task.result.cancelled = True
        task.result.error = "cancelled"
        _transition(task, state, FAILED, "cancelled")
    except Timeout as exc:
        status = "timeout"
        task.result.error = f"timed out: {exc}"
        _transition(task, state, FAILED, "timeout")
    except (ActionFailed, EngineError, ModelError, ConfigError, SandboxError, ContextError) as exc:
        task.result.error = str(exc)
        _transition(task, state, FAILED, str(exc))
    except Exception as exc:  # a bug must not kill the server; the log keeps the reason
        task.result.error = f"internal error: {exc.__class__.__name__}: {exc}"
        _transition(task, state, FAILED, task.result.error)
    finally:
        if task.result.error and not task.result.verdict.message:
            task.result.verdict = Verdict(compiled=task.result.verdict.compiled,
                                          tests_passed=task.result.verdict.tests_passed, message=task.result.error)
        if log is not None:
            log.end_task(task_id, status, task.result.error or task.result.verdict.message)
            log.record_outcome(task_id, request.action, request.path, request.symbol,
                               compiled=task.result.verdict.compiled, tests_passed=task.result.verdict.tests_passed,
                               edit_status=_edit_status(task.result, status), reason=task.result.error)
    return task.result


def _edit_status(result: ActionResult, status: str) -> str:
    if status == "cancelled":
        return "cancelled"
    return "proposed" if result.ok and (result.edits or result.files) else "failed"


def _take_note(task: Task[Any]) -> str:
    note, task.note = task.note, ""
    return note


def _transition(task: Task[Any], old: enum.Enum | None, new: enum.Enum, note: str = "") -> None:
    if task.log is not None:
        task.log.log_transition(task.task_id, old.value if old else None, new.value, note)

