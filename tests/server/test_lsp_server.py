"""The language server over real stdio JSON-RPC: capabilities, code actions, resolve, bad input, settings."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import (
    LINE_IN_ADD,
    LINE_IN_CLAMP,
    LINE_OF_SCALE,
    LINE_OUTSIDE,
    SERVER_COMMAND,
    SERVER_ENV,
    install_client_handlers,
)
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook
from cra.server.actions import ALL_COMMANDS, CODE_ACTION_KINDS
from cra.server.runner import PipelineRunner

pytestmark = pytest.mark.timeout(60)

# What the server offers is filtered by what the orchestrator can run; ask the same code the server uses.
AVAILABLE = set(PipelineRunner().available_actions())


def expected(*commands: str) -> list[str]:
    return [c for c in commands if c.removeprefix("cra.") in AVAILABLE]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, c_workspace: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    install_client_handlers(lsp_client)
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=c_workspace.as_uri()))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def nvim_client(lsp_client: LanguageClient, c_workspace: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("neovim@v0.7"), root_uri=c_workspace.as_uri(),
        initialization_options={"trust": False}))
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, uri: str, text: str, version: int = 1, language_id: str = "c") -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)))


async def code_actions(client: LanguageClient, uri: str, line: int) -> list:
    result = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=line, character=2), end=types.Position(line=line, character=2)),
        context=types.CodeActionContext(diagnostics=[])))
    return list(result or [])


def command_names(actions: list) -> list[str]:
    assert all(isinstance(action, types.CodeAction) for action in actions), actions
    return [action.command.command for action in actions]


async def wait_for_message(client: LanguageClient, needle: str, timeout: float = 10.0) -> types.ShowMessageParams:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in client.messages:
            if needle in message.message:
                return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"no showMessage containing {needle!r}; got {[m.message for m in client.messages]}")


async def test_initialize_advertises_only_code_actions_hover_and_commands(client: LanguageClient):
    # Re-initializing is not allowed, so read the capabilities the session negotiated from the server itself.
    result = await client.protocol.send_request_async("initialize", types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code")))
    caps = result.capabilities
    assert caps.code_action_provider.resolve_provider is True
    assert set(caps.code_action_provider.code_action_kinds) == set(CODE_ACTION_KINDS)
    assert all(kind.startswith("refactor.rewrite.cra.") for kind in caps.code_action_provider.code_action_kinds)
    assert set(caps.execute_command_provider.commands) == set(ALL_COMMANDS)
    assert caps.hover_provider is True or caps.hover_provider is not None
    for name in ("completion_provider", "definition_provider", "references_provider",
                 "document_symbol_provider", "diagnostic_provider", "rename_provider", "semantic_tokens_provider",
                 "document_formatting_provider", "signature_help_provider", "inlay_hint_provider"):
        assert getattr(caps, name) is None, f"{name} must not be advertised (clangd owns it)"


async def test_code_actions_at_stub_function_are_fast(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    open_doc(client, uri, (c_workspace / "math.c").read_text())
    first = await code_actions(client, uri, LINE_IN_CLAMP)  # includes the pipeline import
    assert command_names(first) == expected("cra.implement", "cra.document", "cra.plan", "cra.scaffold")
    timings = []
    for _ in range(10):
        start = time.perf_counter()
        actions = await code_actions(client, uri, LINE_IN_CLAMP)
        timings.append((time.perf_counter() - start) * 1000)
        assert command_names(actions) == command_names(first)
    assert statistics.median(timings) < 50, timings
    print(f"code action round trip: median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms")


async def test_code_actions_depend_on_the_function(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    open_doc(client, uri, (c_workspace / "math.c").read_text())
    implemented = command_names(await code_actions(client, uri, LINE_IN_ADD))
    assert implemented == expected("cra.tests", "cra.document", "cra.plan", "cra.scaffold")
    prototype_only = command_names(await code_actions(client, uri, LINE_OF_SCALE))
    assert prototype_only == expected("cra.implement", "cra.document", "cra.plan", "cra.scaffold")
    outside = command_names(await code_actions(client, uri, LINE_OUTSIDE))
    assert outside == expected("cra.plan", "cra.scaffold")


async def test_code_actions_carry_one_argument_object(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    open_doc(client, uri, (c_workspace / "math.c").read_text(), version=7)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=LINE_IN_CLAMP, character=0),
                          end=types.Position(line=LINE_IN_CLAMP, character=0)),
        context=types.CodeActionContext(diagnostics=[], only=["refactor.rewrite.cra.implement"])))
    assert len(actions) == 1
    action = client.protocol._converter.unstructure(actions[0])
    assert action["kind"] == "refactor.rewrite.cra.implement"
    assert action["command"]["command"] == "cra.implement"
    assert action["command"]["arguments"] == [{"uri": uri, "symbol": "clamp", "version": 7}]
    assert "edit" not in action


async def test_no_code_actions_on_a_non_c_file(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "notes.py").as_uri()
    open_doc(client, uri, "def clamp(value):\n    return 0\n", language_id="python")
    assert await code_actions(client, uri, 1) == []


async def test_resolve_returns_command_only_action_unchanged(nvim_client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    open_doc(nvim_client, uri, (c_workspace / "math.c").read_text())
    offered = await code_actions(nvim_client, uri, LINE_IN_CLAMP)
    assert offered
    for action in offered:
        resolved = await nvim_client.code_action_resolve_async(action)
        assert resolved == action
        assert resolved.edit is None and resolved.command.arguments[0]["symbol"] == "clamp"


async def test_unknown_method_is_an_error_and_the_server_stays_up(client: LanguageClient, c_workspace: Path):
    with pytest.raises(Exception, match="Method Not Found|-32601|not found"):
        await client.protocol.send_request_async("cra/noSuchMethod", {})
    uri = (c_workspace / "math.c").as_uri()
    open_doc(client, uri, (c_workspace / "math.c").read_text())
    assert "cra.implement" in command_names(await code_actions(client, uri, LINE_IN_CLAMP))


def send_raw(client: LanguageClient, body: bytes) -> None:
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def test_malformed_json_is_reported_and_the_server_stays_up(client: LanguageClient, c_workspace: Path):
    send_raw(client, b'{"jsonrpc": "2.0", "id": 99, "method": "textDocument/codeAction", "params": {')
    await wait_for_message(client, "Error in server")
    uri = (c_workspace / "math.c").as_uri()
    open_doc(client, uri, (c_workspace / "math.c").read_text())
    assert "cra.implement" in command_names(await code_actions(client, uri, LINE_IN_CLAMP))


async def test_non_utf8_bytes_on_the_wire_leave_the_server_up(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    body = (b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": "'
            + uri.encode() + b'", "languageId": "c", "version": 1, "text": "int f(void) { return \xff\xfe; }"}}}')
    send_raw(client, body)
    await wait_for_message(client, "Error in server")
    open_doc(client, uri, (c_workspace / "math.c").read_text(), version=2)
    assert "cra.implement" in command_names(await code_actions(client, uri, LINE_IN_CLAMP))


async def test_undecodable_document_text_gets_a_clear_message(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "broken.c").as_uri()
    # A lone surrogate: what an editor sends for bytes it could not decode as UTF-8.
    send_raw(client, json.dumps({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "c", "version": 1, "text": "int f(void) {\n  return '\udcff';\n}\n"}}}).encode())
    message = await wait_for_message(client, "not valid UTF-8")
    assert "line 2" in message.message
    assert await code_actions(client, uri, 1) == []
    outcome = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cra.implement", arguments=[{"uri": uri, "symbol": "f", "version": 1}]))
    assert outcome["ok"] is False and "not valid UTF-8" in outcome["error"]


async def test_huge_document_is_refused_with_a_message(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "huge.c").as_uri()
    text = "int f(void) { return 0; }\n" + "/* padding */\n" * 90_000
    open_doc(client, uri, text)
    message = await wait_for_message(client, "over cra's limit")
    assert message.type == types.MessageType.Warning
    assert await code_actions(client, uri, 0) == []
    outcome = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cra.implement", arguments=[{"uri": uri, "symbol": "f", "version": 1}]))
    assert outcome["ok"] is False and "limit" in outcome["error"]
    small = (c_workspace / "math.c").as_uri()
    open_doc(client, small, (c_workspace / "math.c").read_text())
    assert "cra.implement" in command_names(await code_actions(client, small, LINE_IN_CLAMP))


async def test_bad_command_input_gives_clear_errors(client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    open_doc(client, uri, (c_workspace / "math.c").read_text(), version=3)

    async def run(arguments: list) -> dict:
        return await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="cra.implement", arguments=arguments))

    unknown = await run([{"uri": uri, "symbol": "no_such_function", "version": 3}])
    assert unknown["ok"] is False and "no_such_function" in unknown["error"]
    stale = await run([{"uri": uri, "symbol": "clamp", "version": 2}])
    assert stale["ok"] is False and "changed" in stale["error"] and "version 2, now 3" in stale["error"]
    shapeless = await run([{"symbol": "clamp"}])
    assert shapeless["ok"] is False and "uri" in shapeless["error"]
    none = await run([])
    assert none["ok"] is False and "one argument" in none["error"]
    not_c = await run([{"uri": (c_workspace / "notes.txt").as_uri(), "symbol": None, "version": None}])
    assert not_c["ok"] is False and "not a C source" in not_c["error"]
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) >= 5


async def test_trust_command(client: LanguageClient):
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="cra.trust"))
    assert result == {"ok": True, "trusted": True}
    await wait_for_message(client, "workspace trusted")


async def test_settings_pushed_by_did_change_configuration(nvim_client: LanguageClient, c_workspace: Path):
    uri = (c_workspace / "math.c").as_uri()
    text = (c_workspace / "math.c").read_text()
    nvim_client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"cra": {"maxDocumentBytes": 64}}))
    open_doc(nvim_client, uri, text)
    await wait_for_message(nvim_client, "limit of 64 bytes")
    nvim_client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"cra": {"maxDocumentBytes": "lots"}}))
    message = await wait_for_message(nvim_client, "invalid cra setting")
    assert message.type == types.MessageType.Error
