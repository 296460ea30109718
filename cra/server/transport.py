"""How the server talks to its editor: stdio (the default; what editors start it with) or a TCP socket.

Shared by `cra lsp` and `python -m cra.server`. Light on purpose: `cra --help` imports this module to describe
the options, so pygls and the server are imported only when serving.

vscode-languageclient appends `--stdio` to the command of a server it starts with `TransportKind.stdio`, and other
clients pass it as well: it is accepted (and is the default). `--tcp` serves one client on HOST:PORT, for
debugging the server in a terminal while an editor connects to it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2087  # pygls' own default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("transport (default: stdio)")
    group.add_argument("--stdio", action="store_true",
                       help="talk JSON-RPC over stdin/stdout (the default; editors pass it)")
    group.add_argument("--tcp", action="store_true", help="listen on a TCP socket instead, for one client")
    group.add_argument("--host", help=f"address to listen on with --tcp (default {DEFAULT_HOST})")
    group.add_argument("--port", type=int, help=f"port to listen on with --tcp (default {DEFAULT_PORT})")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject option combinations that make no sense (exits with the parser's usage error)."""
    if args.stdio and args.tcp:
        parser.error("--stdio and --tcp exclude each other: choose one transport")
    if not args.tcp and (args.host is not None or args.port is not None):
        parser.error("--host and --port only apply with --tcp")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if args.host is not None and not args.host.strip():
        parser.error("--host must not be empty")


# How often a thread holding the GIL is made to pass it on (CPython's default is 5 ms). The event loop shares the
# GIL with the background threads (pipeline import, index, the stages' Python code); a request passes through
# several threads (reader, loop), each waiting up to this long, so the default adds tens of ms per request while
# background work runs.
GIL_SWITCH_INTERVAL_S = 0.001


def serve(server: LanguageServer, args: argparse.Namespace) -> int:
    """Serve until the client exits; the process's exit code."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if args.tcp:
        return serve_tcp(server, args.host or DEFAULT_HOST, args.port or DEFAULT_PORT)
    serve_stdio(server)
    return 0


def serve_stdio(server: LanguageServer) -> None:
    """Serve on stdin/stdout through private copies of the two descriptors.

    llama.cpp points fds 1 and 2 at /dev/null, process-wide, while it loads a model: a response written by the
    event loop meanwhile would vanish and the editor would wait forever. Anything a library prints to stdout would
    corrupt the JSON-RPC stream too. So the protocol gets its own descriptors and fd 1 becomes a copy of stderr.
    """
    from .wire import serve

    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(server, protocol_in, protocol_out)


def serve_tcp(server: LanguageServer, host: str, port: int) -> int:
    """Listen on host:port and serve the first client until it exits (stdout is not part of the protocol)."""
    import socket

    from .wire import serve

    print(f"cra: language server listening on {host}:{port} (TCP)", file=sys.stderr, flush=True)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family) as listener:
            connection, _ = listener.accept()
    except OSError as exc:  # address in use, unknown host, no permission
        print(f"cra: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        serve(server, connection.makefile("rb"), connection.makefile("wb"))
    finally:
        # Not closing the read file: the reader thread may be blocked in it, holding its lock; shutting the socket
        # down wakes that thread instead.
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        connection.close()
    return 0
