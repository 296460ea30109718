"""The call log: every LLM call and every task outcome, in SQLite under the workspace's `.cra/`.

Rows are training data for per-stage adapters (`cra curate-data`) and the audit (`cra audit`), so a call is
recorded even when it fails or is cancelled, and outcomes (compiled? tests passed? edit applied?) link back to
their calls through the task id.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from cra.pipeline.process_owner import owner_alive, process_owner

SCHEMA_VERSION = 3
# Tables a database must have to be a cra call log (any schema version).
REQUIRED_TABLES = frozenset({"tasks", "calls", "outcomes"})
INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = "the process running this task ended without finishing it (killed or crashed)"

# Migration N brings a database from user_version N-1 to N. Append only; never edit a released step.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY, action TEXT NOT NULL, path TEXT, symbol TEXT,
        started_at REAL NOT NULL, ended_at REAL, status TEXT NOT NULL DEFAULT 'running', message TEXT
    );
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT, stage TEXT NOT NULL, role TEXT,
        model_name TEXT, model_hash TEXT, adapter_name TEXT, adapter_hash TEXT,
        messages TEXT NOT NULL, response TEXT, grammar TEXT,
        tokens_in INTEGER, tokens_out INTEGER, cached_tokens INTEGER,
        prefill_s REAL, decode_s REAL, ttft_s REAL, finish_reason TEXT,
        error TEXT, cancelled INTEGER NOT NULL DEFAULT 0, started_at REAL NOT NULL, duration_s REAL
    );
    CREATE INDEX calls_task ON calls(task_id);
    CREATE INDEX calls_stage ON calls(stage);
    CREATE TABLE outcomes (
        task_id TEXT PRIMARY KEY REFERENCES tasks(id), action TEXT NOT NULL, path TEXT, symbol TEXT,
        compiled INTEGER, tests_passed INTEGER, edit_status TEXT, reason TEXT, at REAL NOT NULL
    );
    """,
    2: """
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
        at REAL NOT NULL, note TEXT
    );
    CREATE INDEX transitions_task ON transitions(task_id);
    """,
    # Which process runs a task ("pid.start_ticks.boot_id"): a later process finalises the `running` tasks of a
    # dead owner as interrupted, and leaves those of a live one alone.
    3: """
    ALTER TABLE tasks ADD COLUMN owner TEXT;
    """,
}


class CallRecord(msgspec.Struct, kw_only=True):
    task_id: str | None
    stage: str
    role: str | None = None
    model_name: str | None = None
    model_hash: str | None = None
    adapter_name: str | None = None
    adapter_hash: str | None = None
    messages: list[dict[str, str]]
    response: str | None = None
    grammar: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached_tokens: int | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    ttft_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    cancelled: bool = False
    started_at: float = 0.0
    duration_s: float | None = None


class CallRow(CallRecord, kw_only=True):
    id: int


class OutcomeRow(msgspec.Struct, kw_only=True):
    task_id: str
    action: str
    path: str | None
    symbol: str | None
    compiled: bool | None
    tests_passed: bool | None
    # "proposed" | "applied" (the file was written) | "not_applied" (a dry run) | "rejected" | "failed" | "cancelled"
    edit_status: str | None
    reason: str | None
    at: float


def log_path(root: str | Path) -> Path:
    return Path(root) / ".cra" / "calls.db"


def new_task_id() -> str:
    return uuid.uuid4().hex[:16]


_fingerprints: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | Path) -> str:
    """A fast stable identity for a (large) GGUF: sha256 of its size and first and last MiB."""
    p = Path(path)
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _fingerprints:
        h = hashlib.sha256(str(st.st_size).encode())
        with p.open("rb") as f:
            h.update(f.read(1 << 20))
            if st.st_size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
        _fingerprints[key] = "fp:" + h.hexdigest()[:32]
    return _fingerprints[key]


class CallLogError(Exception):
    """The log database cannot be opened or migrated."""


class CallLog:
    """Thread-safe: the server writes from worker threads. WAL lets `cra logs` read while a job writes.

    Opening a log for writing finalises the tasks that dead processes left `running` (`recover_interrupted`).
    `read_only=True` (`cra logs`) never writes: no migration, no WAL switch, no recovery; a file that is not a
    cra call log, or of a newer schema, is refused with `CallLogError`."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        if read_only:
            self._open_read_only()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self.recover_interrupted()
        except sqlite3.DatabaseError as exc:
            raise CallLogError(f"{self.path}: cannot open the call log: {exc}") from None

    def _open_read_only(self) -> None:
        if self.path.is_dir():
            raise CallLogError(f"{self.path} is a directory, not a call log")
        if not self.path.is_file():
            raise CallLogError(f"no call log at {self.path}")
        try:
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       check_same_thread=False, timeout=10.0)
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise CallLogError(f"{self.path}: cannot open the call log: not a readable SQLite database "
                               f"({exc})") from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise CallLogError(f"{self.path}: log schema {version} is newer than this cra ({SCHEMA_VERSION}); "
                               "upgrade cra to read it")
        missing = REQUIRED_TABLES - tables
        if missing:
            self._db.close()
            raise CallLogError(f"{self.path} is not a cra call log (no {', '.join(sorted(missing))} table"
                               f"{'s' if len(missing) > 1 else ''})")

    @classmethod
    def for_workspace(cls, root: str | Path) -> CallLog:
        return cls(log_path(root))

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CallLogError(f"{self.path}: log schema {version} is newer than this cra ({SCHEMA_VERSION})")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            with self._db:
                self._db.executescript(MIGRATIONS[step])
                self._db.execute(f"PRAGMA user_version = {step}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- writing -------------------------------------------------------------------------------------------------
    def start_task(self, action: str, path: str | None, symbol: str | None, task_id: str | None = None) -> str:
        task_id = task_id or new_task_id()
        with self._lock, self._db:
            self._db.execute("INSERT INTO tasks(id, action, path, symbol, started_at, owner) VALUES (?,?,?,?,?,?)",
                             (task_id, action, path, symbol, time.time(), process_owner()))
        return task_id

    def recover_interrupted(self) -> list[str]:
        """Finalise as `interrupted` the tasks left `running` by processes that are gone (kill -9, a crash, a
        power cut); tasks of live processes sharing this log are left alone. Returns the finalised task ids."""
        with self._lock:
            rows = self._db.execute("SELECT id, owner FROM tasks WHERE status='running'").fetchall()
        dead = [task_id for task_id, owner in rows if not owner_alive(owner)]
        if dead:
            with self._lock, self._db:
                now = time.time()
                for task_id in dead:
                    self._db.execute("UPDATE tasks SET status=?, ended_at=?, message=? WHERE id=? AND status='running'",
                                     (INTERRUPTED, now, INTERRUPTED_MESSAGE, task_id))
                    self._db.execute("INSERT INTO transitions(task_id, from_state, to_state, at, note) "
                                     "VALUES (?,?,?,?,?)", (task_id, None, INTERRUPTED, now, INTERRUPTED_MESSAGE))
        return dead

    def end_task(self, task_id: str, status: str, message: str = "") -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE tasks SET ended_at=?, status=?, message=? WHERE id=?",
                             (time.time(), status, message, task_id))

    def log_call(self, record: CallRecord) -> int:
        fields = msgspec.structs.asdict(record)
        fields["messages"] = json.dumps(fields["messages"], ensure_ascii=False)
        fields["cancelled"] = int(bool(fields["cancelled"]))
        columns = ", ".join(fields)
        with self._lock, self._db:
            cur = self._db.execute(f"INSERT INTO calls({columns}) VALUES ({', '.join('?' * len(fields))})",
                                   tuple(fields.values()))
        return int(cur.lastrowid or 0)

    def log_transition(self, task_id: str, from_state: str | None, to_state: str, note: str = "") -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO transitions(task_id, from_state, to_state, at, note) VALUES (?,?,?,?,?)",
                             (task_id, from_state, to_state, time.time(), note))

    def record_outcome(self, task_id: str, action: str, path: str | None, symbol: str | None, *,
                       compiled: bool | None, tests_passed: bool | None, edit_status: str | None,
                       reason: str | None = None) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO outcomes(task_id, action, path, symbol, compiled, tests_passed, edit_status, reason, at)"
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(task_id) DO UPDATE SET compiled=excluded.compiled,"
                " tests_passed=excluded.tests_passed, edit_status=excluded.edit_status, reason=excluded.reason,"
                " at=excluded.at",
                (task_id, action, path, symbol, _b(compiled), _b(tests_passed), edit_status, reason, time.time()))

    def set_edit_status(self, task_id: str, edit_status: str, reason: str | None = None) -> bool:
        """The editor's answer to the proposed edit (applied or rejected) arrives after the task ended."""
        with self._lock, self._db:
            cur = self._db.execute("UPDATE outcomes SET edit_status=?, reason=COALESCE(?, reason), at=? "
                                   "WHERE task_id=?", (edit_status, reason, time.time(), task_id))
        return cur.rowcount > 0

    # -- reading -------------------------------------------------------------------------------------------------
    def calls(self, *, stage: str | None = None, task_id: str | None = None, limit: int | None = None,
              newest_first: bool = True) -> list[CallRow]:
        where, args = _where(stage=stage, task_id=task_id)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM calls {where} ORDER BY id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_call_row(r) for r in self._rows(sql, args)]

    def outcomes(self, *, task_id: str | None = None) -> list[OutcomeRow]:
        where, args = _where(task_id=task_id)
        rows = self._rows(f"SELECT * FROM outcomes {where} ORDER BY at", args)
        return [OutcomeRow(**{**r, "compiled": _nb(r["compiled"]), "tests_passed": _nb(r["tests_passed"])})
                for r in rows]

    def tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM tasks ORDER BY started_at DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return self._rows(sql, ())

    def transitions(self, task_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM transitions WHERE task_id=? ORDER BY id", (task_id,))

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def iter_labelled_calls(self) -> Iterator[tuple[CallRow, OutcomeRow]]:
        """Calls whose task has an outcome: the raw material of training pairs."""
        outcomes = {o.task_id: o for o in self.outcomes()}
        for call in self.calls(newest_first=False):
            if call.task_id in outcomes:
                yield call, outcomes[call.task_id]


def _where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    names = {"stage": "stage", "task_id": "task_id"}
    parts = [(f"{names[k]} = ?", v) for k, v in filters.items() if v is not None]
    if not parts:
        return "", ()
    return "WHERE " + " AND ".join(p for p, _ in parts), tuple(v for _, v in parts)


def _b(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _nb(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _call_row(r: dict[str, Any]) -> CallRow:
    r = dict(r)
    r["messages"] = json.loads(r["messages"])
    r["cancelled"] = bool(r["cancelled"])
    return CallRow(**r)
