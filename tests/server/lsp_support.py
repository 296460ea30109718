"""Shared constants for the language-server tests: the server command and a small C file with known lines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cra.pipeline.config import ROLES

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMAND = [sys.executable, "-m", "cra.server"]
SERVER_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

STUB_SOURCE = """\
#include <stddef.h>

/* Adds two numbers. */
int add(int a, int b) {
    return a + b;
}

int clamp(int value, int low, int high) {
    /* TODO */
    return 0;
}

int scale(int value);
"""
# 0-based lines inside each function of STUB_SOURCE.
LINE_IN_ADD = 4
LINE_IN_CLAMP = 9
LINE_OF_SCALE = 12
LINE_OUTSIDE = 1


def install_client_handlers(client) -> dict:
    """Answer what a real editor answers: `client/registerCapability` (recorded) and `workspace/applyEdit`
    (applied to `state["texts"][uri]` when that document is tracked and the version matches, else refused)."""
    from lsprotocol import types

    from cra.clients.headless import _apply_text_edits

    state: dict = {"registrations": [], "texts": {}, "versions": {}, "edits": [], "answer": None}

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(ls, params: types.RegistrationParams) -> None:
        state["registrations"].extend(params.registrations)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        state["edits"].append(params.edit)
        if state["answer"] is not None:  # a test forcing the editor's answer
            return state["answer"]
        for change in params.edit.document_changes or []:
            uri, version = change.text_document.uri, change.text_document.version
            if uri not in state["texts"]:
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason=f"unknown document {uri}")
            if version is not None and version != state["versions"].get(uri):
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason="stale version")
            state["texts"][uri] = _apply_text_edits(state["texts"][uri], list(change.edits))
        return types.ApplyWorkspaceEditResult(applied=True)

    return state




def model_config(model: Path, *, context_length: int = 4096, max_tokens: int = 3000) -> dict:
    """cra.toml overrides putting `model` in every role, with long generations and a single attempt."""
    stages = ("test_generation", "implement", "documentation", "meta_plan", "part_plan", "scaffold")
    return {"models": {role: {"model": str(model), "context_length": context_length} for role in ROLES},
            "stages": {stage: {"max_tokens": max_tokens, "temperature": 0.0} for stage in stages},
            "validation": {"max_rounds": 0}}


async def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def progress_values(client) -> dict:
    """token -> list of progress values (as dicts) the client received."""
    converter = client.protocol._converter
    out = {}
    for token, values in client.progress_reports.items():
        out[token] = [v if isinstance(v, dict) else converter.unstructure(v) for v in values]
    return out


def token_reporting(client, message: str):
    """The progress token whose reports include `message` (a pipeline stage), or None."""
    for token, values in progress_values(client).items():
        if any(v.get("kind") == "report" and v.get("message") == message for v in values):
            return token
    return None


def progress_end(client, token):
    for value in progress_values(client).get(token, []):
        if value.get("kind") == "end":
            return value
    return None


def task_rows(root: Path) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(root / ".cra" / "calls.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM tasks ORDER BY started_at")]
    finally:
        db.close()


def outcome_rows(root: Path) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(root / ".cra" / "calls.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM outcomes ORDER BY at")]
    finally:
        db.close()
