"""What every flow is made of: the task a run carries between its steps, the flow's declaration, the terminal
states. No flow and not the orchestrator: both import this module, it imports neither.

A flow declares its own states (an `enum.Enum` of its own) and its own typed data (a class whose instances hold
its steps' outputs); what the shared steps produce lives in `Shared`. A step is a plain function from the task to
the next state: one of its flow's states, or `DONE` / `FAILED`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cra.pipeline.actions import ActionRequest, ActionResult
from cra.pipeline.calllog import CallLog, new_task_id
from cra.pipeline.config import Config
from cra.pipeline.engine import CancelToken
from cra.pipeline.llm import StageLLM

if TYPE_CHECKING:
    from cra.pipeline.context import ContextPack, FileIndex, WorkspaceIndex
    from cra.pipeline.context.symbols import Symbol
    from cra.pipeline.flows.common import FunctionShape
    from cra.pipeline.stages.task_analysis import TaskQuery

Progress = Callable[[str, int], None]


class Terminal(enum.Enum):
    """The two states every flow ends in."""

    DONE = "done"
    FAILED = "failed"


DONE = Terminal.DONE
FAILED = Terminal.FAILED


class ActionFailed(Exception):
    """A step cannot go on; the message is shown to the user."""


@dataclass(slots=True, kw_only=True)
class Shared:
    """What the steps shared by several flows produce (see `flows.common`). Slots: a misspelt field is an
    AttributeError, not a silently new key."""

    source: bytes  # the request's text as bytes: tree-sitter's byte offsets index it
    source_index: FileIndex | None = None  # the parse of `source` (symbols, macros), made once
    target: Symbol | None = None  # the function the action is about; None: the whole file
    shape: FunctionShape | None = None  # the target's parameters, return type and prototype
    query: TaskQuery | None = None  # A5's task analysis, or the query derived from the request
    context: ContextPack | None = None  # the target's assembled context
    deterministic: bool = False  # a rule, not a model, made the output: another round cannot fix it

    def located(self) -> Symbol:
        """The target, for steps that run after it was located."""
        if self.target is None:
            raise RuntimeError("the step needs a located target function and there is none")
        return self.target

    def function_shape(self) -> FunctionShape:
        if self.shape is None:
            raise RuntimeError("the step needs the target's shape and it was not computed")
        return self.shape


@dataclass(slots=True, kw_only=True)
class NoData:
    """The data of a flow whose steps keep nothing of their own."""


D = TypeVar("D")


class Task(Generic[D]):
    """Everything one action run carries between its steps. `data` is the flow's own typed state; `shared` is
    what the common steps produce."""

    def __init__(self, request: ActionRequest, config: Config, llm: StageLLM, log: CallLog | None,
                 progress: Progress, cancel: CancelToken, *, flow: Flow[D], data: D, index: WorkspaceIndex | None = None,
                 trusted: bool = False) -> None:
        self.request = request
        self.config = config
        self.llm = llm
        self.log = log
        self.progress = progress
        self.cancel = cancel
        self.flow = flow
        self.index = index
        self.trusted = trusted
        self.task_id = llm.task_id or new_task_id()
        self.shared = Shared(source=request.text.encode("utf-8", errors="surrogateescape"))
        self.data: D = data
        self.rounds = 0  # adjustment rounds run so far
        self.failure: str | None = None  # condensed failure fed back to the next attempt
        self.failure_kind = ""  # "syntax" | "compile" | "test" | "timeout" | ...: what the last failed attempt ran into
        self.blamed: list[str] = []  # the tests the last failed attempt broke (never ones failing before it)
        self.retry_to: enum.Enum | None = None  # the state the flow's adjustment step goes back to
        self.note = ""  # said on the next transition's log row (why a round was retried, what routing chose)
        self.result = ActionResult(ok=False, task_id=self.task_id, action=request.action, path=request.path,
                                   symbol=request.symbol)


Step = Callable[[Task[Any]], enum.Enum]


@dataclass(frozen=True, kw_only=True)
class Flow(Generic[D]):
    """One action's state machine. `states` is the flow's own enum; `steps` maps each of them to its step;
    `percent` is the progress shown when a state starts; `data` makes the flow's typed state for a new task;
    `adjust` names the state that runs an adjustment round after a failed attempt (see `common.retry`)."""

    action: str
    states: type[enum.Enum]
    start: enum.Enum
    steps: Mapping[enum.Enum, Callable[[Task[D]], enum.Enum]]
    percent: Mapping[enum.Enum, int] = field(default_factory=dict)
    data: Callable[[], D]
    adjust: enum.Enum | None = None

    def __post_init__(self) -> None:
        foreign = [s for s in [self.start, *self.steps, *self.percent, *([self.adjust] if self.adjust else [])]
                   if not isinstance(s, self.states)]
        if foreign:
            raise TypeError(f"flow {self.action!r}: {foreign} are not states of {self.states.__name__}")
        if self.start not in self.steps:
            raise TypeError(f"flow {self.action!r}: the start state {self.start} has no step")
        if self.adjust is not None and self.adjust not in self.steps:
            raise TypeError(f"flow {self.action!r}: the adjustment state {self.adjust} has no step")
        missing = [s for s in self.states if s not in self.steps]
        if missing:
            raise TypeError(f"flow {self.action!r}: states without a step: {missing}")
        clash = {s.value for s in self.states} & {t.value for t in Terminal}
        if clash:
            raise TypeError(f"flow {self.action!r}: {sorted(clash)} are terminal states, not the flow's own")

    def new_data(self) -> D:
        return self.data()
