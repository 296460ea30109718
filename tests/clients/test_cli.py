"""The `cra` CLI: `--help` everywhere, and clear errors (non-zero exit, nothing created) on bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cra.clients.cli import build_parser, main


def every_command() -> list[list[str]]:
    commands: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    commands.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return commands


@pytest.mark.parametrize("command", every_command(), ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: cra " + " ".join(command) in capsys.readouterr().out


def test_the_documented_commands_exist() -> None:
    names = {" ".join(c) for c in every_command()}
    assert {"lsp", "run", "models list", "models install", "models verify", "logs", "config check", "index",
            "context", "check", "curate-data", "audit", "bench engine", "bench quality"} <= names


def test_logs_without_a_log_is_a_clear_error_and_creates_nothing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--root", str(tmp_path)]) == 1
    assert "no call log" in capsys.readouterr().err
    assert not (tmp_path / ".cra").exists()


def test_logs_on_a_corrupt_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".cra").mkdir()
    (tmp_path / ".cra" / "calls.db").write_bytes(b"not a database" * 50)
    assert main(["logs", "--root", str(tmp_path)]) == 1
    assert "cannot open the call log" in capsys.readouterr().err


def test_models_commands_refuse_unknown_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRA_MODEL_DIR", str(tmp_path))
    assert main(["models", "install", "no-such-model"]) == 1
    assert "unknown registry model" in capsys.readouterr().err
    assert main(["models", "verify", "no-such-model"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_pipe_closed_early_is_not_an_error(tmp_path: Path) -> None:
    """`cra logs --json | head -1` on a log larger than the pipe's buffer: the reader leaves, cra exits quietly."""
    from cra.pipeline.calllog import CallLog, CallRecord

    log = CallLog.for_workspace(tmp_path)
    for i in range(200):
        log.log_call(CallRecord(task_id="t", stage="implement", messages=[{"role": "user", "content": "x" * 500}],
                                response=str(i), started_at=float(i)))
    log.close()
    shown = subprocess.run(f"{sys.executable} -m cra.clients.cli logs --root {tmp_path} --json -n 0 | head -1",
                           shell=True, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.strip() == "["
    assert "Traceback" not in shown.stderr and "Broken pipe" not in shown.stderr
