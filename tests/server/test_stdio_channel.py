"""The protocol channel survives what llama.cpp does while loading a model: fd 1 pointed at /dev/null."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lsp_support import REPO_ROOT, SERVER_ENV

pytestmark = pytest.mark.timeout(30)

# A server whose handler silences fd 1 the way llama.cpp's model loader does, then answers.
SCRIPT = """
import os
from cra.server.app import create_server, start_stdio

server = create_server()

@server.feature("cra/silenceStdout")
def silence(ls, params):
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    print("stray library output")
    return {"answered": True}

start_stdio(server)
"""


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_responses_reach_the_client_while_fd_1_is_redirected():
    messages = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
                {"jsonrpc": "2.0", "id": 2, "method": "cra/silenceStdout", "params": {}},
                {"jsonrpc": "2.0", "id": 3, "method": "shutdown"},
                {"jsonrpc": "2.0", "method": "exit"}]
    done = subprocess.run([sys.executable, "-c", SCRIPT], input=b"".join(map(frame, messages)),
                          capture_output=True, env=SERVER_ENV, cwd=REPO_ROOT, timeout=25)
    out = done.stdout
    assert b'"answered": true' in out and b'"id": 3' in out
    assert b"stray library output" not in out  # stray prints never corrupt the JSON-RPC stream
