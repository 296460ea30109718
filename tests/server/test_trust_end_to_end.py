"""Workspace trust end to end, on the real default model: a workspace's cra.toml names a test command; until the
workspace is trusted the server never runs it (cra builds the tests itself with gcc), once trusted it does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import REPO_ROOT, SERVER_COMMAND, SERVER_ENV, install_client_handlers, model_config
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.lsp_types import install_code_action_hook

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(600)]
TEST_COMMAND = "make test"


@pytest.fixture
def ringbuf(tmp_path: Path, real_model_0_5b: Path) -> Path:
    root = tmp_path / "ringbuf"
    shutil.copytree(REPO_ROOT / "examples" / "ringbuf", root, ignore=shutil.ignore_patterns(".cra", "*.bin"))
    (root / "cra.toml").write_text(f'[validation]\ntest_command = "{TEST_COMMAND}"\n')
    return root


async def implement(client: LanguageClient, root: Path) -> dict:
    path = root / "ringbuf.c"
    uri, text = path.as_uri(), path.read_text()
    state = client.cra_state  # type: ignore[attr-defined]
    state["texts"][uri], state["versions"][uri] = text, 1
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="c", version=1, text=text)))
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="cra.implement", arguments=[{"uri": uri, "symbol": "ringbuf_pop", "version": 1}]))


async def start(client: LanguageClient, root: Path, model: Path, trust: bool) -> None:
    install_code_action_hook(client.protocol._converter)
    client.cra_state = install_client_handlers(client)  # type: ignore[attr-defined]
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=root.as_uri(),
        initialization_options={"trust": trust, "config": model_config(model, max_tokens=256)}))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def untrusted(lsp_client: LanguageClient, ringbuf: Path, real_model_0_5b: Path):
    await start(lsp_client, ringbuf, real_model_0_5b, trust=False)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def trusted(lsp_client: LanguageClient, ringbuf: Path, real_model_0_5b: Path):
    await start(lsp_client, ringbuf, real_model_0_5b, trust=True)
    yield
    await lsp_client.shutdown_session()


async def test_an_untrusted_workspace_never_runs_its_test_command(untrusted: LanguageClient, ringbuf: Path):
    outcome = await implement(untrusted, ringbuf)
    message = outcome["verdict"]["message"]
    assert outcome["verdict"]["tests_passed"] is True, outcome
    assert "gcc (direct build)" in message and TEST_COMMAND not in message


async def test_a_trusted_workspace_runs_its_test_command(trusted: LanguageClient, ringbuf: Path):
    outcome = await implement(trusted, ringbuf)
    assert outcome["verdict"]["tests_passed"] is True, outcome
    assert f"({TEST_COMMAND}:" in outcome["verdict"]["message"]
