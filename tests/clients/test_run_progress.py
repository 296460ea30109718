"""`cra run` shows its work and stops cleanly on Ctrl-C: a real `cra` process, its server, tiny generated models."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cra.clients.commands import check as check_command
from cra.pipeline.config import ROLES

SOURCE = "int clamp(int v, int lo, int hi) {\n    return 0;\n}\n"


def quick_config(model: Path) -> dict:
    """Every role on the tiny model; short generations; one adjustment round (so attempts have verdicts)."""
    return {"models": {role: {"model": str(model), "context_length": 8192} for role in ROLES},
            "stages": {"implement": {"max_tokens": 48}}, "validation": {"max_rounds": 1}}


def slow_config(model: Path) -> dict:
    """Every role on the slow model, with generations long enough to be interrupted."""
    stages = ("test_generation", "implement", "documentation", "meta_plan", "part_plan", "scaffold")
    return {"models": {role: {"model": str(model), "context_length": 4096} for role in ROLES},
            "stages": {stage: {"max_tokens": 3000, "temperature": 0.0} for stage in stages},
            "validation": {"max_rounds": 0}}


def cra(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cra.clients.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            text=True, **kwargs)


def tasks(root: Path) -> list[tuple[str, str | None]]:
    db = sqlite3.connect(root / ".cra" / "calls.db")
    try:
        return db.execute("SELECT status, message FROM tasks ORDER BY started_at").fetchall()
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path, long_tiny_model: Path) -> None:
    (tmp_path / "m.c").write_text(SOURCE)
    proc = cra("run", "implement", "m.c", "--symbol", "clamp", "--set", json.dumps(quick_config(long_tiny_model)),
               cwd=tmp_path, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=150)
    assert proc.returncode in (0, 1), err
    lines = err.splitlines()
    print(err)
    for stage in ("locate", "context", "implement"):  # one line per stage change: stage (percent, elapsed)
        assert any(line.startswith(f"cra implement: {stage} (") and line.endswith(" s)") for line in lines), lines
    assert len([line for line in lines if line.startswith("cra implement: locate (")]) == 1
    assert lines[-1].startswith("cra implement: ") and lines[-1].split(": ", 1)[1].split(" (")[0] in (
        "done", "failed", "not applied")
    assert "\r" not in err and "\x1b" not in err
    assert out.strip().splitlines()[-1].startswith("cra implement: ")  # the verdict stays on stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_json_prints_only_json_and_no_progress(tmp_path: Path, long_tiny_model: Path) -> None:
    (tmp_path / "m.c").write_text(SOURCE)
    proc = cra("run", "implement", "m.c", "--symbol", "clamp", "--json", "--set",
               json.dumps(quick_config(long_tiny_model)), cwd=tmp_path, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=150)
    assert proc.returncode in (0, 1), err
    outcome = json.loads(out)  # stdout is one JSON object and nothing else
    assert outcome["action"] == "implement" and outcome["task_id"]
    assert "cra implement:" not in err and "%" not in err


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_live_progress_on_a_terminal(tmp_path: Path, long_tiny_model: Path) -> None:
    import pty

    (tmp_path / "m.c").write_text(SOURCE)
    controller, terminal = pty.openpty()
    proc = cra("run", "implement", "m.c", "--symbol", "clamp", "--set", json.dumps(quick_config(long_tiny_model)),
               cwd=tmp_path, stderr=terminal)
    os.close(terminal)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    proc.communicate(timeout=150)
    text = shown.decode("utf-8", "replace")
    assert "\r\x1b[2K" in text  # the status line is redrawn in place
    assert "cra implement: starting (" in text and "cra implement: implement (" in text
    assert proc.returncode in (0, 1)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_cancels_the_running_job_and_writes_nothing(tmp_path: Path, slow_client_model: Path) -> None:
    target = tmp_path / "m.c"
    target.write_text(SOURCE)
    # Its own process group, like a terminal's foreground job: Ctrl-C signals the whole group.
    proc = cra("run", "implement", "m.c", "--symbol", "clamp", "--apply", "--set",
               json.dumps(slow_config(slow_client_model)), cwd=tmp_path, stderr=subprocess.PIPE,
               start_new_session=True)
    lines: list[str] = []
    generating = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("cra implement: implement ("):
                generating.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert generating.wait(150), "".join(lines)
    time.sleep(1.0)  # inside the generation
    assert proc.poll() is None, "the run finished before it could be interrupted"
    interrupted = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.wait(60) == 130
    elapsed = time.monotonic() - interrupted
    reader.join(10)
    err = "".join(lines)
    print(err, f"exited {elapsed:.2f} s after SIGINT", sep="\n")
    assert "cancelling" in err and "cra implement: cancelled (" in err and "cra run: the implement action was cancelled" in err
    assert "Traceback" not in err and out == ""  # no diff, no verdict: nothing was applied
    assert target.read_text() == SOURCE
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cra", "m.c"]
    assert tasks(tmp_path) == [("cancelled", "cancelled")]
    assert not processes_in(tmp_path), "the server outlived its client"


def processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is `folder` (the server runs in the workspace); Linux only."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(entry / "cwd")) == folder.resolve():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cra_check_shows_progress_per_action(tmp_path: Path, long_tiny_model: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.c").write_text(SOURCE)
    args = argparse.Namespace(root=str(tmp_path), document_undocumented=False, tests_changed_since=None,
                              implement_stubs=True, max=None, report=None, apply=False, list=False, json=False,
                              trust=False, config=None, set=json.dumps(quick_config(long_tiny_model)))
    check_command.run(args)
    err = capsys.readouterr().err
    assert "cra check [1/1] implement m.c:clamp: locate (" in err
    assert "cra check [1/1] implement m.c:clamp: implement (" in err
