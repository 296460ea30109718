"""`cra curate-data`, `cra audit`, `cra adapters list` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from curation_data import LogFacts

from cra.clients.cli import main
from cra.pipeline.calllog import log_path


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.mark.parametrize("argv", [["curate-data", "--help"], ["audit", "--help"], ["adapters", "list", "--help"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "--root" in capsys.readouterr().out


def test_curate_data_writes_the_export(call_log: LogFacts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "training"
    code = main(["curate-data", "--root", str(call_log.root), "--out", str(out), "--min-label", "any", "--json"])
    assert code == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["pairs"] == 7
    assert sorted(p.name for p in out.glob("*.train.jsonl")) == [
        "documentation.train.jsonl", "implement.train.jsonl", "scope.train.jsonl", "test_generation.train.jsonl"]


def test_curate_data_default_out_and_table(call_log: LogFacts, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curate-data", "--root", str(call_log.root), "--stage", "documentation"]) == 0
    text = capsys.readouterr().out
    assert "| documentation | a9-documentation |" in text
    assert "1 pairs written" in text
    assert (call_log.root / ".cra" / "training" / "manifest.json").is_file()
    # A second run refuses to overwrite, and says how to.
    assert main(["curate-data", "--root", str(call_log.root)]) == 1
    assert "--force" in capsys.readouterr().err


def test_audit_json_and_table(call_log: LogFacts, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--root", str(call_log.root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    impl = next(r for r in report["stages"] if r["stage"] == "implement")
    assert impl["failed_call_rate"] == pytest.approx(0.4) and impl["downstream_failure_rate"] == pytest.approx(0.5)
    assert main(["audit", "--root", str(call_log.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| stage | code | calls | tasks |")
    assert any(line.startswith("| implement | A6 | 5 | 3 | 2 | 0.4 |") for line in lines)
    assert lines[-1].startswith("| (all) |")


def test_adapters_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "impl.gguf").write_bytes(b"GGUF")
    (tmp_path / "cra.toml").write_text('[adapters."qwen2.5-coder-1.5b"]\nimplement = "impl.gguf"\n')
    assert main(["adapters", "list", "--root", str(tmp_path), "--json"]) == 0
    rows = {r["stage"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 18
    assert rows["implement"]["exists"] is True and rows["implement"]["signal"] == "compiled_and_tests_passed"
    assert rows["scope"]["adapter"] is None and rows["scope"]["tier"] == 0
    assert rows["scope_cochange"]["parent"] == "scope"
    assert main(["adapters", "list", "--root", str(tmp_path)]) == 0
    assert "| A6 | implement | 1 | coding | qwen2.5-coder-1.5b |" in capsys.readouterr().out


def test_adapters_list_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cra.toml").write_text('[adapters."qwen2.5-coder-1.5b"]\nimplementation = "x.gguf"\n')
    assert main(["adapters", "list", "--root", str(tmp_path)]) == 1
    assert "implementation" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["curate-data"], ["audit"]])
def test_missing_log_exits_1(command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--root", str(tmp_path)]) == 1
    assert "no call log at" in capsys.readouterr().err
    assert not (tmp_path / ".cra").exists()


@pytest.mark.parametrize("command", [["curate-data"], ["audit"]])
def test_corrupt_log_exits_1(command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = log_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 1000)
    assert main([*command, "--root", str(tmp_path)]) == 1
    assert "cannot open the call log" in capsys.readouterr().err


def test_bad_arguments_exit_1(call_log: LogFacts, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(call_log.root)
    assert main(["curate-data", "--root", root, "--valid-fraction", "1.5"]) == 1
    assert "--valid-fraction" in capsys.readouterr().err
    assert main(["curate-data", "--root", root, "--since", "yesterday-ish"]) == 1
    assert "--since" in capsys.readouterr().err
    assert main(["audit", "--root", root, "--stage", "nope"]) == 1
    assert "unknown stage" in capsys.readouterr().err
