"""`cra` command line: one sub-command module per concern under `clients.commands`.

Start-up stays cheap: `cra --help` imports no command module, and `cra NAME ...` imports only the module of NAME
(each module's `register` touches argparse only; its handlers import what they run). `COMMANDS` holds each
command's one-line help for the top-level listing; `tests/clients/test_cli.py` checks it against the modules.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# command name -> (module under cra.clients.commands whose `register(subparsers)` adds it, one-line help).
# One module may add several commands; they stay next to each other here, in the order it adds them.
COMMANDS: dict[str, tuple[str, str]] = {
    "lsp": ("lsp", "run the cra language server (stdio, or --tcp)"),
    "run": ("run", "run one action on a C file (headless, through the language server)"),
    "models": ("models", "list, install and verify models"),
    "logs": ("logs", "show logged LLM calls and task outcomes"),
    "config": ("config", "inspect and validate configuration"),
    "index": ("index", "index the C/H files of a workspace with tree-sitter-c"),
    "context": ("context", "show the assembled context for a symbol of a C file"),
    "check": ("check", "run actions over a repository and fail when any fails (CI)"),
    "curate-data": ("curate", "export per-stage training pairs labelled by task outcomes"),
    "audit": ("curate", "per-stage error rates from the call log"),
    "adapters": ("curate", "the per-stage adapter map"),
    "train": ("train", "train a stage's LoRA adapter from curated pairs and register it"),
    "fuse": ("fuse", "merge a LoRA adapter into its base model (F16, Q8_0, Q6_K or Q4_K GGUF)"),
    "bench": ("bench", "run a benchmark"),
    "tests": ("tests", "detect and run a C project's tests (per program and case)"),
}
# The command modules, in order (each defines `register(subparsers)`; the parser it adds sets `func(args) -> int`).
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command `argv` names: its first word that is not an option (`cra` itself takes none but -h)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `cra` parser. Without `argv`: every command's full parser (imports every command module). With
    `argv`: only the command it names gets its full parser; the others are listed by name and help only."""
    parser = argparse.ArgumentParser(
        prog="cra", description="cra: a local, offline coding agent for C, served as a language server.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    chosen = None if argv is None else COMMANDS.get(_command_in(argv) or "", (None, ""))[0]
    for name, (module_name, help_text) in COMMANDS.items():
        if name in subparsers.choices:
            continue  # added by its module along with an earlier command
        if argv is None or module_name == chosen:
            importlib.import_module(f"cra.clients.commands.{module_name}").register(subparsers)
            if name not in subparsers.choices:
                raise RuntimeError(f"cra.clients.commands.{module_name} does not add the `{name}` command")
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cra: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cra logs | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
