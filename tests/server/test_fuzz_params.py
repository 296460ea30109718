"""Fuzzing the params of every method a real `cra lsp` handles and the arguments of every `cra.*` command: random
JSON values and mutations of valid params. Every request is answered (a result or an error), the server answers a
normal request afterwards and is still running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_support import FUZZ, check, json_values, mutations
from hypothesis import given
from hypothesis import strategies as st
from lsp_support import SERVER_ENV

from cra.bench.robustness import Case, Session, frame, make_workspace, registered_methods, server_command, templates

pytestmark = pytest.mark.timeout(180)

METHODS, REQUESTS, COMMANDS = registered_methods()


def test_the_fuzzed_methods_cover_what_the_server_registers():
    assert {"textDocument/hover", "textDocument/codeAction", "codeAction/resolve", "initialize",
            "workspace/executeCommand", "textDocument/didOpen", "textDocument/didChange"} <= set(METHODS)
    assert {"cra.implement", "cra.document", "cra.insertDoc", "cra.trust"} <= set(COMMANDS)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    live = Session(server_command(), make_workspace(tmp_path_factory.mktemp("fuzz-params") / "ws"),
                   env=SERVER_ENV, timeout=10.0)
    yield live
    assert live.close() == 0, "the server did not exit cleanly after the fuzzing"


@st.composite
def method_and_params(draw: st.DrawFn, uri: str) -> tuple[str, object, bool]:
    method = draw(st.sampled_from(METHODS))
    base = templates(uri).get(method, {})
    params = draw(st.one_of(st.none(), json_values, mutations(base)))
    return method, params, draw(st.booleans())


def send(session: Session, method: str, params: object, with_params: bool) -> None:
    message: dict = {"jsonrpc": "2.0", "method": method}
    if with_params or params is not None:
        message["params"] = params
    expected = []
    if method in REQUESTS:
        message["id"] = session.server.new_id()
        expected = [message["id"]]
    check(session, Case(kind="params", chunks=[frame(message)], expected_ids=expected))


@FUZZ
@given(data=st.data())
def test_every_method_with_random_params(session: Session, data: st.DataObject):
    method, params, with_params = data.draw(method_and_params(session.uri))
    send(session, method, params, with_params)


@FUZZ
@given(command=st.sampled_from([*COMMANDS, "cra.unknown"]), data=st.data())
def test_every_command_with_random_arguments(session: Session, command: str, data: st.DataObject):
    # A target that does not exist: a case that happens to be well-formed fails fast, never loads a model.
    argument = {"uri": session.uri.replace("math.c", "missing.c"), "symbol": "add", "version": 1, "doc": "/** d */"}
    arguments = data.draw(st.one_of(st.lists(json_values, max_size=3), json_values,
                                    mutations([argument]), st.just([argument])))
    msg_id = session.server.new_id()
    check(session, Case(kind="command", expected_ids=[msg_id], chunks=[frame({
        "jsonrpc": "2.0", "id": msg_id, "method": "workspace/executeCommand",
        "params": {"command": command, "arguments": arguments}})]))
