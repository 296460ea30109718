"""No cold start: the server answers `initialize` before importing the pipeline, prepares the pipeline, the message
converter and the index in the background (without loading llama.cpp), and code actions never wait for that."""

from __future__ import annotations

import asyncio
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
from cra.pipeline.actions import ACTIONS

pytestmark = pytest.mark.timeout(60)

HEAVY = ("llama_cpp", "numpy", "tree_sitter", "cra.pipeline.context", "cra.pipeline.orchestrator",
         "cra.pipeline.runtime")

# A server reporting what it has prepared; with BLOCK set, its pipeline import and index build wait for
# `test/release` (as if they took very long).
SCRIPT = """
import os, sys, threading
from cra.server.app import create_server, start_stdio
from cra.server.runner import PipelineRunner

release = threading.Event()

class Runner(PipelineRunner):
    def warm_up(self):
        if os.environ.get("BLOCK"):
            release.wait(30)
        super().warm_up()

server = create_server(Runner())

@server.feature("test/state")
def state(ls, params):
    root = ls.root_path()
    workspace = ls.runner.known_workspace(root) if root else None
    return {"loaded": ls.runner.loaded_actions() is not None,
            "index": workspace is not None and workspace.index is not None,
            "modules": [name for name in HEAVY if name in sys.modules]}

@server.feature("test/release")
def release_it(ls, params):
    release.set()
    return True

start_stdio(server)
""".replace("HEAVY", repr(HEAVY))


def test_importing_the_server_loads_no_pipeline():
    code = f"import sys; from cra.server.app import create_server; create_server(); " \
           f"print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=SERVER_ENV,
                          cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_warm_messages_are_valid():
    from cra.server import lifecycle, pygls_compat
    from cra.server.app import create_server

    server = create_server()
    pygls_compat.warm_converter(server, lifecycle._warm_messages(), lifecycle._warm_results())


async def initialize(client: LanguageClient, root: Path) -> None:
    install_code_action_hook(client.protocol._converter)
    install_client_handlers(client)
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=root.as_uri()))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-c", SCRIPT], server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, c_workspace: Path):
    await initialize(lsp_client, c_workspace)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-c", SCRIPT],
                                              server_env={**SERVER_ENV, "BLOCK": "1"}))
async def blocked_client(lsp_client: LanguageClient, c_workspace: Path):
    await initialize(lsp_client, c_workspace)
    yield
    await lsp_client.protocol.send_request_async("test/release", {})
    await lsp_client.shutdown_session()


async def code_actions(client: LanguageClient, uri: str) -> list[str]:
    position = types.Position(line=LINE_IN_CLAMP, character=0)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
        context=types.CodeActionContext(diagnostics=[])))
    return [action.command.command for action in actions or []]


async def server_state(client: LanguageClient):
    """What the server has prepared (an object with `loaded`, `index`, `modules`)."""
    return await client.protocol.send_request_async("test/state", {})


def open_math(client: LanguageClient, root: Path) -> str:
    uri = (root / "math.c").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text=(root / "math.c").read_text())))
    return uri


async def test_background_preparation_loads_pipeline_and_index_but_not_llama_cpp(client: LanguageClient):
    ready = None
    for _ in range(600):
        ready = await server_state(client)
        if ready.loaded and ready.index:
            break
        await asyncio.sleep(0.05)
    assert ready.loaded and ready.index, ready
    assert "cra.pipeline.orchestrator" in ready.modules and "tree_sitter" in ready.modules
    assert "llama_cpp" not in ready.modules  # the engine is created by the first action, not ahead of it


async def test_code_actions_do_not_wait_for_the_pipeline_or_the_index(blocked_client: LanguageClient,
                                                                      c_workspace: Path):
    uri = open_math(blocked_client, c_workspace)
    started = time.monotonic()
    offered = await code_actions(blocked_client, uri)
    elapsed = time.monotonic() - started
    # Until the pipeline is loaded every action is offered (running one then says when it is not available).
    assert offered == [f"cra.{action}" for action in ("implement", "document", "plan", "scaffold")
                       if action in ACTIONS]
    assert elapsed < 10, f"the code action waited {elapsed:.1f} s"
    state = await server_state(blocked_client)
    assert not state.loaded and not state.index  # still blocked: the answer did not wait for them
    await blocked_client.protocol.send_request_async("test/release", {})
    assert "cra.implement" in await code_actions(blocked_client, uri)
