"""What a careless or hostile client sends over stdio never kills or silences a real `cra lsp`: each case is
answered (an error for what cannot be handled) and the server answers a normal request afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_support import SERVER_ENV

from cra.bench.robustness import LspProcess, Session, frame, make_workspace, server_command
from cra.server.framing import MAX_FRAME_BYTES

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    workspace = make_workspace(tmp_path_factory.mktemp("framing") / "ws")
    live = Session(server_command(), workspace, env=SERVER_ENV, timeout=TIMEOUT)
    yield live
    assert live.close() == 0


def assert_alive(session: Session) -> None:
    answer = session.liveness()
    assert answer is not None and session.server.alive, "the server stopped answering"
    assert isinstance(answer.get("result"), list) and answer["result"], answer


def hover_body(session: Session, msg_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/hover", "params": {
        "textDocument": {"uri": session.uri}, "position": {"line": 3, "character": 4}}}).encode()


def wait_null_errors(server: LspProcess, count: int) -> list[dict]:
    import time

    deadline = time.monotonic() + TIMEOUT
    while len(server.null_id_errors) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.null_id_errors[-count:] if len(server.null_id_errors) >= count else []


def test_a_terabyte_content_length_is_refused_and_the_server_keeps_serving(session: Session):
    server = session.server
    before = len(server.null_id_errors)
    msg_id = server.new_id()
    body = hover_body(session, msg_id)
    server.send_bytes(b"Content-Length: 1000000000000\r\n\r\n" + body)
    [error] = wait_null_errors(server, before + 1)[-1:]
    assert error["error"]["code"] == -32600 and f"{MAX_FRAME_BYTES:,}" in error["error"]["message"]
    assert_alive(session)


@pytest.mark.parametrize("header", [b"", b"Content-Length: 0\r\n", b"Content-Length: -12\r\n",
                                    b"Content-Length: twelve\r\n", b"Content-Type: application/json\r\n"])
def test_a_frame_without_a_usable_length_does_not_deafen_the_server(session: Session, header: bytes):
    server = session.server
    lost, kept = server.new_id(), server.new_id()
    # The bad frame's body, then at once (glued, as a real client writes them) a good frame.
    good = hover_body(session, kept)
    server.send_bytes(header + b"\r\n" + hover_body(session, lost)
                      + b"Content-Length: %d\r\n\r\n" % len(good) + good)
    assert server.wait_for(kept, TIMEOUT) is not None, "the frame after a bad one was not read"
    assert "result" in server.responses[kept]
    assert_alive(session)


def test_header_names_are_read_case_insensitively(session: Session):
    server = session.server
    msg_id = server.new_id()
    body = hover_body(session, msg_id)
    server.send_bytes(b"content-length: %d\r\ncontent-type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
                      % len(body) + body)
    assert server.wait_for(msg_id, TIMEOUT) is not None


def test_a_frame_split_into_pieces_is_read_whole(session: Session):
    server = session.server
    msg_id = server.new_id()
    data = frame(json.loads(hover_body(session, msg_id)))
    for start in range(0, len(data), 7):
        server.send_bytes(data[start:start + 7])
    assert server.wait_for(msg_id, TIMEOUT) is not None


@pytest.mark.parametrize("body", [b"{not json", b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
                                  b"[" * 50_000 + b"]" * 50_000])
def test_a_body_that_is_not_json_gets_a_parse_error(session: Session, body: bytes):
    server = session.server
    before = len(server.null_id_errors)
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    errors = wait_null_errors(server, before + 1)
    assert errors and errors[-1]["error"]["code"] == -32700
    assert_alive(session)


@pytest.mark.parametrize("body", [b"[]", b"42", b'"hello"', b"null"])
def test_a_body_that_is_not_an_object_is_an_invalid_request(session: Session, body: bytes):
    server = session.server
    before = len(server.null_id_errors)
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    errors = wait_null_errors(server, before + 1)
    assert errors and errors[-1]["error"]["code"] == -32600
    assert_alive(session)


@pytest.mark.parametrize("method", ["textDocument/hover", "initialize", "textDocument/codeAction",
                                    "workspace/executeCommand", "codeAction/resolve"])
@pytest.mark.parametrize("params", [None, [], "text", {"textDocument": 5}])
def test_params_of_the_wrong_type_are_answered_with_invalid_params(session: Session, method: str, params):
    server = session.server
    answer = server.request(method, params, timeout=TIMEOUT)
    assert answer is not None, f"{method} with params {params!r} was never answered"
    assert answer["error"]["code"] == -32602, answer
    assert method in answer["error"]["message"]
    assert_alive(session)


@pytest.mark.parametrize("message", [
    {"jsonrpc": "1.0", "method": "textDocument/hover", "params": {}},
    {"jsonrpc": "2.0", "method": ["textDocument/hover"]},
])
def test_a_request_that_is_not_json_rpc_2_is_answered_with_its_id(session: Session, message: dict):
    server = session.server
    msg_id = server.new_id()
    server.send({**message, "id": msg_id})
    answer = server.wait_for(msg_id, TIMEOUT)
    assert answer is not None and answer["error"]["code"] == -32600


def test_an_unreadable_id_is_answered_with_id_null(session: Session):
    server = session.server
    before = len(server.null_id_errors)
    server.send({"jsonrpc": "2.0", "id": {"no": "objects"}, "method": "textDocument/hover"})
    errors = wait_null_errors(server, before + 1)
    assert errors and errors[-1]["error"]["code"] == -32600
    assert_alive(session)


def test_requests_after_shutdown_are_refused_not_ignored(tmp_path: Path):
    live = Session(server_command(), make_workspace(tmp_path / "ws"), env=SERVER_ENV, timeout=TIMEOUT)
    server = live.server
    assert server.request("shutdown", None, timeout=TIMEOUT) is not None
    answer = server.request("textDocument/hover", {"textDocument": {"uri": live.uri},
                                                   "position": {"line": 0, "character": 0}}, timeout=TIMEOUT)
    assert answer is not None and answer["error"]["code"] == -32600 and "shutting down" in answer["error"]["message"]
    server.send({"jsonrpc": "2.0", "method": "exit"})
    assert server.process.wait(TIMEOUT) == 0
