"""The deterministic control loop: each action is a state machine whose states are an enum and whose steps are
plain functions returning the next state. Models decide only inside a step. Every transition is logged with the
task id; cancellation is checked between steps (and inside every engine call)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import msgspec

from cra.pipeline.actions import ACTIONS, ActionRequest, ActionResult, Verdict
from cra.pipeline.calllog import CallLog, new_task_id
from cra.pipeline.config import Config, ConfigError
from cra.pipeline.context import ContextError
from cra.pipeline.models.registry import ModelError
from cra.pipeline.sandbox import SandboxError
from cra.pipeline.engine import Cancelled, CancelToken, EngineError, Timeout
from cra.pipeline.llm import StageLLM
from cra.pipeline.router import ModelRouter

Progress = Callable[[str, int], None]


class State(enum.Enum):
    LOCATE = "locate"
    CONTEXT = "context"
    IMPLEMENT = "implement"
    VALIDATE = "validate"
    ADJUST = "adjust"
    ROUTE = "route"  # MoMA stage 1: does this task need a model at all?
    ANALYZE = "analyze"  # A5 task analysis
    META_PLAN = "meta_plan"  # A1
    PART_PLAN = "part_plan"  # A2, once per part
    DOCUMENT = "document"  # A9
    GENERATE_TESTS = "generate_tests"  # A7
    SCAFFOLD = "scaffold"  # A3
    RENDER = "render"  # deterministic rendering of the structured outputs into files and edits
    DONE = "done"
    FAILED = "failed"


TERMINAL = {State.DONE, State.FAILED}


class ActionFailed(Exception):
    """A step cannot go on; the message is shown to the user."""


class Task:
    """Everything one action run carries between its steps."""

    def __init__(self, request: ActionRequest, config: Config, llm: StageLLM, log: CallLog | None,
                 progress: Progress, cancel: CancelToken, *, index: Any = None, trusted: bool = False) -> None:
        self.request = request
        self.config = config
        self.llm = llm
        self.log = log
        self.progress = progress
        self.cancel = cancel
        self.index = index
        self.trusted = trusted
        self.task_id = llm.task_id or new_task_id()
        self.data: dict[str, Any] = {}  # step outputs, by name
        self.rounds = 0
        self.failure: str | None = None  # condensed failure fed back to the next attempt
        self.note = ""  # said on the next transition's log row (why a round was retried, what routing chose)
        self.result = ActionResult(ok=False, task_id=self.task_id, action=request.action, path=request.path,
                                   symbol=request.symbol)


Step = Callable[[Task], State]


class Flow(msgspec.Struct, frozen=True):
    start: State
    steps: dict[State, Step]
    percent: dict[State, int]  # progress shown when a state starts


def _flows() -> dict[str, Flow]:
    from cra.pipeline.flows import document, implement, plan, scaffold, tests

    return {"plan": plan.FLOW, "scaffold": scaffold.FLOW, "implement": implement.FLOW, "tests": tests.FLOW,
            "document": document.FLOW}


def available_actions() -> tuple[str, ...]:
    return tuple(a for a in ACTIONS if a in _flows())


def run_action(request: ActionRequest, *, config: Config, engine: Any, log: CallLog | None = None,
               progress: Progress | None = None, cancel: CancelToken | None = None, index: Any = None,
               trusted: bool = False) -> ActionResult:
    """Run one action to a terminal state. Never raises for a user-facing failure: the result says why."""
    cancel = cancel or CancelToken()
    progress = progress or (lambda message, percent: None)
    flows = _flows()
    if request.action not in flows:
        known = ", ".join(available_actions())
        return ActionResult(ok=False, task_id="", action=request.action, path=request.path, symbol=request.symbol,
                            error=f"action {request.action!r} is not available yet (available: {known})")
    task_id = new_task_id()
    if log is not None:
        log.start_task(request.action, request.path, request.symbol, task_id)
    router = ModelRouter(config, root=request.root)
    llm = StageLLM(router, engine, log, task_id=task_id, cancel=cancel)
    task = Task(request, config, llm, log, progress, cancel, index=index, trusted=trusted)
    flow = flows[request.action]
    state: State | None = None
    nxt = flow.start
    status = "failed"
    try:
        while nxt not in TERMINAL:
            if cancel.cancelled:
                raise Cancelled("cancelled between steps")
            _transition(task, state, nxt, _take_note(task))
            state = nxt
            progress(state.value, flow.percent.get(state, 0))
            nxt = flow.steps[state](task)
        _transition(task, state, nxt, _take_note(task))
        status = "done" if nxt is State.DONE else "failed"
        task.result.ok = nxt is State.DONE
    except Cancelled:
        status = "cancelled"
        task.result.cancelled = True
        task.result.error = "cancelled"
        _transition(task, state, State.FAILED, "cancelled")
    except Timeout as exc:
        status = "timeout"
        task.result.error = f"timed out: {exc}"
        _transition(task, state, State.FAILED, "timeout")
    except (ActionFailed, EngineError, ModelError, ConfigError, SandboxError, ContextError) as exc:
        task.result.error = str(exc)
        _transition(task, state, State.FAILED, str(exc))
    except Exception as exc:  # a bug must not kill the server; the log keeps the reason
        task.result.error = f"internal error: {exc.__class__.__name__}: {exc}"
        _transition(task, state, State.FAILED, task.result.error)
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


def _take_note(task: Task) -> str:
    note, task.note = task.note, ""
    return note


def _transition(task: Task, old: State | None, new: State, note: str = "") -> None:
    if task.log is not None:
        task.log.log_transition(task.task_id, old.value if old else None, new.value, note)

