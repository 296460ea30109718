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


def _subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser:
    for name in path:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


@pytest.mark.parametrize("command", every_command(), ids=" ".join)
def test_the_lazy_parser_shows_what_the_full_one_shows(command: list[str]) -> None:
    """`cra` builds only the named command's parser; the listing and the command's own help stay the same."""
    full, lazy = build_parser(), build_parser(command)
    assert lazy.format_help() == full.format_help()
    assert _subparser(lazy, command).format_help() == _subparser(full, command).format_help()


def test_the_command_table_matches_what_the_modules_register() -> None:
    from cra.clients.cli import COMMANDS

    full = build_parser()
    action = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    registered = {choice.dest: choice.help for choice in action._choices_actions}
    # A command's help changed in its module: copy it into `COMMANDS` (cra/clients/cli.py), which `cra --help` shows.
    assert registered == {name: help_text for name, (_, help_text) in COMMANDS.items()}
    assert list(registered) == list(COMMANDS)  # same order in `cra --help`
    assert build_parser([]).format_help() == full.format_help()


HEAVY = ("msgspec", "lsprotocol", "pygls", "llama_cpp", "numpy", "tree_sitter", "cra.pipeline", "cra.server",
         "cra.training", "cra.bench")


def modules_loaded_by(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has imported after `cra ARGV` ran (help exits through SystemExit)."""
    code = ("import sys\nfrom cra.clients.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    return set(done.stderr.split())


# Light modules a command's parser may need beyond its own: `lsp` describes the server's transport options;
# `bench` reads its benchmarks' docstrings from their files (the `cra.bench` package, none of its modules).
LIGHT = {"lsp": ["cra.server", "cra.server.transport"], "bench": ["cra.bench"]}


@pytest.mark.parametrize("argv, allowed", [(["--help"], set()), (["lsp", "--help"], {"lsp"}),
                                           (["models", "--help"], {"models"}), (["logs", "--help"], {"logs"}),
                                           (["bench", "--help"], {"bench"})], ids=" ".join)
def test_help_imports_only_what_it_shows(argv: list[str], allowed: set[str]) -> None:
    loaded = modules_loaded_by(argv)
    assert "cra.clients.cli" in loaded
    commands = {m.rsplit(".", 1)[1] for m in loaded if m.startswith("cra.clients.commands.")}
    assert commands == allowed
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == LIGHT.get(argv[0], []), heavy


def test_bench_runs_its_module_only_when_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["bench", "startup", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cra bench startup") and "--runs" in out and "initialize" in out
