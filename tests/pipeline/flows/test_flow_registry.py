"""The flows' structure: a registry the orchestrator reads (no import cycle, no list of states in the
orchestrator), each flow's own states and typed data, the retry loop shared by all of them."""

from __future__ import annotations

import enum
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_support import Runner, notes, states
from scripted_engine import ScriptedEngine

from cra.pipeline.actions import ACTIONS, Verdict
from cra.pipeline.calllog import CallLog
from cra.pipeline.flows import flows
from cra.pipeline.flows.base import DONE, Flow, NoData, Shared, Task, Terminal
from cra.pipeline.flows.common import adjust_and_retry, retry_or_give_up
from cra.pipeline.orchestrator import available_actions
from cra.pipeline.stages import adjustment as a4


def test_the_scripted_engine_is_an_engine() -> None:
    from cra.pipeline.engine import Engine

    engine: Engine = ScriptedEngine()  # checked statically too
    assert isinstance(engine, Engine)


def test_every_action_has_a_flow_named_for_it() -> None:
    assert set(flows()) == set(ACTIONS) and available_actions() == ACTIONS
    for action, flow in flows().items():
        assert flow.action == action
        assert not {s.value for s in flow.states} & {t.value for t in Terminal}
        assert set(flow.steps) == set(flow.states)


def test_flows_import_without_the_orchestrator() -> None:
    code = ("import sys; import cra.pipeline.flows.implement, cra.pipeline.flows.document; "
            "assert 'cra.pipeline.orchestrator' not in sys.modules, 'a flow imports the orchestrator'")
    subprocess.run([sys.executable, "-c", code], check=True)
    base_only = ("import sys; import cra.pipeline.flows.base; "
                 "loaded = [m for m in sys.modules if m.startswith('cra.pipeline.flows.') and m != 'cra.pipeline.flows.base']; "
                 "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", base_only], check=True)


def test_orchestrator_names_no_flow_state() -> None:
    source = Path(sys.modules["cra.pipeline.orchestrator"].__file__ or "").read_text()
    for flow in flows().values():
        for state in flow.states:
            assert f"{state.name} =" not in source and f".{state.name}" not in source


@pytest.mark.parametrize("action", ACTIONS)
def test_flow_data_rejects_misspelt_fields(action: str) -> None:
    data = flows()[action].new_data()
    with pytest.raises(AttributeError):
        data.no_such_step_output = 1  # type: ignore[attr-defined]
    shared = Shared(source=b"")
    with pytest.raises(AttributeError):
        shared.targte = None  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="located target"):
        shared.located()


class Toy(enum.Enum):
    TRY = "try"
    ADJUST = "adjust"


class Other(enum.Enum):
    ELSEWHERE = "elsewhere"


def _steps() -> dict[enum.Enum, object]:
    return {Toy.TRY: lambda task: DONE, Toy.ADJUST: lambda task: Toy.TRY}


def test_flow_declarations_are_checked() -> None:
    with pytest.raises(TypeError, match="not states of Toy"):
        Flow(action="toy", states=Toy, start=Other.ELSEWHERE, steps=_steps(), data=NoData)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="states without a step"):
        Flow(action="toy", states=Toy, start=Toy.TRY, steps={Toy.TRY: lambda task: DONE}, data=NoData)

    class Clash(enum.Enum):
        DONE = "done"

    with pytest.raises(TypeError, match="terminal states"):
        Flow(action="toy", states=Clash, start=Clash.DONE, steps={Clash.DONE: lambda task: DONE}, data=NoData)


@dataclass(slots=True, kw_only=True)
class ToyData:
    attempts: int = 0
    succeed_on: int = 99


def _try(task: Task[ToyData]) -> Toy | Terminal:
    task.data.attempts += 1
    if task.data.attempts >= task.data.succeed_on:
        task.result.verdict = Verdict(message=f"done after {task.data.attempts}")
        return DONE
    return retry_or_give_up(task, f"attempt {task.data.attempts} failed", kind="compile", back_to=Toy.TRY,
                            failure=f"failure {task.data.attempts}")


def _adjust(task: Task[ToyData]) -> Toy:
    return adjust_and_retry(task, goal="make the toy work", change=str(task.data.attempts))


def toy_flow(succeed_on: int) -> Flow[ToyData]:
    return Flow(action="toy", states=Toy, start=Toy.TRY, steps={Toy.TRY: _try, Toy.ADJUST: _adjust},
                percent={Toy.TRY: 50}, data=lambda: ToyData(succeed_on=succeed_on), adjust=Toy.ADJUST)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, workspace: Path) -> None:
    """A new action is a flow in the registry; the orchestrator runs it unchanged."""
    monkeypatch.setitem(flows(), "toy", toy_flow(succeed_on=2))


def test_a_new_flow_runs_through_the_orchestrator_with_the_shared_retry(
        toy: None, run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    adjustment = a4.Adjustment(diagnosis="toy diagnosis", focus="toy focus", steps=["again"])
    engine.script("adjustment", adjustment)
    result = run(workspace, "toy", "point.c", max_rounds=2)
    assert result.ok, result.error
    assert result.verdict.message == "done after 2"
    assert states(log, result.task_id) == ["try", "adjust", "try", "done"]
    assert notes(log, result.task_id)[:2] == ["attempt 1 failed: attempt 1 failed",
                                              "round 1: compile failure; adjustment: include (default, p=1.00); "
                                              "focus: toy focus"]
    assert engine.stages() == ["adjustment"] and "failure 1" in engine.calls[0].prompt


def test_the_shared_retry_gives_up_after_max_rounds(monkeypatch: pytest.MonkeyPatch, run: Runner,
                                                    workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    monkeypatch.setitem(flows(), "toy", toy_flow(succeed_on=99))
    engine.always("adjustment", a4.Adjustment(diagnosis="d", focus="f", steps=["s"]))
    result = run(workspace, "toy", "point.c", max_rounds=2)
    assert not result.ok and result.error == "point.c: attempt 3 failed (gave up after 3 attempts)"
    assert states(log, result.task_id) == ["try", "adjust", "try", "adjust", "try", "failed"]
    assert engine.stages() == ["adjustment", "adjustment"]
