"""Every action end to end over stdio with the tiny random model: a result of the documented shape, progress
begin → report → end, no edit on failure, a versioned TextDocumentEdit on success, the file on disk untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import (
    SERVER_COMMAND,
    SERVER_ENV,
    STUB_SOURCE,
    install_client_handlers,
    model_config,
    progress_values,
    task_rows,
)
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook
from cra.server.runner import PipelineRunner

pytestmark = pytest.mark.timeout(240)

TARGETS = {"document": "add", "implement": "clamp", "tests": "add", "plan": None, "scaffold": None}
AVAILABLE = [a for a in TARGETS if a in PipelineRunner().available_actions()]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, c_workspace: Path, tiny_model_path: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    lsp_client.cra_state = install_client_handlers(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=c_workspace.as_uri(),
        initialization_options={"config": model_config(tiny_model_path, context_length=512, max_tokens=48)}))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize("action", AVAILABLE)
async def test_action_answers_with_progress_and_never_corrupts_the_file(client: LanguageClient, c_workspace: Path,
                                                                        action: str):
    path = c_workspace / "math.c"
    uri = path.as_uri()
    state = client.cra_state  # type: ignore[attr-defined]
    state["texts"][uri], state["versions"][uri] = STUB_SOURCE, 1
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="c", version=1, text=STUB_SOURCE)))
    outcome = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=f"cra.{action}", arguments=[{"uri": uri, "symbol": TARGETS[action], "version": 1}]))
    assert set(outcome) >= {"ok", "task_id", "verdict", "error", "cancelled", "applied"}
    assert outcome["task_id"] and outcome["cancelled"] is False
    [values] = [v for v in progress_values(client).values()]
    kinds = [v["kind"] for v in values]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    assert all(0 <= v.get("percentage", 0) <= 100 for v in values)
    assert path.read_text() == STUB_SOURCE  # the server edits through the editor only
    rows = {row["id"]: row for row in task_rows(c_workspace)}
    assert rows[outcome["task_id"]]["action"] == action
    if outcome["ok"]:
        assert outcome["applied"] is True
        [edit] = state["edits"]
        target = [c for c in edit.document_changes if isinstance(c, types.TextDocumentEdit)][0]
        assert target.text_document.version == 1
        assert state["texts"][uri] != STUB_SOURCE
    else:
        assert outcome["error"] and outcome["applied"] is False
        assert state["edits"] == [] and state["texts"][uri] == STUB_SOURCE
        assert rows[outcome["task_id"]]["status"] in ("failed", "timeout")
