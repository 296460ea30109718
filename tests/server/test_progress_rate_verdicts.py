"""The server's progress while an action runs on the tiny model, over stdio with pytest-lsp: reports with the
model's decoding speed (`N tok/s` in the message, `tokensPerSecond` in the value) and each attempt's verdict as it
lands (`attempt N passed|failed` in the message, a `verdict` object in the value), in the form the CLI's progress
display reads."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_support import SERVER_COMMAND, SERVER_ENV, STUB_SOURCE, install_client_handlers
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.clients.headless import ProgressEvent
from cra.clients.lsp_types import install_code_action_hook
from cra.clients.progress import ProgressView
from cra.pipeline.config import ROLES

pytestmark = pytest.mark.timeout(240)
SPEED = re.compile(r"^(\w+): (\d+\.\d) tok/s$")
VERDICT = re.compile(r"^(\w+): attempt (\d+) (passed|failed)\b")
# The tiny model in every role (set per test), a small context budget, one adjustment round at most.
CONFIG: dict[str, Any] = {"context": {"budget_tokens": 300}, "engine": {"threads": 2}, "validation": {"max_rounds": 1},
                          "stages": {"implement": {"max_tokens": 64, "temperature": 0.0}}}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, c_workspace: Path, long_tiny_model: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    lsp_client.cra_state = install_client_handlers(lsp_client)  # type: ignore[attr-defined]
    raw: list[dict[str, Any]] = []
    lsp_client.raw_progress = raw  # type: ignore[attr-defined]

    # pytest-lsp keeps each value as the typed LSP report, which has no room for cra's extra fields: keep the
    # values as they came off the wire as well, then let pytest-lsp's own handler record them.
    features = lsp_client.protocol.fm.features
    recorded = features[types.PROGRESS]

    def progress(params: types.ProgressParams) -> None:
        if isinstance(params.value, dict):
            raw.append({**params.value, "received": time.monotonic()})
        recorded(params)

    features[types.PROGRESS] = progress

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=c_workspace.as_uri(),
        initialization_options={"config": CONFIG | {"models": {role: {"model": str(long_tiny_model),
                                                                      "context_length": 8192} for role in ROLES}}}))
    yield
    await lsp_client.shutdown_session()


async def _run(client: LanguageClient, c_workspace: Path, action: str, symbol: str) -> dict[str, Any]:
    uri = (c_workspace / "math.c").as_uri()
    state = client.cra_state  # type: ignore[attr-defined]
    state["texts"][uri], state["versions"][uri] = STUB_SOURCE, 1
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="c", version=1, text=STUB_SOURCE)))
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=f"cra.{action}", arguments=[{"uri": uri, "symbol": symbol, "version": 1}]))


async def test_progress_carries_the_decoding_speed_and_the_attempts_verdict(client: LanguageClient,
                                                                             c_workspace: Path) -> None:
    outcome = await _run(client, c_workspace, "implement", "clamp")
    raw: list[dict[str, Any]] = client.raw_progress  # type: ignore[attr-defined]
    reports = [v for v in raw if v.get("kind") == "report"]
    stages = [v["message"] for v in reports if ":" not in v["message"]]

    speeds = [(SPEED.match(v["message"]), v) for v in reports if "tok/s" in v["message"]]
    assert speeds, f"no speed report among {[v['message'] for v in reports]}; {outcome}"
    for match, value in speeds:
        assert match is not None, value["message"]
        assert match.group(1) in stages  # said under the flow's state the progress already showed
        assert value["tokensPerSecond"] > 0
        assert float(match.group(2)) == pytest.approx(value["tokensPerSecond"], abs=0.051)
    arrivals = [value["received"] for _, value in speeds]
    assert all(later - earlier > 0.3 for earlier, later in zip(arrivals, arrivals[1:]))  # every ~0.5 s at most

    # The tiny model's bodies are cut off by the token budget: attempt 1 fails before validation, the adjustment
    # round's attempt 2 too, and the run gives up. Each attempt's verdict is told once, numbered, as it lands.
    assert outcome["ok"] is False
    verdicts = [(VERDICT.match(v["message"]), v) for v in reports if "verdict" in v]
    assert [v["verdict"]["attempt"] for _, v in verdicts] == [1, 2], [v["message"] for v in reports]
    for match, value in verdicts:
        assert match is not None, value["message"]
        verdict = value["verdict"]
        assert int(match.group(2)) == verdict["attempt"] and match.group(3) == "failed" and verdict["ok"] is False
        assert match.group(1) in stages and verdict["message"] and verdict["message"][:40] in value["message"]
    first, last = verdicts[0][1], verdicts[1][1]
    assert "incomplete" in first["verdict"]["message"]
    assert last["verdict"]["message"] == outcome["error"]
    messages = [v["message"] for v in reports]
    assert messages.index(first["message"]) < messages.index("adjust") < messages.index(last["message"])
    # The typed reports pytest-lsp keeps (what an editor shows) have the same messages.
    [typed] = client.progress_reports.values()
    shown = [v.message for v in typed if isinstance(v, types.WorkDoneProgressReport)]
    assert first["message"] in shown and last["message"] in shown and speeds[0][1]["message"] in shown

    # The CLI's display turns these very values into a speed on its status line and one verdict line.
    stream = io.StringIO()
    with ProgressView(stream, "cra implement", live=False) as view:
        for v in raw:
            view(ProgressEvent(kind=v["kind"], message=str(v.get("message") or v.get("title") or ""),
                               percent=v.get("percentage"), value=v))
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if "attempt" in line] == [
        f"cra implement: attempt 1: failed: {first['verdict']['message']}",
        f"cra implement: attempt 2: failed: {outcome['error']}"]
