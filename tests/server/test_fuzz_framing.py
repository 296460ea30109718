"""Fuzzing the JSON-RPC framing of a real `cra lsp` over stdio: garbage, broken or lying headers, bodies that are not
JSON, UTF-8 or objects, frames split anywhere. After each, a well-framed request is answered, the server answers a
normal request and it is still running."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fuzz_support import FUZZ, check, json_values
from hypothesis import given
from hypothesis import strategies as st
from lsp_support import SERVER_ENV

from cra.bench.robustness import Case, Session, frame, make_workspace, server_command

pytestmark = pytest.mark.timeout(180)

# Header lines that declare no usable body: wrong, negative, zero, huge, non-numeric lengths; other headers.
BAD_HEADER_LINES = [b"Content-Length: 0\r\n", b"Content-Length: -1\r\n", b"Content-Length: abc\r\n",
                    b"Content-Length: 1000000000000\r\n", b"Content-Length: 99999999999999999999999\r\n",
                    b"Content-Length: 1.5\r\n", b"Content-Length:\r\n", b"Content-Type: text/plain\r\n",
                    b"content-length: 0x20\r\n", b"\r\n", b"\r\n\r\n", b"\n"]
_DECLARATION = re.compile(rb"content-length", re.IGNORECASE)

garbage = st.lists(st.one_of(st.sampled_from(BAD_HEADER_LINES),
                             st.binary(max_size=60).filter(lambda b: not _DECLARATION.search(b))),
                   max_size=6).map(b"".join)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    live = Session(server_command(), make_workspace(tmp_path_factory.mktemp("fuzz-framing") / "ws"),
                   env=SERVER_ENV, timeout=10.0)
    yield live
    assert live.close() == 0, "the server did not exit cleanly after the fuzzing"


def hover(session: Session) -> tuple[int, dict]:
    return session.server.request_message("textDocument/hover", {
        "textDocument": {"uri": session.uri}, "position": {"line": 3, "character": 4}})


@FUZZ
@given(junk=garbage, cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=4))
def test_garbage_before_a_frame_never_loses_the_frame(session: Session, junk: bytes, cuts: list[int]):
    msg_id, message = hover(session)
    data = junk + frame(message)
    points = sorted({c for c in cuts if c < len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    check(session, Case(kind="framing", chunks=chunks, expected_ids=[msg_id]))


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                      st.integers(min_value=1, max_value=20_000).map(lambda n: b"[" * n + b"]" * n)),
       header_name=st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
def test_any_body_in_a_well_formed_frame(session: Session, body: bytes, header_name: bytes):
    if not body:
        body = b" "
    check(session, Case(kind="body", chunks=[header_name + b": %d\r\n\r\n" % len(body) + body]))


@FUZZ
@given(message=st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"]),
                               json_values, max_size=6))
def test_any_json_rpc_shaped_object(session: Session, message: dict):
    # Whatever the fields hold, a request (id + method) with a readable id gets an answer for that id.
    expected = []
    if message.get("method") in ("shutdown", "exit"):
        message["method"] = "textDocument/hover"  # ending the session is not what is fuzzed here
    if "id" in message and "method" in message and (
            isinstance(message["id"], str) or (isinstance(message["id"], int) and not isinstance(message["id"], bool))):
        message["id"] = f"fuzz-{session.server.new_id()}"  # unique, so the answer is attributable
        expected = [message["id"]]
    check(session, Case(kind="message", chunks=[frame(message)], expected_ids=expected))
