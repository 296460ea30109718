"""`cra bench startup`: how long the `cra` command takes to start, run as a user runs it (wall time, subprocesses).

`cra --help`, `cra lsp --help`, `python -c "import cra.clients.cli"` and the time until `cra lsp` answers
`initialize` over stdio (a raw JSON-RPC exchange), each over N runs (min, median, max). The bare interpreter's
start (`python -c pass`) is the floor. Target: `cra --help` under 0.15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP_TARGET_S = 0.15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=10, help="runs per measurement (default 10)")
    parser.add_argument("--cra", help="the `cra` entry-point script to time (default: the one installed beside "
                                      "this Python, else the first on PATH)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one run may take (default 60)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


class StartupError(Exception):
    """A timed command failed or did not answer; the message says which and why."""


def find_cra(explicit: str | None = None) -> str:
    """The installed `cra` script: `explicit`, else beside `sys.executable` (the virtualenv's), else on PATH."""
    if explicit:
        if not Path(explicit).is_file():
            raise StartupError(f"--cra {explicit}: no such file")
        return explicit
    beside = Path(sys.executable).parent / ("cra.exe" if os.name == "nt" else "cra")
    if beside.is_file():
        return str(beside)
    found = shutil.which("cra")
    if found is None:
        raise StartupError("no `cra` script found (install cra, or pass --cra PATH)")
    return found


def time_command(argv: list[str], *, cwd: str, timeout: float) -> float:
    """Wall seconds from spawning `argv` to its exit; it must exit 0."""
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StartupError(f"`{' '.join(argv)}` ran past {timeout:g} s") from None
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise StartupError(f"`{' '.join(argv)}` exited {done.returncode}: {detail[0]}")
    return elapsed


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class _Reader:
    """JSON-RPC messages from a pipe, with a deadline (no thread: select on the descriptor)."""

    def __init__(self, stream: Any) -> None:
        self._fd = stream.fileno()
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or not self._selector.select(remaining):
            raise TimeoutError
        chunk = os.read(self._fd, 65536)
        if not chunk:
            raise EOFError
        self._buffer += chunk

    def message(self, deadline: float) -> dict[str, Any]:
        while b"\r\n\r\n" not in self._buffer:
            self._fill(deadline)
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(self._buffer) < length:
            self._fill(deadline)
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return json.loads(body)

    def close(self) -> None:
        self._selector.close()


def time_initialize(argv: list[str], *, cwd: str, timeout: float) -> float:
    """Wall seconds from spawning the server `argv` to its answer to `initialize`; then a clean shutdown."""
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"processId": os.getpid(), "rootUri": None, "capabilities": {}}}
    started = time.perf_counter()
    server = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    assert server.stdin is not None and server.stdout is not None
    reader = _Reader(server.stdout)
    try:
        server.stdin.write(_frame(initialize))
        server.stdin.flush()
        deadline = started + timeout
        while True:
            try:
                message = reader.message(deadline)
            except TimeoutError:
                raise StartupError(f"`{' '.join(argv)}` did not answer initialize within {timeout:g} s") from None
            except EOFError:
                raise StartupError(f"`{' '.join(argv)}` exited before answering initialize") from None
            if message.get("id") == 1 and "method" not in message:
                break
        elapsed = time.perf_counter() - started
        if "error" in message:
            raise StartupError(f"`{' '.join(argv)}` answered initialize with an error: {message['error']}")
        server.stdin.write(_frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        server.stdin.write(_frame({"jsonrpc": "2.0", "method": "exit"}))
        server.stdin.flush()
        server.stdin.close()
        server.wait(timeout=10)
        return elapsed
    finally:
        reader.close()
        if server.poll() is None:
            server.kill()
            server.wait()


def summarize(samples: list[float]) -> dict[str, float | int]:
    return {"n": len(samples), "min_s": round(min(samples), 4), "median_s": round(statistics.median(samples), 4),
            "max_s": round(max(samples), 4)}


def measure(cra: str, runs: int, timeout: float) -> dict[str, Any]:
    commands: dict[str, Any] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "cra --help": [cra, "--help"],
        "cra lsp --help": [cra, "lsp", "--help"],
        "python -c 'import cra.clients.cli'": [sys.executable, "-c", "import cra.clients.cli"],
    }
    samples: dict[str, list[float]] = {name: [] for name in [*commands, "cra lsp: initialize answered"]}
    with tempfile.TemporaryDirectory(prefix="cra-bench-startup-") as cwd:
        for _ in range(runs):  # interleaved: a burst of load on a shared machine hits every measurement alike
            for name, argv in commands.items():
                samples[name].append(time_command(argv, cwd=cwd, timeout=timeout))
            samples["cra lsp: initialize answered"].append(time_initialize([cra, "lsp"], cwd=cwd, timeout=timeout))
    results = {name: summarize(values) for name, values in samples.items()}
    return {"cra": cra, "python": sys.executable, "runs": runs, "load_average_1m": round(os.getloadavg()[0], 2),
            "results": results, "help_target_s": HELP_TARGET_S,
            "help_meets_target": results["cra --help"]["median_s"] < HELP_TARGET_S}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"`cra bench startup`: {report['runs']} runs each, wall seconds ({report['cra']})", "",
             "| measurement | min (s) | median (s) | max (s) |", "|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['min_s']:.3f} | {r['median_s']:.3f} | {r['max_s']:.3f} |")
    verdict = "meets" if report["help_meets_target"] else "misses"
    lines += ["", f"`cra --help` median {verdict} the {report['help_target_s']:g} s target "
                  f"(load average {report['load_average_1m']})."]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print("cra bench startup: --runs must be at least 1", file=sys.stderr)
        return 2
    try:
        report = measure(find_cra(args.cra), args.runs, args.timeout)
    except StartupError as exc:
        print(f"cra bench startup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else markdown(report))
    return 0
