"""Hover with generated docs, the insert-doc code action, cra diagnostics, edit outcomes in the call log and
config reload, over real stdio with the real pipeline (trivial functions are documented without a model)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import SERVER_COMMAND, SERVER_ENV, install_client_handlers, model_config, outcome_rows, wait_until
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook
from cra.server.docgen import DocCache, GeneratedDoc
from cra.server.symbols import functions_in

pytestmark = pytest.mark.timeout(90)

GETTER = """\
struct point { int x; int y; };

int point_x(const struct point *p) {
    return p->x;
}
"""
# The file compiles, but a comment inserted above point_x moves the assertion's line: the change itself breaks the
# build (an error the unchanged file does not have is the change's).
BROKEN = """\
struct point { int x; int y; };

int point_x(const struct point *p) {
    return p->x;
}
_Static_assert(__LINE__ == 6, "a line above moved");
"""
FIXED = BROKEN.replace('_Static_assert(__LINE__ == 6, "a line above moved");\n', "")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, tmp_path: Path, tiny_model_path: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    lsp_client.cra_state = install_client_handlers(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri(),
        initialization_options={"config": model_config(tiny_model_path, context_length=512, max_tokens=64)}))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def writing_client(lsp_client: LanguageClient, tmp_path: Path, tiny_model_path: Path):
    """A client that writes accepted edits itself (as the headless `cra run` does) and says so at initialize."""
    install_code_action_hook(lsp_client.protocol._converter)
    lsp_client.cra_state = install_client_handlers(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri(),
        initialization_options={"config": model_config(tiny_model_path, context_length=512, max_tokens=64),
                                "clientWritesFiles": True}))
    yield
    await lsp_client.shutdown_session()


def open_file(client: LanguageClient, path: Path, text: str) -> str:
    path.write_text(text)
    uri = path.as_uri()
    client.cra_state["texts"][uri] = text  # type: ignore[attr-defined]
    client.cra_state["versions"][uri] = 1  # type: ignore[attr-defined]
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="c", version=1, text=text)))
    return uri


async def hover(client: LanguageClient, uri: str, line: int) -> str | None:
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=6)))
    return None if result is None else result.contents.value


async def actions_at(client: LanguageClient, uri: str, line: int) -> list[types.CodeAction]:
    position = types.Position(line=line, character=0)
    found = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
        context=types.CodeActionContext(diagnostics=[])))
    return list(found or [])


async def test_hover_generates_in_the_background_then_inserts(client: LanguageClient, tmp_path: Path):
    uri = open_file(client, tmp_path / "point.c", GETTER)
    assert not [a for a in await actions_at(client, uri, 2) if a.command.command == "cra.insertDoc"]
    started = time.monotonic()
    first = await hover(client, uri, 2)
    assert time.monotonic() - started < 2.0  # the budget is 300 ms; the first hover also imports the pipeline
    assert first is not None and ("generating" in first or "/**" in first)
    shown = await wait_until_hover(client, uri, 2)
    assert "@param p" in shown and "**cra: generated documentation**" in shown
    assert await hover(client, uri, 3) is None  # inside the body: nothing
    [insert] = [a for a in await actions_at(client, uri, 2) if a.command.command == "cra.insertDoc"]
    assert insert.kind == "refactor.rewrite.cra.insertDoc"
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=insert.command.command, arguments=insert.command.arguments))
    assert result["ok"] is True and result["task_id"]
    text = client.cra_state["texts"][uri]  # type: ignore[attr-defined]
    assert text.index("/**") < text.index("int point_x(") and text.count("/**") == 1
    rows = {row["task_id"]: row for row in outcome_rows(tmp_path)}
    assert rows[result["task_id"]]["edit_status"] == "applied"
    # The doc is on disk under .cra/, keyed by the function's text.
    site = functions_in(GETTER.encode())[0]
    stored = DocCache().get(str(tmp_path), site.content_hash)
    assert stored is not None and "@param p" in stored.doc


async def wait_until_hover(client: LanguageClient, uri: str, line: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = await hover(client, uri, line)
        if value and "/**" in value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("the generated doc never showed on hover")


async def test_hover_on_a_documented_function_shows_nothing(client: LanguageClient, tmp_path: Path):
    uri = open_file(client, tmp_path / "doc.c", "/** Adds. */\nint add(int a, int b) {\n    return a + b;\n}\n")
    assert await hover(client, uri, 1) is None


def cra_diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    return [d for d in client.diagnostics.get(uri, []) if d.source == "cra"]


async def document(client: LanguageClient, uri: str, version: int) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cra.document", arguments=[{"uri": uri, "symbol": "point_x", "version": version}]))


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    client.cra_state["texts"][uri] = text  # type: ignore[attr-defined]
    client.cra_state["versions"][uri] = version  # type: ignore[attr-defined]


async def test_compile_failure_is_a_diagnostic_until_a_later_success(client: LanguageClient, tmp_path: Path):
    uri = open_file(client, tmp_path / "broken.c", BROKEN)
    failed = await document(client, uri, 1)
    assert failed["ok"] is False and failed["verdict"]["compiled"] is False and failed["diagnostics"] >= 1
    shown = await wait_until(lambda: cra_diagnostics(client, uri), 10, "cra diagnostics")
    assert all(2 <= d.range.start.line <= 4 for d in shown)
    assert "does not compile" in shown[0].message and "point_x" in shown[0].message
    # The user edits the file above the function: the finding moves with the function...
    change(client, uri, 2, "/* moved */\n\n" + BROKEN)
    await wait_until(lambda: all(d.range.start.line >= 4 for d in cra_diagnostics(client, uri))
                     and cra_diagnostics(client, uri), 10, "moved diagnostics")
    # ...and the next successful action (on the fixed file) clears it.
    change(client, uri, 3, FIXED)
    fixed = await document(client, uri, 3)
    assert fixed["ok"] is True and fixed["applied"] is True
    await wait_until(lambda: uri in client.diagnostics and not cra_diagnostics(client, uri), 10, "cleared")


async def test_diagnostic_is_cleared_when_the_function_is_edited(client: LanguageClient, tmp_path: Path):
    uri = open_file(client, tmp_path / "broken.c", BROKEN)
    assert (await document(client, uri, 1))["ok"] is False
    await wait_until(lambda: cra_diagnostics(client, uri), 10, "cra diagnostics")
    change(client, uri, 2, BROKEN.replace("return p->x;", "return 0;"))
    await wait_until(lambda: not cra_diagnostics(client, uri), 10, "cleared diagnostics")


async def test_rejected_edit_is_logged(client: LanguageClient, tmp_path: Path):
    client.cra_state["answer"] = types.ApplyWorkspaceEditResult(  # type: ignore[attr-defined]
        applied=False, failure_reason="user said no")
    uri = open_file(client, tmp_path / "point.c", GETTER)
    outcome = await document(client, uri, 1)
    assert outcome["ok"] is False and outcome["applied"] is False and "user said no" in outcome["error"]
    rows = {row["task_id"]: row for row in outcome_rows(tmp_path)}
    assert rows[outcome["task_id"]]["edit_status"] == "rejected"
    assert rows[outcome["task_id"]]["reason"] == "user said no"


async def test_an_edit_a_client_writes_itself_is_only_proposed_until_it_says_so(writing_client: LanguageClient,
                                                                                tmp_path: Path):
    uri = open_file(writing_client, tmp_path / "point.c", GETTER)
    outcome = await document(writing_client, uri, 1)
    assert outcome["ok"] is True and outcome["applied"] is True
    assert {row["task_id"]: row for row in outcome_rows(tmp_path)}[outcome["task_id"]]["edit_status"] == "proposed"


async def test_broken_cra_toml_is_reported_and_its_fix_picked_up(client: LanguageClient, tmp_path: Path):
    uri = open_file(client, tmp_path / "point.c", GETTER)
    assert (await document(client, uri, 1))["ok"] is True
    config = tmp_path / "cra.toml"
    config.write_text("[validation\nmax_rounds = 1\n")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=config.as_uri(), type=types.FileChangeType.Created)]))
    await wait_until(lambda: any("invalid TOML" in m.message for m in client.messages), 10, "config error message")
    change(client, uri, 3, client.cra_state["texts"][uri])  # type: ignore[attr-defined]
    broken = await document(client, uri, 3)
    assert broken["ok"] is False and "cra.toml" in broken["error"]
    config.write_text("[validation]\nmax_rounds = 1\n")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=config.as_uri(), type=types.FileChangeType.Changed)]))
    await asyncio.sleep(0.2)
    fixed = await document(client, uri, 3)
    assert "cra.toml" not in (fixed["error"] or ""), fixed


def test_doc_cache_survives_a_new_process_and_rejects_bad_keys(tmp_path: Path):
    DocCache().put(str(tmp_path), "ab" * 16, GeneratedDoc(symbol="f", doc="/** F. */", task_id="t1"))
    again = DocCache().get(str(tmp_path), "ab" * 16)
    assert again == GeneratedDoc(symbol="f", doc="/** F. */", task_id="t1")
    assert DocCache().get(str(tmp_path), "cd" * 16) is None
    with pytest.raises(ValueError, match="content hash"):
        DocCache().get(str(tmp_path), "../../etc/passwd")
