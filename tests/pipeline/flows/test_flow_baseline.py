"""Implement on projects whose tests already fail, or do not build, on the unchanged tree (the fixture projects of
`tests/pipeline/sandbox/baseline_projects/`), on scripted answers with the real sandbox: a failure the tree already
has costs no adjustment round and never reaches a prompt; a suite that cannot build still gets the edit offered;
an endless loop is a timeout; a model call that runs past its timeout is tried once more, then is a timeout
verdict of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline_support import Runner, notes, states
from scripted_engine import ScriptedEngine

from cra.pipeline.actions import Verdict
from cra.pipeline.calllog import CallLog
from cra.pipeline.engine import Timeout
from cra.pipeline.stages import adjustment as a4

PROJECTS = Path(__file__).parents[1] / "sandbox" / "baseline_projects"
GOOD = "    return a + b;\n}"
WRONG = "    return a - b;\n}"
ADJUSTMENT = a4.Adjustment(diagnosis="subtracts", focus="add the two parameters", steps=["return a + b"])


def project(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(PROJECTS / name, tmp_path / name))


def test_a_failure_the_tree_already_has_costs_no_round(run: Runner, tmp_path: Path, log: CallLog,
                                                       engine: ScriptedEngine) -> None:
    engine.script("implement", GOOD)
    result = run(project(tmp_path, "known_failure"), "implement", "calc.c", "add", max_rounds=2)
    assert result.ok, result.error
    assert result.verdict.tests_passed is True
    assert "fixed: tests/test_add.c" in result.verdict.message
    assert "not counted: tests/test_mul.c" in result.verdict.message
    assert engine.stages() == ["implement"] and "adjust" not in states(log, result.task_id)


def test_a_round_is_spent_only_on_what_the_change_broke(run: Runner, tmp_path: Path, log: CallLog,
                                                        engine: ScriptedEngine) -> None:
    engine.script("implement", WRONG, GOOD).script("adjustment", ADJUSTMENT)
    result = run(project(tmp_path, "known_failure"), "implement", "calc.c", "add", max_rounds=2)
    assert result.ok, result.error
    assert engine.stages() == ["implement", "adjustment", "implement"]
    assert states(log, result.task_id).count("adjust") == 1
    (round_note,) = [n for n in notes(log, result.task_id) if n.startswith("round ")]
    assert round_note.startswith("round 1: test failure") and "blamed on the change: tests/test_add.c" in round_note
    assert "test_mul" not in round_note
    for prompt in (engine.calls[1].prompt, engine.calls[2].prompt):  # A4's and the retry's
        assert "add(2, 3) == 5" in prompt and "mul(2, 3)" not in prompt and "test_mul" not in prompt


def test_a_suite_that_does_not_build_still_offers_the_edit(run: Runner, tmp_path: Path, log: CallLog,
                                                            engine: ScriptedEngine) -> None:
    engine.script("implement", GOOD)
    result = run(project(tmp_path, "broken_suite"), "implement", "calc.c", "add", max_rounds=2)
    assert result.ok, result.error
    assert result.verdict.compiled is True and result.verdict.tests_passed is None
    assert result.verdict.message.startswith("compiled; tests not run: ") and "add_three" in result.verdict.message
    assert [e.new_text for e in result.edits] == ["{\n    return a + b;\n}"]
    assert engine.stages() == ["implement"]  # no adjustment round on tests that cannot run
    assert states(log, result.task_id) == ["locate", "context", "implement", "validate", "done"]
    outcome = log.outcomes(task_id=result.task_id)[0]
    assert (outcome.edit_status, outcome.compiled, outcome.tests_passed) == ("proposed", True, None)


def test_an_endless_loop_is_reported_as_a_timeout(run: Runner, tmp_path: Path, log: CallLog,
                                                  engine: ScriptedEngine) -> None:
    engine.script("implement", "    while (a != b + 1) { }\n    return a + b;\n}")
    limits = {"limits": {"cpu_seconds": 1, "wall_seconds": 4}}
    result = run(project(tmp_path, "known_failure"), "implement", "calc.c", "add", max_rounds=0,
                 extra={"validation": limits})
    assert not result.ok and result.verdict.tests_passed is False
    assert result.verdict.message.startswith("compiled; timeout (gcc (direct build): ")
    assert "timed out after the change: tests/test_add.c" in (result.error or "")
    assert result.edits == []


def test_a_model_call_that_times_out_is_tried_once_more(run: Runner, tmp_path: Path, log: CallLog,
                                                        engine: ScriptedEngine) -> None:
    engine.script("implement", Timeout("the call ran past its timeout of 300 s"), GOOD)
    result = run(project(tmp_path, "known_failure"), "implement", "calc.c", "add")
    assert result.ok, result.error
    assert [c.finish_reason for c in log.calls(task_id=result.task_id, newest_first=False)] == ["timeout", "stop"]
    assert any(n == "the model call for implement took longer than 300 s; trying it once more"
               for n in notes(log, result.task_id))


def test_a_model_call_that_times_out_twice_is_a_timeout_verdict(run: Runner, tmp_path: Path, log: CallLog,
                                                                engine: ScriptedEngine) -> None:
    engine.script("implement", Timeout("past 300 s"), Timeout("past 300 s"))
    result = run(project(tmp_path, "known_failure"), "implement", "calc.c", "add")
    assert not result.ok and not result.cancelled
    assert result.verdict.message == "timeout: the model call for implement took longer than 300 s (tried twice)"
    assert result.error == "timed out: the model call for implement took longer than 300 s (tried twice)"
    assert states(log, result.task_id)[-1] == "failed"
    (task,) = [t for t in log.tasks() if t["id"] == result.task_id]
    assert task["status"] == "timeout"
    assert len(log.calls(task_id=result.task_id)) == 2


def test_an_adjustment_call_that_times_out_twice_names_its_stage(run: Runner, tmp_path: Path, log: CallLog,
                                                                 engine: ScriptedEngine) -> None:
    engine.script("implement", WRONG).script("adjustment", Timeout("past 300 s"), Timeout("past 300 s"))
    result = run(project(tmp_path, "known_failure"), "implement", "calc.c", "add", max_rounds=1)
    assert not result.ok
    # the verdict is the timeout, not the failed attempt's test verdict that came before it
    assert result.verdict == Verdict(message="timeout: the model call for adjustment took longer than 300 s "
                                             "(tried twice)")
    assert engine.stages() == ["implement", "adjustment", "adjustment"]
