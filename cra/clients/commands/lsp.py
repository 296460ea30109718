"""`cra lsp`: run the language server (stdio by default, as editors start it; `--tcp` for a socket)."""

from __future__ import annotations

import argparse

from cra.server import transport


def run(args: argparse.Namespace) -> int:
    # Imported here: `cra --help` and other sub-commands must not pay for pygls and the pipeline.
    from cra.server.startup import serve_process

    return serve_process(args)  # see cra.server.startup: what makes the start fast


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "lsp", help="run the cra language server (stdio, or --tcp)",
        description="Run the cra language server for editors (VS Code, Neovim, ...): over stdin/stdout by default "
                    "(`--stdio`, which editors pass, changes nothing), or listening on a TCP socket (`--tcp`).")
    transport.add_arguments(parser)

    def checked(args: argparse.Namespace) -> int:
        transport.check(parser, args)
        return run(args)

    parser.set_defaults(func=checked)
