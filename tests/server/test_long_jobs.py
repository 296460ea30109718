"""Cancellation at the LSP level, with a real engine busy on a slow generated model: `$/cancelRequest`,
`window/workDoneProgress/cancel`, shutdown during a command, and a user edit while a job runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import (
    SERVER_COMMAND,
    SERVER_ENV,
    install_client_handlers,
    model_config,
    progress_end,
    task_rows,
    token_reporting,
    wait_until,
)
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SOURCE = """\
struct point { int x; int y; };

int point_x(const struct point *p) {
    return p->x;
}

int add(int a, int b) {
    return a + b;
}
"""
# The engine must stop within this after a cancel (the engine's own bound is 200 ms).
CANCEL_BOUND_S = 1.0


@pytest.fixture()
def long_workspace(tmp_path: Path) -> Path:
    (tmp_path / "geo.c").write_text(SOURCE)
    return tmp_path


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, long_workspace: Path, slow_model_path: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    lsp_client.cra_state = install_client_handlers(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=long_workspace.as_uri(),
        initialization_options={"trust": False, "config": model_config(slow_model_path)}))
    yield
    if not getattr(lsp_client, "cra_shut_down", False):
        await lsp_client.shutdown_session()


def open_geo(client: LanguageClient, root: Path) -> str:
    uri = (root / "geo.c").as_uri()
    client.cra_state["texts"][uri] = SOURCE  # type: ignore[attr-defined]
    client.cra_state["versions"][uri] = 1  # type: ignore[attr-defined]
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="c", version=1, text=SOURCE)))
    return uri


def command(action: str, uri: str, symbol: str, version: int = 1) -> types.ExecuteCommandParams:
    return types.ExecuteCommandParams(command=f"cra.{action}",
                                      arguments=[{"uri": uri, "symbol": symbol, "version": version}])


async def busy_generating(client: LanguageClient):
    """Wait until the tests action is inside the A7 generation (and a little longer); its progress token."""
    token = await wait_until(lambda: token_reporting(client, "generate_tests"), 60, "the generate_tests stage")
    await asyncio.sleep(0.4)
    assert progress_end(client, token) is None, "the generation finished before it could be cancelled"
    return token


async def still_serves(client: LanguageClient, uri: str) -> None:
    position = types.Position(line=7, character=4)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
        context=types.CodeActionContext(diagnostics=[])))
    assert any(a.command.command == "cra.tests" for a in actions or [])


async def test_progress_cancel_stops_the_engine_and_answers_cancelled(client: LanguageClient, long_workspace: Path):
    uri = open_geo(client, long_workspace)
    running = asyncio.ensure_future(client.workspace_execute_command_async(command("tests", uri, "add")))
    token = await busy_generating(client)
    started = time.monotonic()
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    outcome = await asyncio.wait_for(running, 10)
    elapsed = time.monotonic() - started
    assert outcome["cancelled"] is True and outcome["ok"] is False and outcome["applied"] is False
    assert elapsed < CANCEL_BOUND_S, f"cancel took {elapsed:.3f} s"
    assert progress_end(client, token)["message"] == "cancelled"
    rows = {row["id"]: row for row in task_rows(long_workspace)}
    assert rows[outcome["task_id"]]["status"] == "cancelled"
    assert client.cra_state["edits"] == []  # type: ignore[attr-defined]
    await still_serves(client, uri)
    print(f"progress cancel → command answered in {elapsed * 1000:.0f} ms")


async def test_cancel_request_stops_the_engine(client: LanguageClient, long_workspace: Path):
    uri = open_geo(client, long_workspace)
    msg_id = "cra-test-cancel-1"
    future = client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND, command("tests", uri, "add"),
                                          msg_id=msg_id)
    token = await busy_generating(client)
    started = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(asyncio.wrap_future(future), 10)
    end = await wait_until(lambda: progress_end(client, token), 10, "the progress end")
    elapsed = time.monotonic() - started
    assert end["message"] == "cancelled"
    assert elapsed < CANCEL_BOUND_S, f"the engine stopped {elapsed:.3f} s after $/cancelRequest"
    statuses = [row["status"] for row in task_rows(long_workspace) if row["action"] == "tests"]
    assert statuses == ["cancelled"]
    await still_serves(client, uri)
    print(f"$/cancelRequest → engine idle in {elapsed * 1000:.0f} ms")


async def test_shutdown_during_a_command_answers_cleanly(client: LanguageClient, long_workspace: Path):
    uri = open_geo(client, long_workspace)
    running = asyncio.ensure_future(client.workspace_execute_command_async(command("tests", uri, "add")))
    await busy_generating(client)
    started = time.monotonic()
    assert await asyncio.wait_for(client.shutdown_async(None), 10) is None
    outcome = await asyncio.wait_for(running, 10)
    assert outcome["cancelled"] is True
    assert time.monotonic() - started < 3 * CANCEL_BOUND_S
    client.cra_shut_down = True  # type: ignore[attr-defined]
    client.exit(None)
    assert [row["status"] for row in task_rows(long_workspace)] == ["cancelled"]


def insert_line(client: LanguageClient, uri: str, version: int, line: int, text: str) -> None:
    position = types.Position(line=line, character=0)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=position, end=position), text=text)]))
    state = client.cra_state  # type: ignore[attr-defined]
    lines = state["texts"][uri].splitlines(keepends=True)
    state["texts"][uri] = "".join(lines[:line] + [text] + lines[line:])
    state["versions"][uri] = version


async def run_document_behind_a_busy_job(client: LanguageClient, uri: str, edit_line: int) -> tuple[dict, dict]:
    """Queue `document point_x` behind a long job, edit the buffer meanwhile, then cancel the long job."""
    busy = asyncio.ensure_future(client.workspace_execute_command_async(command("tests", uri, "add")))
    token = await busy_generating(client)
    queued = asyncio.ensure_future(client.workspace_execute_command_async(command("document", uri, "point_x")))
    await asyncio.sleep(0.2)  # the document job now waits with the text of version 1
    insert_line(client, uri, 2, edit_line, "/* typed while cra worked */\n")
    await asyncio.sleep(0.1)
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    return await asyncio.wait_for(busy, 10), await asyncio.wait_for(queued, 60)


async def test_edit_elsewhere_during_a_job_is_kept_and_the_result_reanchored(client: LanguageClient,
                                                                          long_workspace: Path):
    uri = open_geo(client, long_workspace)
    busy, documented = await run_document_behind_a_busy_job(client, uri, edit_line=0)
    assert busy["cancelled"] is True
    assert documented["ok"] is True and documented["applied"] is True, documented
    text = client.cra_state["texts"][uri]  # type: ignore[attr-defined]
    assert text.startswith("/* typed while cra worked */\nstruct point")
    doc_at = text.index("/**")
    assert text.index("int point_x(") > doc_at > text.index("struct point")
    assert "@param p" in text and text.count("int add(int a, int b)") == 1
    [edit] = client.cra_state["edits"]  # type: ignore[attr-defined]
    assert edit.document_changes[0].text_document.version == 2


async def test_edit_inside_the_target_during_a_job_refuses_the_result(client: LanguageClient,
                                                                       long_workspace: Path):
    uri = open_geo(client, long_workspace)
    busy, documented = await run_document_behind_a_busy_job(client, uri, edit_line=3)  # inside point_x's body
    assert busy["cancelled"] is True
    assert documented["ok"] is False and documented["applied"] is False
    assert "edited while cra worked" in documented["error"]
    assert client.cra_state["edits"] == []  # type: ignore[attr-defined]
    assert "/* typed while cra worked */" in client.cra_state["texts"][uri]  # type: ignore[attr-defined]
