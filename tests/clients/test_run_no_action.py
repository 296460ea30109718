"""`cra run` never hangs when no action can run: it exits promptly with an error that says why (a stub for
tests, an implemented function for implement, a binary file, a too-large file, a server that offers nothing or
does not answer). Real `cra lsp` servers, and raw JSON-RPC servers for the misbehaving ones."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pytest

from cra.clients import headless
from cra.clients.commands import run as run_command
from cra.clients.headless import ActionUnavailable, HeadlessError, run_action

STUB = "int add(int a, int b) {\n    return 0;\n}\n"
IMPLEMENTED = "int add(int a, int b) {\n    return a + b;\n}\n"

# A minimal LSP server: answers initialize and shutdown; codeAction with [] ("offers nothing") or never ("silent").
RAW_SERVER = r"""
import json, sys
mode = sys.argv[1]
def read():
    length = None
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            sys.exit(0)
        if line.strip() == b"":
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return json.loads(sys.stdin.buffer.read(length))
def send(msg_id, result):
    data = json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}).encode()
    sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
    sys.stdout.buffer.flush()
while True:
    msg = read()
    method = msg.get("method")
    if method == "exit":
        sys.exit(0)
    if "id" not in msg:
        continue
    if method == "initialize":
        send(msg["id"], {"capabilities": {}})
    elif method == "textDocument/codeAction" and mode == "empty":
        send(msg["id"], [])
    elif method == "shutdown":
        send(msg["id"], None)
"""


def cra_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, float]:
    parser = argparse.ArgumentParser(prog="cra")
    run_command.register(parser.add_subparsers())
    parsed = parser.parse_args(["run", *args])
    started = time.monotonic()
    code = parsed.func(parsed)
    return code, capsys.readouterr().err, time.monotonic() - started


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("action", "text", "expected"), [
    ("tests", STUB, "no tests action for `add`: its body is a stub"),
    ("implement", IMPLEMENTED, "no implement action for `add`: it already has a body"),
    ("implement", STUB.replace("return 0;", "return\x000;"), "contains a NUL byte on line 2: it looks like a binary"),
    ("document", IMPLEMENTED + "/* " + "x" * (50 * 1024 * 1024) + " */\n", "too large: 52,428,"),
])
def test_no_such_action_exits_promptly_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str,
                                                  text: str, expected: str) -> None:
    target = tmp_path / "m.c"
    target.write_text(text)
    code, err, seconds = cra_run(capsys, action, str(target), "--symbol", "add")
    assert code == 2 and expected in err, err
    assert seconds < 30
    assert target.read_text() == text


@pytest.mark.timeout(60)
def test_a_server_that_offers_nothing_is_a_prompt_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "m.c"
    target.write_text(STUB)
    server = tmp_path / "server.py"
    server.write_text(RAW_SERVER)
    started = time.monotonic()
    with pytest.raises(ActionUnavailable, match="the implement action is not available for `add`"):
        run_action("implement", target, symbol="add", server_argv=[sys.executable, str(server), "empty"])
    assert time.monotonic() - started < 3  # shut down at once, not left to time out


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_is_not_waited_on_forever(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "REQUEST_WAIT_S", 2.0)
    target = tmp_path / "m.c"
    target.write_text(STUB)
    server = tmp_path / "server.py"
    server.write_text(RAW_SERVER)
    started = time.monotonic()
    with pytest.raises(HeadlessError, match="did not answer codeAction within 2 s"):
        run_action("implement", target, symbol="add", server_argv=[sys.executable, str(server), "silent"])
    assert time.monotonic() - started < 5
