"""`cra logs` on databases that are not (or not yet) cra call logs: a clear error, never a traceback, and a read
never writes. Runs the real CLI in a subprocess against real SQLite files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cra.pipeline.calllog import MIGRATIONS, SCHEMA_VERSION, CallLog, CallRecord, log_path


def cra_logs(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cra.clients.cli", "logs", "--root", str(root), *extra],
                          capture_output=True, text=True, timeout=60)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO notes(body) VALUES ('hello')")
    db.commit()
    db.close()


def _newer(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1])
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()


CASES = {
    "foreign sqlite": (_foreign, "is not a cra call log"),
    "corrupt": (lambda p: p.write_bytes(b"SQLite format 3\x00" + os.urandom(4096)), "not a readable SQLite database"),
    "random bytes": (lambda p: p.write_bytes(os.urandom(3000)), "not a readable SQLite database"),
    "empty file": (lambda p: p.write_bytes(b""), "is not a cra call log"),
    "newer schema": (_newer, f"newer than this cra ({SCHEMA_VERSION})"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_database_is_a_clear_error_and_left_untouched(tmp_path: Path, case: str) -> None:
    make, message = CASES[case]
    path = log_path(tmp_path)
    path.parent.mkdir()
    make(path)
    before, files = _digest(path), _siblings(path)
    for extra in ((), ("--outcomes",), ("--json",)):
        result = cra_logs(tmp_path, *extra)
        assert result.returncode == 1, result
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert _digest(path) == before and _siblings(path) == files  # no new tables, no -wal/-shm, no journal switch


def test_directory_in_place_of_the_log(tmp_path: Path) -> None:
    log_path(tmp_path).mkdir(parents=True)
    result = cra_logs(tmp_path)
    assert result.returncode == 1 and "is a directory" in result.stderr and "Traceback" not in result.stderr


def test_reading_an_older_log_does_not_migrate_it(tmp_path: Path) -> None:
    path = log_path(tmp_path)
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO calls(task_id, stage, messages, response, started_at) "
               "VALUES ('t1', 'locate', '[]', 'the-answer', 0)")
    db.commit()
    db.close()
    before = _digest(path)
    result = cra_logs(tmp_path)
    assert result.returncode == 0 and "the-answer" in result.stdout, result
    assert _digest(path) == before and _siblings(path) == ["calls.db"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_real_log_still_reads(tmp_path: Path) -> None:
    log = CallLog.for_workspace(tmp_path)
    log.log_call(CallRecord(task_id="t9", stage="implement", messages=[{"role": "user", "content": "x"}],
                            response="int f(void) { return 1; }"))
    log.close()
    result = cra_logs(tmp_path, "--json")
    assert result.returncode == 0 and '"task_id": "t9"' in result.stdout, result
