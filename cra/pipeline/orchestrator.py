"""The deterministic control loop: each action is a state machine (a `flows.base.Flow`: its own enum of states,
steps that are plain functions returning the next state, its own typed data). Models decide only inside a step.
Every transition is logged with the task id; cancellation is checked between steps (and inside every engine
call). The flows come from the `flows` registry; this module knows none of them.

Progress: each state's start is reported as `progress(state, percent)`. A progress that is a `DetailedProgress`
(the language server's) also hears how fast the model generates, and each attempt's verdict as it lands: a flow
sets `task.result.verdict` in its validation step, and the loop reports every new one after that step."""

from __future__ import annotations

import contextlib
import enum
import re
from typing import Any, Protocol, runtime_checkable

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

__all__ = ["ActionFailed", "DetailedProgress", "Progress", "available_actions", "run_action"]


@runtime_checkable
class DetailedProgress(Protocol):
    """A `Progress` that also shows the decoding speed and each attempt's verdict."""

    def __call__(self, message: str, percent: int) -> None:
        """A state of the flow starts (`message` is its name)."""

    def speed(self, stage: str, tokens_per_s: float) -> None:
        """The model generates in state `stage` at this speed (at most every 0.5 s while it does)."""

    def verdict(self, stage: str, attempt: int, passed: bool, verdict: Verdict) -> None:
        """Attempt number `attempt` (1, 2, ...: each adjustment round makes one more) was judged in `stage`: by
        validation (`verdict.compiled`/`tests_passed` say what ran), or it failed before (only a message)."""


class _Details:
    """What a `DetailedProgress` hears besides the states: the speed of the running state's generation and each
    attempt's verdict, told by the loop after the step that settled it: a step that set a new validated
    `task.result.verdict`, one that sent the task to the flow's adjustment state without one (the attempt failed
    before validation: no body, a syntax error), or the run ending in failure after an attempt failed."""

    def __init__(self, progress: DetailedProgress) -> None:
        self._progress = progress
        self._seen: Verdict | None = None  # the verdict reported last (first: the empty one a task starts with)
        self.state = ""
        self.attempts = 0

    def watch(self, task: Task[Any]) -> None:
        self._seen = task.result.verdict

    def speed(self, _stage: str, tokens_per_s: float) -> None:
        # Said under the flow's state (what the progress shows), not the engine stage inside it.
        self._progress.speed(self.state, tokens_per_s)

    def _new_validation(self, task: Task[Any]) -> Verdict | None:
        verdict = task.result.verdict
        if verdict is self._seen:
            return None
        self._seen = verdict
        if verdict.compiled is None and verdict.tests_passed is None:
            return None  # a summary (a plan's parts, nothing to scaffold), not a validated attempt
        return verdict

    def _tell(self, passed: bool, verdict: Verdict) -> None:
        self.attempts += 1
        with contextlib.suppress(Exception):  # showing a verdict must never change the run or its log
            self._progress.verdict(self.state, self.attempts, passed, verdict)

    def after_step(self, task: Task[Any], nxt: enum.Enum) -> None:
        verdict = self._new_validation(task)
        adjusting = task.flow.adjust is not None and nxt is task.flow.adjust
        if verdict is not None:
            self._tell(nxt is not FAILED and not adjusting and verdict.compiled is not False
                       and verdict.tests_passed is not False, verdict)
        elif adjusting:
            self._tell(False, Verdict(message=_ATTEMPT_NOTE.sub("", task.note)))

    def failed(self, task: Task[Any], error: str) -> None:
        """The run ended with `error`: a step gave up on the attempt it was judging."""
        verdict = self._new_validation(task)
        if verdict is not None:
            self._tell(False, verdict)
        elif task.failure_kind and self.attempts < task.rounds + 1:  # an attempt failed before, this one did too
            self._tell(False, Verdict(message=error))


# How `flows.common.retry_or_give_up` notes a failed attempt on the next transition.
_ATTEMPT_NOTE = re.compile(r"^attempt \d+ failed: ")


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
    details = _Details(progress) if isinstance(progress, DetailedProgress) else None
    llm = StageLLM(router, engine, log, task_id=task_id, cancel=cancel,
                   on_speed=details.speed if details is not None else None)
    flow = known_flows[request.action]
    task = Task(request, config, llm, log, progress, cancel, flow=flow, data=flow.new_data(), index=index,
                trusted=trusted)
    if details is not None:
        details.watch(task)
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
            if details is not None:
                details.state = state.value
            progress(state.value, flow.percent.get(state, 0))
            nxt = flow.steps[state](task)
            if details is not None:
                details.after_step(task, nxt)
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
        if details is not None and status not in ("done", "cancelled") and task.result.error:
            details.failed(task, task.result.error)
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

