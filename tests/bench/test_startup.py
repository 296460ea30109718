"""`cra bench startup`: the installed `cra` script and `cra lsp`'s initialize answer, timed in subprocesses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cra.bench import startup
from cra.clients.cli import main


def test_startup_bench_times_every_command_and_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "startup", "--runs", "2", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # one JSON object, nothing else on stdout
    assert set(report["results"]) == {"python -c pass", "cra --help", "cra lsp --help",
                                      "python -c 'import cra.clients.cli'", "cra lsp: initialize answered"}
    for name, r in report["results"].items():
        assert r["n"] == 2 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"], name
    assert Path(report["cra"]).name.startswith("cra") and report["help_target_s"] == 0.15
    print(startup.markdown(report))


def test_startup_bench_prints_a_markdown_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "startup", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| measurement | min (s) | median (s) | max (s) |" in out and "| cra --help |" in out


def test_a_failing_command_or_a_silent_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(startup.StartupError, match="exited 3"):
        startup.time_command([sys.executable, "-c", "raise SystemExit(3)"], cwd=str(tmp_path), timeout=30)
    with pytest.raises(startup.StartupError, match="did not answer initialize"):
        startup.time_initialize([sys.executable, "-c", "import time; time.sleep(30)"], cwd=str(tmp_path),
                                timeout=0.5)
    with pytest.raises(startup.StartupError, match="exited before answering"):
        startup.time_initialize([sys.executable, "-c", "pass"], cwd=str(tmp_path), timeout=30)


def test_bad_options_are_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "startup", "--runs", "0"]) == 2
    assert "--runs must be at least 1" in capsys.readouterr().err
    assert main(["bench", "startup", "--runs", "1", "--cra", str(tmp_path / "missing")]) == 1
    assert "no such file" in capsys.readouterr().err
