"""initialize / initialized / shutdown, settings (initializationOptions, pushed or pulled), and watching cra.toml.

`initialize` is answered before anything heavy happens. Right after the answer the server prepares in the
background, on one thread, what the first requests would otherwise pay for: the converter's functions for the
messages editors send first, the pipeline's import (C parser, stages) and, after `initialized` (with the settings
known), the workspace's config and symbol index. Requests never wait for the index.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from . import pygls_compat
from .documents import uri_to_path
from .runner import CONFIG_FILENAME
from .server import CraLanguageServer
from .settings import SECTION

logger = logging.getLogger(__name__)

# How long shutdown waits for cancelled jobs to stop (the engine stops a cancelled call within 200 ms).
SHUTDOWN_GRACE_S = 5.0
_WARM_URI = "file:///cra-warm-up/warm.c"
_WARM_SOURCE = "int warm(int x) {\n    return x;\n}\n"


def _warm_messages() -> list[dict[str, Any]]:
    """One of each message an editor sends first, as read from the wire."""
    document = {"uri": _WARM_URI}
    position = {"line": 0, "character": 0}
    span = {"start": position, "end": position}
    return [{"jsonrpc": "2.0", "method": method, "params": params} for method, params in (
        (types.TEXT_DOCUMENT_DID_OPEN, {"textDocument": {**document, "languageId": "c", "version": 1,
                                                         "text": _WARM_SOURCE}}),
        (types.TEXT_DOCUMENT_DID_CHANGE, {"textDocument": {**document, "version": 2},
                                          "contentChanges": [{"range": span, "text": ""}, {"text": ""}]}),
        (types.TEXT_DOCUMENT_DID_CLOSE, {"textDocument": document}),
    )] + [{"jsonrpc": "2.0", "id": f"cra-warm-{index}", "method": method, "params": params}
          for index, (method, params) in enumerate((
              (types.TEXT_DOCUMENT_CODE_ACTION, {"textDocument": document, "range": span, "context": {
                  "diagnostics": [{"range": span, "message": "m", "severity": 1, "source": "s"}],
                  "only": ["refactor"], "triggerKind": 1}}),
              (types.TEXT_DOCUMENT_HOVER, {"textDocument": document, "position": position}),
              (types.WORKSPACE_EXECUTE_COMMAND, {"command": "cra.implement", "arguments": [document]}),
          ))]


def _warm_results() -> list[Any]:
    """One of each value the server sends back first."""
    span = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0))
    command = types.Command(title="t", command="cra.implement", arguments=[{"uri": _WARM_URI, "version": 1}])
    return [[types.CodeAction(title="t", kind="refactor.rewrite.cra.implement", command=command)],
            types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="v"), range=span),
            types.PublishDiagnosticsParams(uri=_WARM_URI, version=1, diagnostics=[types.Diagnostic(
                range=span, message="m", severity=types.DiagnosticSeverity.Warning, source="cra", code="c")])]


# The messages an editor sends right after `initialized` (the converter's functions for them are built first).
_OPENING = frozenset({types.TEXT_DOCUMENT_DID_OPEN, types.TEXT_DOCUMENT_CODE_ACTION})


def _prepare_protocol(ls: CraLanguageServer) -> None:
    messages, results = _warm_messages(), _warm_results()
    try:
        # What the first code action needs (didOpen, the request, its list of actions), then the rest.
        pygls_compat.warm_converter(ls, [m for m in messages if m["method"] in _OPENING], results[:1])
        pygls_compat.warm_converter(ls, [m for m in messages if m["method"] not in _OPENING], results[1:])
    except Exception as exc:  # only an optimisation: the first real message builds what is missing
        logger.warning("could not prepare the message converter: %s", exc)


def _prepare_parser() -> None:
    from .symbols import functions_in

    try:
        functions_in(_WARM_SOURCE.encode())  # loads the C grammar and the parser's code paths
    except Exception as exc:  # a broken parser is reported when a document is parsed
        logger.warning("could not prepare the C parser: %s", exc)


def start_background(ls: CraLanguageServer) -> None:
    """Queue the background preparation (once `initialize` has been answered), what the first code action needs
    first: the message converter, the C parser, then the rest of the pipeline."""
    ls.background.submit(_prepare_protocol, ls)
    ls.background.submit(_prepare_parser)
    ls.load_pipeline()


def _build_index(ls: CraLanguageServer, root: str) -> None:
    """Prepare the workspace (config, symbol index from its on-disk cache) so the first action starts at once."""
    try:
        ls.runner.build_index(root, ls.settings)
    except Exception as exc:  # a broken cra.toml or unreadable tree: reported when an action runs
        logger.warning("cannot prepare the workspace %s: %s", root, exc)


async def _watch_config_file(ls: CraLanguageServer) -> None:
    """Ask the client to tell us when cra.toml changes; without that the runner checks its mtime per action."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace else None
    if not (watched and watched.dynamic_registration):
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern=f"**/{CONFIG_FILENAME}")])
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[types.Registration(
            id=f"cra-config-{uuid.uuid4().hex}", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=options)]))
    except Exception as exc:  # the client refused: fall back to checking the file before each action
        logger.warning("client refused to watch %s: %s", CONFIG_FILENAME, exc)
        return
    ls.runner.watching_config = True


async def _pull_settings(ls: CraLanguageServer) -> None:
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.configuration):
        return
    try:
        values = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)]))
    except JsonRpcException as exc:
        logger.warning("workspace/configuration failed: %s", exc)
        return
    if values and values[0]:
        ls.apply_settings(values[0])


def register(server: CraLanguageServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: CraLanguageServer, params: types.InitializeParams) -> None:
        ls.init_options = params.initialization_options
        ls.apply_settings()
        # pygls writes the answer when this handler returns, in the same loop step: start after it.
        asyncio.get_running_loop().call_soon(start_background, ls)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CraLanguageServer, params: types.InitializedParams) -> None:
        await _pull_settings(ls)
        await _watch_config_file(ls)
        root = ls.root_path()
        if root:
            ls.background.submit(_build_index, ls, root)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: CraLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            if change.uri.startswith("file:") and change.uri.endswith("/" + CONFIG_FILENAME):
                for root in ls.runner.config_changed(uri_to_path(change.uri)):
                    ls.reload_config(root)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: CraLanguageServer, params: types.DidChangeConfigurationParams) -> None:
        # Neovim 0.7 pushes the settings here; clients that support pulling send null and expect a pull.
        if params.settings:
            ls.apply_settings(params.settings)
        else:
            await _pull_settings(ls)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CraLanguageServer, params: None) -> None:
        # Cancel and drain running jobs first: pygls cancels pending requests after this handler and fails with
        # "dictionary changed size during iteration" if a command is still in flight.
        ls.jobs.cancel_all()
        ls.docgen.cancel_all()
        await ls.jobs.wait_all(SHUTDOWN_GRACE_S)
        await ls.docgen.wait_all(SHUTDOWN_GRACE_S)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while time.monotonic() < deadline and any(
                pygls_compat.request_pending(ls, request) for request in ls.active_requests):
            await asyncio.sleep(0.01)
        ls.close()
