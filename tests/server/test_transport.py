"""How editors start the server: `cra lsp --stdio` (vscode-languageclient appends `--stdio` to the command of a
stdio server), `python -m cra.server --stdio`, `--tcp --host H --port P`, and clear errors for bad options."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import LINE_IN_CLAMP, REPO_ROOT, SERVER_ENV, install_client_handlers
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook

pytestmark = pytest.mark.timeout(60)

CLI = [sys.executable, "-m", "cra.clients.cli"]


async def start(client: LanguageClient, root: Path) -> None:
    install_code_action_hook(client.protocol._converter)
    install_client_handlers(client)
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=root.as_uri()))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[*CLI, "lsp", "--stdio"], server_env=SERVER_ENV))
async def cli_client(lsp_client: LanguageClient, c_workspace: Path):
    await start(lsp_client, c_workspace)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "cra.server", "--stdio"],
                                              server_env=SERVER_ENV))
async def module_client(lsp_client: LanguageClient, c_workspace: Path):
    await start(lsp_client, c_workspace)
    yield
    await lsp_client.shutdown_session()


async def offers_implement(client: LanguageClient, root: Path) -> None:
    uri = (root / "math.c").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text=(root / "math.c").read_text())))
    position = types.Position(line=LINE_IN_CLAMP, character=0)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
        context=types.CodeActionContext(diagnostics=[])))
    assert "cra.implement" in [action.command.command for action in actions or []]


async def test_cra_lsp_accepts_the_stdio_flag_editors_append(cli_client: LanguageClient, c_workspace: Path):
    await offers_implement(cli_client, c_workspace)


async def test_python_m_cra_server_accepts_the_stdio_flag(module_client: LanguageClient, c_workspace: Path):
    await offers_implement(module_client, c_workspace)


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stream) -> dict:
    length = None
    while True:
        line = stream.readline()
        assert line, "the server closed the connection"
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    assert length is not None
    return json.loads(stream.read(length))


def read_response(stream, msg_id: int) -> dict:
    while True:
        message = read_message(stream)
        if message.get("id") == msg_id and "method" not in message:
            return message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect(port: int, process: subprocess.Popen, timeout: float = 30.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.communicate()[1].decode()}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_tcp_initialize_exchange(c_workspace: Path):
    port = free_port()
    process = subprocess.Popen([*CLI, "lsp", "--tcp", "--host", "127.0.0.1", "--port", str(port)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=SERVER_ENV, cwd=REPO_ROOT)
    try:
        with connect(port, process) as conn, conn.makefile("rb") as stream:
            conn.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "processId": None, "rootUri": c_workspace.as_uri(), "capabilities": {}}}))
            answer = read_response(stream, 1)
            capabilities = answer["result"]["capabilities"]
            assert capabilities["codeActionProvider"]["resolveProvider"] is True
            assert "cra.implement" in capabilities["executeCommandProvider"]["commands"]
            assert answer["result"]["serverInfo"]["name"] == "cra"
            conn.sendall(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
            conn.sendall(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
            assert read_response(stream, 2)["result"] is None
            conn.sendall(frame({"jsonrpc": "2.0", "method": "exit"}))
            assert process.wait(timeout=20) == 0
        assert f"127.0.0.1:{port}" in process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("argv", "message"), [
    (["--stdio", "--tcp"], "--stdio and --tcp exclude each other"),
    (["--port", "2087"], "--host and --port only apply with --tcp"),
    (["--stdio", "--host", "127.0.0.1"], "--host and --port only apply with --tcp"),
    (["--tcp", "--port", "70000"], "--port must be between 1 and 65535"),
    (["--socket=6009"], "unrecognized arguments: --socket=6009"),
])
@pytest.mark.parametrize("command", [[*CLI, "lsp"], [sys.executable, "-m", "cra.server"]])
def test_bad_transport_options_are_refused_clearly(command: list[str], argv: list[str], message: str):
    done = subprocess.run([*command, *argv], stdin=subprocess.DEVNULL, capture_output=True, env=SERVER_ENV,
                          cwd=REPO_ROOT, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert done.stdout == b""


def test_tcp_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*CLI, "lsp", "--tcp", "--port", str(port)], stdin=subprocess.DEVNULL,
                              capture_output=True, env=SERVER_ENV, cwd=REPO_ROOT, timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()
