"""After kill -9 the call log's labels match the files on disk: real processes killed with SIGKILL at a chosen
point, a real SQLite log, real sandboxed programs and real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cra.pipeline.calllog import INTERRUPTED, CallLog, log_path
from cra.pipeline.process_owner import owner_alive, process_owner
from cra.pipeline.sandbox.runner import make_sandbox_dir, reclaim_leaked_sandbox_dirs, remove_sandbox_dir

REPO = Path(__file__).resolve().parents[2]

# Starts a task, then a sandboxed program that runs for long; prints the task id and sandbox dir, then waits.
MID_SANDBOX = r"""
import json, sys
from cra.pipeline.calllog import CallLog
from cra.pipeline.sandbox import Limits, make_sandbox_dir, run_sandboxed
log = CallLog.for_workspace(sys.argv[1])
task = log.start_task("implement", "m.c", "f")
log.log_transition(task, None, "validate")
sandbox = make_sandbox_dir()
print(json.dumps({"task": task, "sandbox": str(sandbox)}), flush=True)
run_sandboxed(["sh", "-c", "sleep 60; : " + sys.argv[2]], sandbox, Limits(wall_seconds=120, cpu_seconds=60))
"""

# `cra run --apply` with the server's part done (a real task and outcome in the log): the write blocks.
MID_APPLY = r"""
import argparse, sys, time
from pathlib import Path
from cra.clients import headless
from cra.clients.commands import run as run_command
from cra.pipeline.calllog import CallLog
root, target = Path(sys.argv[1]), Path(sys.argv[2])
log = CallLog.for_workspace(root)
task = log.start_task("implement", target.name, "f")
log.record_outcome(task, "implement", target.name, "f", compiled=True, tests_passed=None, edit_status="applied")
log.end_task(task, "done")
log.close()
new_text = "int f(void) { return 1; }\n"
outcome = headless.RunOutcome(ok=True, action="implement", path=str(target), old_text=target.read_text(),
                              new_text=new_text, diff="", task_id=task)
headless.run_action = lambda *a, **k: outcome
real_write = headless.write_atomically
def slow_write(path, text):
    print("writing", flush=True)
    if sys.argv[3] == "block":
        time.sleep(60)
    real_write(path, text)
headless.write_atomically = slow_write
parser = argparse.ArgumentParser()
run_command.register(parser.add_subparsers())
args = parser.parse_args(["run", "implement", str(target), "--symbol", "f", "--json"] + sys.argv[4:])
sys.exit(args.func(args))
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _wait_for(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.timeout(120)
def test_kill_during_a_sandbox_run_interrupts_the_task_and_reclaims_the_sandbox(tmp_path: Path) -> None:
    marker = f"cra-kill-test-{uuid.uuid4().hex}"
    # A task of this (live) process in the same log: recovery must leave it running.
    mine = CallLog.for_workspace(tmp_path)
    live_task = mine.start_task("tests", "m.c", "g")
    live_sandbox = make_sandbox_dir()
    proc = _python(MID_SANDBOX, str(tmp_path), marker)
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert _wait_for(lambda: bool(_processes_with(marker))), "the sandboxed program never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        sandbox = Path(started["sandbox"])
        assert sandbox.is_dir()  # leaked: nobody cleaned up
        # The sandboxed program dies with the killed process instead of running on unsupervised.
        assert _wait_for(lambda: not _processes_with(marker)), _processes_with(marker)

        reopened = CallLog.for_workspace(tmp_path)  # a new process opening the log (here: a new connection)
        tasks = {t["id"]: t for t in reopened.tasks()}
        assert tasks[started["task"]]["status"] == INTERRUPTED and tasks[started["task"]]["ended_at"] is not None
        assert tasks[live_task]["status"] == "running"
        assert [t["to_state"] for t in reopened.transitions(started["task"])] == ["validate", INTERRUPTED]
        assert reopened.outcomes(task_id=started["task"]) == []  # no label claims anything for it

        removed = reclaim_leaked_sandbox_dirs(sandbox.parent)
        assert sandbox in removed and not sandbox.exists()
        assert live_sandbox.is_dir() and live_sandbox not in removed
        mine.end_task(live_task, "done")
    finally:
        proc.kill()
        remove_sandbox_dir(live_sandbox)


def test_owner_identity_survives_pid_reuse() -> None:
    me = process_owner()
    assert owner_alive(me)
    pid, start, boot = me.split(".", 2)
    assert not owner_alive(f"{pid}.{int(start) + 1}.{boot}")  # same pid, other process
    assert not owner_alive(f"{pid}.{start}.another-boot")
    assert not owner_alive(None) and not owner_alive("garbage")
    child = subprocess.Popen(["sleep", "30"])
    owner = process_owner(child.pid)
    assert owner_alive(owner)
    child.kill()
    child.wait()
    assert not owner_alive(owner)


@pytest.mark.timeout(120)
def test_kill_before_the_apply_write_leaves_proposed_and_the_file_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "m.c"
    target.write_text("int f(void) { return 0; }\n")
    proc = _python(MID_APPLY, str(tmp_path), str(target), "block", "--apply")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    log = CallLog(log_path(tmp_path), read_only=True)
    (outcome,) = log.outcomes()
    assert outcome.edit_status == "proposed"  # the server's in-memory "applied" was corrected before the write
    assert target.read_text() == "int f(void) { return 0; }\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cra", "m.c"]  # no half-written temp file


@pytest.mark.timeout(120)
@pytest.mark.parametrize("apply", [True, False])
def test_apply_labels_follow_the_disk(tmp_path: Path, apply: bool) -> None:
    target = tmp_path / "m.c"
    target.write_text("int f(void) { return 0; }\n")
    proc = _python(MID_APPLY, str(tmp_path), str(target), "go", *(["--apply"] if apply else []))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (outcome,) = CallLog(log_path(tmp_path), read_only=True).outcomes()
    if apply:
        assert outcome.edit_status == "applied" and target.read_text() == "int f(void) { return 1; }\n"
    else:
        assert outcome.edit_status == "not_applied" and target.read_text() == "int f(void) { return 0; }\n"
