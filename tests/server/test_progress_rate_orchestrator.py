"""What the orchestrator tells a `DetailedProgress` (the language server's progress) besides the states: each
attempt's verdict after the step that settled it, and the decoding speed of the running state's generation.

The flows run here are small ones declared by the test with the real `Flow`/`Task` types and the real retry
helper (`retry_or_give_up`), run by the real orchestrator loop; the decode meter is driven by a clock the test
moves."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cra.pipeline import orchestrator
from cra.pipeline.actions import ActionRequest, Verdict
from cra.pipeline.config import load_config
from cra.pipeline.engine.meter import DecodeMeter, decoded_token, metering
from cra.pipeline.flows.base import DONE, Flow, Task
from cra.pipeline.flows.common import retry_or_give_up


class State(enum.Enum):
    WRITE = "write"
    VALIDATE = "validate"
    ADJUST = "adjust"


@dataclass
class Script:
    """What each attempt does: "pass", "fail" (validated, tests fail) or "cut" (fails before validation)."""

    attempts: list[str]
    done: list[str] = field(default_factory=list)


def make_flow(script: Script) -> Flow[Any]:
    def write(task: Task[Any]) -> enum.Enum:
        outcome = script.attempts[len(script.done)]
        script.done.append(outcome)
        if outcome == "cut":
            return retry_or_give_up(task, "the generated body was incomplete", kind="syntax", back_to=State.WRITE)
        return State.VALIDATE

    def validate(task: Task[Any]) -> enum.Enum:
        if script.done[-1] == "pass":
            task.result.verdict = Verdict(compiled=True, tests_passed=True, message="compiled; tests passed")
            return DONE
        task.result.verdict = Verdict(compiled=True, tests_passed=False, message="compiled; 1 of 2 tests failed")
        return retry_or_give_up(task, task.result.verdict.message, kind="test", back_to=State.WRITE)

    def adjust(task: Task[Any]) -> enum.Enum:
        task.rounds += 1
        assert task.retry_to is not None
        return task.retry_to

    return Flow(action="implement", states=State, start=State.WRITE,
                steps={State.WRITE: write, State.VALIDATE: validate, State.ADJUST: adjust},
                percent={State.WRITE: 30, State.VALIDATE: 70, State.ADJUST: 85}, data=dict, adjust=State.ADJUST)


class Recorder:
    """A DetailedProgress that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __call__(self, message: str, percent: int) -> None:
        self.events.append(("state", message))

    def speed(self, stage: str, tokens_per_s: float) -> None:
        self.events.append(("speed", stage, tokens_per_s))

    def verdict(self, stage: str, attempt: int, passed: bool, verdict: Verdict) -> None:
        self.events.append(("verdict", stage, attempt, passed, verdict.message))


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempts: list[str], max_rounds: int,
        progress: Any) -> Any:
    script = Script(attempts)
    monkeypatch.setattr(orchestrator, "flows", lambda: {"implement": make_flow(script)})
    (tmp_path / "f.c").write_text("int f(void) { return 0; }\n")
    request = ActionRequest(action="implement", path=str(tmp_path / "f.c"), text="int f(void) { return 0; }\n",
                            root=str(tmp_path), symbol="f")
    config = load_config(tmp_path, overrides={"validation": {"max_rounds": max_rounds}}, user=False)
    return orchestrator.run_action(request, config=config, engine=None, progress=progress)  # type: ignore[arg-type]


def verdicts(recorder: Recorder) -> list[tuple[Any, ...]]:
    return [e[1:] for e in recorder.events if e[0] == "verdict"]


def test_a_failed_validation_then_a_passing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    result = run(tmp_path, monkeypatch, ["fail", "pass"], 1, recorder)
    assert result.ok
    assert verdicts(recorder) == [("validate", 1, False, "compiled; 1 of 2 tests failed"),
                                  ("validate", 2, True, "compiled; tests passed")]
    # Each verdict is told right after its validation step, before the next state starts.
    order = [e[1] if e[0] == "state" else f"verdict {e[2]}" for e in recorder.events]
    assert order == ["write", "validate", "verdict 1", "adjust", "write", "validate", "verdict 2"]


def test_attempts_that_fail_before_validation_and_giving_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    result = run(tmp_path, monkeypatch, ["cut", "cut"], 1, recorder)
    assert not result.ok
    assert verdicts(recorder) == [("write", 1, False, "the generated body was incomplete"),
                                  ("write", 2, False, result.error)]
    assert "gave up after 2 attempts" in result.error


def test_a_validated_failure_with_no_rounds_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    result = run(tmp_path, monkeypatch, ["fail"], 0, recorder)
    assert not result.ok
    assert verdicts(recorder) == [("validate", 1, False, "compiled; 1 of 2 tests failed")]


def test_a_plain_progress_callback_hears_the_states_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heard: list[tuple[str, int]] = []
    result = run(tmp_path, monkeypatch, ["fail", "pass"], 1, lambda message, percent: heard.append((message, percent)))
    assert result.ok
    assert heard == [("write", 30), ("validate", 70), ("adjust", 85), ("write", 30), ("validate", 70)]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_reports_the_decoding_speed_at_most_every_interval() -> None:
    clock, rates = Clock(), []
    meter = DecodeMeter(rates.append, interval_s=0.5, clock=clock)
    decoded_token()  # nobody watches: nothing is counted
    with metering(meter):
        for _ in range(41):  # 40 tokens after the first, 0.05 s apart: 20 tok/s
            decoded_token()
            clock.now += 0.05
        clock.now -= 0.05
    # A report once 2 tokens were seen, then every 0.5 s, and none at the end (the last was under 0.5 s ago).
    assert rates == pytest.approx([20.0] * 4)
    clock.now += 0.3
    with metering(meter):  # a short call: its speed when it ends, 0.5 s after the previous report
        decoded_token()
        clock.now += 0.01
        decoded_token()
        clock.now += 0.01
    assert rates[-1] == pytest.approx(100.0) and len(rates) == 5
    with metering(meter):  # one token: no speed to tell
        decoded_token()
    assert len(rates) == 5
