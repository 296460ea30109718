"""`cra index` and `cra context` sub-commands on a real workspace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cra.clients.commands import context as context_command
from cra.clients.commands import index as index_command


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cra")
    sub = parser.add_subparsers(dest="command")
    index_command.register(sub)
    context_command.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "math.h").write_text("/** Clamp v into [lo, hi]. */\nint clamp(int v, int lo, int hi);\n")
    (tmp_path / "math.c").write_text(
        '#include "math.h"\nint clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }\n'
        "int saturate(int v) { return clamp(v, 0, 255); }\n"
    )
    (tmp_path / "data.c").write_bytes(b"\x00\x01binary")
    return tmp_path


def test_index_json(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["index", str(workspace), "--json", "--no-cache"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 2 and report["symbols"] == 3 and report["references"] >= 4
    assert report["seconds"] >= 0 and report["parsed"] == 2
    assert report["skipped"] == [{"path": "data.c", "reason": "binary content (NUL bytes)"}]
    assert not (workspace / ".cra").exists()  # --no-cache writes nothing


def test_context_json_and_table(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["context", str(workspace / "math.c"), "saturate", "--budget", "200", "--root", str(workspace), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    chosen = {(i["name"], i["kind"]): (i["tier"], i["precision"]) for i in report["items"]}
    assert chosen[("saturate", "function")] == ("seed", "primary")
    assert chosen[("clamp", "prototype")][1] == "supporting"
    assert report["tokens"] <= 200 and "Clamp v into" in report["rendered"]
    assert run(["context", str(workspace / "math.c"), "saturate", "--root", str(workspace)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| symbol | kind | file | tier | precision | tokens |")
    assert "| saturate | function | math.c:3 | seed | primary |" in table


def test_context_errors_are_clear(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["context", str(workspace / "math.c"), "nope", "--root", str(workspace)]) == 2
    assert "no symbol named 'nope' in math.c" in capsys.readouterr().err
    assert run(["context", str(workspace / "missing.c"), "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert run(["index", str(workspace / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
