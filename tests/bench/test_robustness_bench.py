"""`cra bench robustness`: fuzz cases against a real `cra lsp`, counted; a server that drops requests or dies is
counted as such; bad options are clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cra.bench.robustness import measure

pytestmark = pytest.mark.timeout(240)
REPO_ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
CLI = [sys.executable, "-m", "cra.clients.cli", "bench", "robustness"]

# A server that answers `initialize` and code actions only, and dies when it reads a hover for line 0.
FLAKY_SERVER = r"""
import json, sys
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
def send(message):
    body = json.dumps(message).encode()
    stdout.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stdout.flush()
while True:
    length = None
    while True:
        line = stdin.readline()
        if not line:
            sys.exit(0)
        if not line.strip():
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    message = json.loads(stdin.read(length))
    method = message.get("method")
    if method == "exit":
        sys.exit(0)
    if method == "textDocument/hover" and message["params"]["position"]["line"] == 0:
        sys.exit(3)
    if "id" in message and method in ("initialize", "textDocument/codeAction", "shutdown"):
        send({"jsonrpc": "2.0", "id": message["id"], "result": {"capabilities": {}} if method == "initialize"
              else [{"title": "x"}] if method == "textDocument/codeAction" else None})
"""


def test_the_bench_fuzzes_cra_lsp_and_reports_the_counts():
    done = subprocess.run([*CLI, "--json", "--cases", "120", "--seed", "3"], capture_output=True, text=True,
                          env=ENV, cwd=REPO_ROOT, timeout=200)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["cases"] == 120 and sum(report["by_kind"].values()) == 120
    assert set(report["by_kind"]) == {"params", "command", "framing", "body", "document"}
    assert (report["crashes"], report["hangs"], report["unanswered"]) == (0, 0, 0), report["failures"]
    # Escapes come from the sandbox's containment probe, run once: none get out, or it says why it did not run.
    if report["escapes"] is None:
        assert report["escape_attempts"] == 0 and report["containment"].startswith("not probed: ")
    else:
        assert report["escape_attempts"] >= 1 and report["escapes"] == 0, report["containment"]


def test_the_bench_counts_a_server_that_drops_requests_and_dies():
    report = measure(15, seed=1, timeout=0.2, command=[sys.executable, "-c", FLAKY_SERVER], probe=False)
    assert report.unanswered > 0
    assert report.crashes > 0  # the framing cases' hover is on line 0
    assert report.failures and report.failures[0]["kind"]


def test_the_table_names_each_count():
    done = subprocess.run([*CLI, "--cases", "5", "--no-containment"], capture_output=True, text=True, env=ENV,
                          cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    for row in ("cases tried | 5", "crashes (process died) | 0", "unanswered requests | 0",
                "escapes (containment probe) | not probed", "sandbox | not probed (--no-containment)"):
        assert row in done.stdout


@pytest.mark.parametrize("argv, message", [(["--cases", "0"], "--cases must be at least 1"),
                                           (["--timeout", "0"], "--timeout must be positive")])
def test_bad_options_are_clear_errors(argv: list[str], message: str):
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, env=ENV, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 2 and message in done.stderr
