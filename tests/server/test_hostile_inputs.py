"""Hostile files and arguments through a real LSP client: a FIFO or device named as a C file, a 20 MB document,
`cra.insertDoc` aimed outside the workspace, `cra.trust` with garbage. None blocks the server or does harm."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import LINE_IN_ADD, SERVER_COMMAND, SERVER_ENV, STUB_SOURCE, install_client_handlers
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook
from cra.server.documents import MAX_DOCUMENT_BYTES_CEILING

pytestmark = pytest.mark.timeout(90)
ANSWER_S = 5.0  # any request here must be answered well within this


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, c_workspace: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    lsp_client.cra_state = install_client_handlers(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=c_workspace.as_uri()))
    yield
    await lsp_client.shutdown_session()


def span(line: int) -> types.Range:
    return types.Range(start=types.Position(line=line, character=2), end=types.Position(line=line, character=2))


async def code_actions(client: LanguageClient, uri: str, line: int = LINE_IN_ADD):
    return await asyncio.wait_for(client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=span(line),
        context=types.CodeActionContext(diagnostics=[]))), ANSWER_S)


async def hover(client: LanguageClient, uri: str, line: int = LINE_IN_ADD):
    return await asyncio.wait_for(client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=4))),
        ANSWER_S)


async def assert_serving(client: LanguageClient, workspace: Path) -> None:
    assert await code_actions(client, (workspace / "math.c").as_uri()), "no actions on a normal file any more"


async def test_an_unopened_fifo_named_like_c_does_not_block_the_server(client: LanguageClient, c_workspace: Path):
    fifo = c_workspace / "pipe.c"
    os.mkfifo(fifo)
    assert await code_actions(client, fifo.as_uri()) is None
    assert await hover(client, fifo.as_uri()) is None
    await assert_serving(client, c_workspace)


async def test_a_c_name_linked_to_a_device_is_not_read(client: LanguageClient, c_workspace: Path):
    (c_workspace / "zero.c").symlink_to("/dev/zero")  # endless: reading it would exhaust memory
    assert await code_actions(client, (c_workspace / "zero.c").as_uri()) is None
    await assert_serving(client, c_workspace)


async def test_an_unopened_file_over_the_limit_is_not_parsed(client: LanguageClient, c_workspace: Path):
    big = c_workspace / "big.c"
    big.write_text(STUB_SOURCE * 40_000)  # ~8.8 MB
    assert await code_actions(client, big.as_uri()) is None
    await assert_serving(client, c_workspace)


async def test_a_20_mb_document_gets_a_notice_and_keystrokes_stay_cheap(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "huge.c").as_uri()
    text = "int f(int a) { return a; }\n" * 750_000  # 20.25 MB
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text=text)))
    notice = None
    deadline = time.monotonic() + ANSWER_S
    while notice is None and time.monotonic() < deadline:
        notice = next((m.message for m in client.messages if "file too large for cra" in m.message), None)
        await asyncio.sleep(0.02)
    assert notice is not None and "(20.2 MB > 1 MB)" in notice, [m.message for m in client.messages]
    worst = 0.0
    for version in range(2, 7):  # keystrokes: one character each
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=span(5), text="x")]))
        started = time.monotonic()
        assert await code_actions(client, uri, 5) is None  # no parse: no actions
        worst = max(worst, time.monotonic() - started)
    assert worst < 1.0, f"a keystroke in a 20 MB document blocked the server {worst:.2f} s"
    await assert_serving(client, c_workspace)


async def test_a_document_edited_past_the_limit_is_said_once(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "grows.c").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text=STUB_SOURCE)))
    assert await code_actions(client, uri)
    client.text_document_did_change(types.DidChangeTextDocumentParams(  # a paste of 2 MB
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(range=span(0), text="/* x */\n" * 250_000)]))
    assert await code_actions(client, uri) is None
    for version in (3, 4, 5):
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=span(1), text="y")]))
        assert await code_actions(client, uri) is None
    notices = [m.message for m in client.messages if "file too large for cra (2 MB > 1 MB)" in m.message]
    assert len(notices) == 1, [m.message for m in client.messages]


async def test_raising_the_size_setting_never_lifts_the_ceiling(client: LanguageClient, c_workspace: Path):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"cra": {"maxDocumentBytes": 10**12}}))
    uri = (c_workspace / "huge.c").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text="int g(void) { return 1; }\n" * 400_000)))  # 10.4 MB
    assert await code_actions(client, uri, 3) is None
    ceiling = f"{MAX_DOCUMENT_BYTES_CEILING / 1e6:.1f} MB"
    assert any(f"> {ceiling})" in m.message for m in client.messages), [m.message for m in client.messages]


async def insert_doc(client: LanguageClient, uri: str) -> dict:
    return await asyncio.wait_for(client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cra.insertDoc", arguments=[{"uri": uri, "symbol": "clamp", "version": None,
                                             "doc": "/** Clamps. */"}])), ANSWER_S)


async def test_insert_doc_refuses_targets_outside_the_workspace(client: LanguageClient, c_workspace: Path,
                                                                tmp_path_factory: pytest.TempPathFactory):
    outside = tmp_path_factory.mktemp("outside") / "victim.c"
    outside.write_text(STUB_SOURCE)
    (c_workspace / "link.c").symlink_to(outside)
    state = client.cra_state  # type: ignore[attr-defined]
    for target in (outside, c_workspace / "link.c", c_workspace / ".." / outside.parent.name / "victim.c"):
        result = await insert_doc(client, target.as_uri())
        assert result["ok"] is False and "outside the workspace" in result["error"], (target, result)
    assert state["edits"] == [], "an edit outside the workspace was sent to the editor"
    inside = await insert_doc(client, (c_workspace / "math.c").as_uri())  # the same request inside is sent
    assert len(state["edits"]) == 1, inside


async def test_trust_with_garbage_is_invalid_params_and_grants_nothing(client: LanguageClient):
    for arguments in ([42], ["yes"], [{"uri": 5}], [{"symbol": "x"}], [[1, 2]], [{}, {}], [None]):
        with pytest.raises(JsonRpcInvalidParams, match="cra.trust"):
            await asyncio.wait_for(client.workspace_execute_command_async(types.ExecuteCommandParams(
                command="cra.trust", arguments=arguments)), ANSWER_S)
    await asyncio.sleep(0.2)
    assert not [m for m in client.messages if "workspace trusted" in m.message]
    granted = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cra.trust", arguments=[{"uri": "file:///w/a.c", "symbol": None, "version": None}]))
    assert granted == {"ok": True, "trusted": True}
