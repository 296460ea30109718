"""`python -m cra.server`: the language server (same as `cra lsp`); stdio unless `--tcp`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cra.server import transport
from cra.server.startup import serve_process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cra.server", description="Run the cra language server.")
    transport.add_arguments(parser)
    args = parser.parse_args(argv)
    transport.check(parser, args)
    return serve_process(args)  # imports the server itself, the fast way (see cra.server.startup)


if __name__ == "__main__":
    sys.exit(main())
