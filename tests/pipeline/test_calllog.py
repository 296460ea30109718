"""The SQLite call log: schema migrations, WAL, calls recorded with outcomes, failures kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cra.pipeline.calllog import SCHEMA_VERSION, CallLog, CallLogError, CallRecord


def test_fresh_log_is_migrated_and_in_wal(tmp_path: Path) -> None:
    log = CallLog.for_workspace(tmp_path)
    assert log.schema_version == SCHEMA_VERSION
    mode = sqlite3.connect(log.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert log.path == tmp_path / ".cra" / "calls.db"


def test_old_schema_is_migrated_forward_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    db = sqlite3.connect(path)
    from cra.pipeline.calllog import MIGRATIONS

    db.executescript(MIGRATIONS[1])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO tasks(id, action, started_at) VALUES ('t1', 'implement', 0)")
    db.commit()
    db.close()
    log = CallLog(path)
    assert log.schema_version == SCHEMA_VERSION
    assert [t["id"] for t in log.tasks()] == ["t1"]
    # A `running` row from before owners were recorded has no live owner: it is finalised on open.
    assert log.tasks()[0]["status"] == "interrupted"
    log.log_transition("t1", None, "locate")
    assert [t["to_state"] for t in log.transitions("t1")] == ["interrupted", "locate"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(CallLogError, match="newer"):
        CallLog(path)


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CallLogError, match="cannot open"):
        CallLog(path)


def test_calls_and_outcomes_round_trip_and_filter(tmp_path: Path) -> None:
    log = CallLog(tmp_path / "calls.db")
    task = log.start_task("implement", "a.c", "f")
    ok = CallRecord(task_id=task, stage="implement", role="coding", model_name="m", messages=[
        {"role": "user", "content": "ünïcode"}], response="return 1;", tokens_in=10, tokens_out=3,
        finish_reason="stop", started_at=1.0)
    failed = CallRecord(task_id=task, stage="scope_dependency", messages=[{"role": "user", "content": "q"}],
                        error="Cancelled: by user", cancelled=True, finish_reason="cancelled", started_at=2.0)
    log.log_call(ok)
    log.log_call(failed)
    log.record_outcome(task, "implement", "a.c", "f", compiled=True, tests_passed=False, edit_status="proposed")
    assert log.set_edit_status(task, "applied")
    calls = log.calls(task_id=task, newest_first=False)
    assert [c.stage for c in calls] == ["implement", "scope_dependency"]
    assert calls[0].messages[0]["content"] == "ünïcode"
    assert calls[1].cancelled and calls[1].error.startswith("Cancelled")
    assert [c.stage for c in log.calls(stage="implement")] == ["implement"]
    (outcome,) = log.outcomes()
    assert outcome.compiled is True and outcome.tests_passed is False and outcome.edit_status == "applied"
    labelled = list(log.iter_labelled_calls())
    assert len(labelled) == 2 and all(o.task_id == task for _, o in labelled)
