"""The headless client and `cra run`: a real server subprocess, real pipeline, tiny generated model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from cra.clients.commands import run as run_command
from cra.clients.headless import _Session, run_action
from cra.pipeline.config import ROLES

SERVER_ARGV = [sys.executable, "-m", "cra.server"]
SOURCE = "int clamp(int v, int lo, int hi) {\n    return 0;\n}\n"


def cra_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`cra run ...` in-process: (exit code, stderr)."""
    parser = argparse.ArgumentParser(prog="cra")
    run_command.register(parser.add_subparsers())
    try:
        parsed = parser.parse_args(["run", *args])
        code = parsed.func(parsed)
    except SystemExit as exc:  # argparse rejects bad choices with exit 2
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def edit_of(uri: str, version: int | None, line: int, new_text: str) -> types.WorkspaceEdit:
    position = types.Position(line=line, character=0)
    return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=[types.TextEdit(range=types.Range(start=position, end=position), new_text=new_text)])])


def test_session_applies_edits_in_memory_and_checks_versions():
    session = _Session("file:///w/a.c", SOURCE)
    assert session.apply(edit_of("file:///w/a.c", 1, 0, "/* doc */\n")).applied
    assert session.text == "/* doc */\n" + SOURCE
    stale = session.apply(edit_of("file:///w/a.c", 7, 0, "x"))
    assert not stale.applied and "version 7" in stale.failure_reason
    unknown = session.apply(edit_of("file:///w/b.c", None, 0, "x"))
    assert not unknown.applied and session.text == "/* doc */\n" + SOURCE
    created = types.WorkspaceEdit(document_changes=[
        types.CreateFile(uri="file:///w/test_a.c"), *edit_of("file:///w/test_a.c", None, 0, "int main;\n").document_changes])
    assert session.apply(created).applied and session.files == {"file:///w/test_a.c": "int main;\n"}


@pytest.mark.timeout(60)
def test_cra_run_rejects_bad_input_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "m.c").write_text(SOURCE)
    code, err = cra_run(capsys, "implement", str(tmp_path / "m.c"))
    assert code == 2 and "--symbol" in err
    code, err = cra_run(capsys, "implement", str(tmp_path / "m.c"), "--symbol", "nope")
    assert code == 2 and "`nope`" in err
    code, err = cra_run(capsys, "refactor", str(tmp_path / "m.c"))
    assert code == 2 and "invalid choice" in err
    (tmp_path / "latin1.c").write_bytes(b"/* caf\xe9 */ int f(void) { return 0; }\n")
    code, err = cra_run(capsys, "implement", str(tmp_path / "latin1.c"), "--symbol", "f")
    assert code == 2 and "not UTF-8" in err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_headless_implement_runs_the_pipeline_and_leaves_the_file_alone(tmp_path: Path, tiny_model_path: Path):
    target = tmp_path / "m.c"
    target.write_text(SOURCE)
    config = {"models": {role: {"model": str(tiny_model_path), "context_length": 512} for role in ROLES}}
    outcome = run_action("implement", target, symbol="clamp", config=config, server_argv=SERVER_ARGV)
    assert outcome.task_id  # the orchestrator ran and logged a task
    assert outcome.old_text == SOURCE and target.read_text() == SOURCE
    assert any(step.startswith("locate") for step in outcome.progress), outcome.progress
    assert outcome.progress[-1] in ("done", "failed", "not applied")
    if outcome.ok:
        assert outcome.diff.startswith("--- a/m.c") and outcome.new_text != SOURCE
    else:
        assert outcome.error and outcome.new_text == SOURCE and outcome.diff == ""
