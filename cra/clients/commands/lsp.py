"""`cra lsp`: run the language server on stdin/stdout."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    # Imported here: `cra --help` and other sub-commands must not pay for pygls and the pipeline.
    from cra.server.app import create_server, start_stdio

    start_stdio(create_server())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "lsp", help="run the cra language server on stdio",
        description="Run the cra language server over stdin/stdout (for editors: VS Code, Neovim, ...).")
    parser.set_defaults(func=run)
