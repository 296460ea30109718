"""`cra check`: which functions are chosen (no model), and the CI gate over a real server + tiny model."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cra.clients.commands import check as check_command
from cra.clients.commands.check import CheckError, run_targets, select
from cra.pipeline.config import ROLES

SERVER_ARGV = [sys.executable, "-m", "cra.server"]

HEADER = "/** Adds two ints. */\nint add(int a, int b);\nint twice(int v);\nint hidden(int v);\n"
SOURCE = """\
#include "lib.h"

int add(int a, int b) {
    return a + b;
}

int twice(int v) {
    return v * 2;
}

static int helper(int v) {
    return v - 1;
}

static int hidden(int v) {
    return helper(v);
}

int negate(int v) {
    return 0;
}
"""


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    (tmp_path / "lib.h").write_text(HEADER)
    (tmp_path / "lib.c").write_text(SOURCE)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    return tmp_path


def names(targets) -> list[tuple[str, str]]:
    return [(t.action, t.symbol) for t in targets]


def test_selection_of_undocumented_public_functions_and_stubs(repo: Path):
    # add: documented on its header prototype; helper: static and not in a header; hidden: static but declared
    # in the header (public); negate: non-static, undocumented, and a stub.
    assert names(select(repo, document_undocumented=True)) == [
        ("document", "twice"), ("document", "hidden"), ("document", "negate")]
    assert names(select(repo, implement_stubs=True)) == [("implement", "negate")]
    assert len(select(repo, document_undocumented=True, implement_stubs=True, max_actions=2)) == 2


def test_selection_of_functions_changed_since_a_ref(repo: Path):
    assert select(repo, tests_changed_since="HEAD") == []
    (repo / "lib.c").write_text(SOURCE.replace("return v * 2;", "return v + v;").replace("v - 1", "v - 2"))
    assert names(select(repo, tests_changed_since="HEAD")) == [("tests", "twice"), ("tests", "helper")]
    with pytest.raises(CheckError, match="no-such-ref"):
        select(repo, tests_changed_since="no-such-ref")


def cra_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="cra")
    check_command.register(parser.add_subparsers())
    parsed = parser.parse_args(["check", *args])
    code = parsed.func(parsed)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_without_a_selection_or_with_a_bad_root_is_a_usage_error(repo: Path, capsys):
    code, _, err = cra_check(capsys, str(repo))
    assert code == 2 and "--document-undocumented" in err
    code, _, err = cra_check(capsys, str(repo / "missing"), "--implement-stubs")
    assert code == 2 and "not a directory" in err
    code, out, _ = cra_check(capsys, str(repo), "--implement-stubs", "--list")
    assert code == 0 and out.strip() == "implement\tlib.c:19\tnegate"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_check_gate_reports_every_function_and_fails(repo: Path, tiny_model_path: Path, tmp_path_factory):
    config = {"models": {role: {"model": str(tiny_model_path), "context_length": 512} for role in ROLES},
              "stages": {"implement": {"max_tokens": 48}, "documentation": {"max_tokens": 96}},
              "validation": {"max_rounds": 0}}
    targets = select(repo, document_undocumented=True, implement_stubs=True, max_actions=2)
    results = run_targets(repo, targets, apply=False, trust=False, config=config, config_file=None,
                          server_argv=SERVER_ARGV)
    assert [(r.action, r.symbol) for r in results] == names(targets)
    assert not all(r.ok for r in results)  # gibberish from the random model cannot pass validation
    for r in results:
        assert r.ok or r.error  # every failure says why
    assert (repo / "lib.c").read_text() == SOURCE  # nothing written without --apply
    report_dir = tmp_path_factory.mktemp("report")
    args = argparse.Namespace(root=str(repo), document_undocumented=False, tests_changed_since=None,
                              implement_stubs=True, max=1, report=str(report_dir), apply=False, list=False,
                              json=False, trust=False, config=None, set=json.dumps(config), server_argv=SERVER_ARGV)
    assert check_command.run(args) == 1  # the gate fails
    report = json.loads((report_dir / "report.json").read_text())
    assert report["selected"] == 1 and report["failed"] == 1
    assert report["results"][0]["symbol"] == "negate" and report["results"][0]["ok"] is False
    assert "| implement | lib.c | `negate` | FAILED |" in (report_dir / "report.md").read_text()


def test_ctrl_c_stops_the_check_without_a_report(repo: Path, tmp_path_factory, monkeypatch, capsys):
    """The running action was cancelled (Ctrl-C): no further action runs, no report and no file is written."""
    from cra.clients import headless

    calls = []

    def cancelled(action, path, **kwargs):
        calls.append((action, kwargs.get("cancel_on_interrupt")))
        raise headless.ActionCancelled(f"the {action} action was cancelled")

    monkeypatch.setattr(headless, "run_action", cancelled)
    report_dir = tmp_path_factory.mktemp("report") / "out"
    args = argparse.Namespace(root=str(repo), document_undocumented=True, tests_changed_since=None,
                              implement_stubs=True, max=None, report=str(report_dir), apply=True, list=False,
                              json=False, trust=False, config=None, set=None)
    assert check_command.run(args) == 130
    assert calls == [("document", True)]  # the first action was interrupted; the others never started
    assert "cancelled; stopped, no report written" in capsys.readouterr().err
    assert not report_dir.exists() and (repo / "lib.c").read_text() == SOURCE
