"""The cra language server: LSP ↔ pipeline translation only (code actions, executeCommand, progress, trust).

Advertises code actions and executeCommand and nothing else, so it coexists with clangd in the same editor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import msgspec
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from pipeline.actions import ACTION_TITLES, ActionRequest, ActionResult

from . import actions as cra_actions
from .documents import DocumentError, check_document, is_c_document, uri_to_path
from .edits import EditRefused, workspace_edit
from .jobs import JobCancelled, JobRunner
from .progress import ActionProgress
from .runner import PipelineRunner, PipelineUnavailable
from .settings import SECTION, ServerSettings, SettingsError, parse_settings
from .symbols import FunctionSite, find_function, functions_in
from .trust import WorkspaceTrust

logger = logging.getLogger(__name__)

SERVER_NAME = "cra"
SERVER_VERSION = "0.1.0"
# How long shutdown waits for cancelled jobs to stop (the engine stops a cancelled call within 200 ms).
SHUTDOWN_GRACE_S = 5.0


class CommandArgument(msgspec.Struct, kw_only=True):
    """The single argument object of every `cra.<action>` command."""

    uri: str
    symbol: str | None = None
    version: int | None = None
    instruction: str = ""


class CommandOutcome(msgspec.Struct, kw_only=True):
    """The JSON result of `workspace/executeCommand` for an action."""

    ok: bool
    task_id: str = ""
    verdict: dict[str, Any] | None = None
    error: str | None = None
    cancelled: bool = False
    applied: bool = False


class CraLanguageServer(LanguageServer):
    def __init__(self, runner: PipelineRunner | None = None) -> None:
        super().__init__(SERVER_NAME, SERVER_VERSION)
        self.runner = runner or PipelineRunner()
        self.jobs = JobRunner(max_workers=1)
        self.trust = WorkspaceTrust()
        self.settings = ServerSettings()
        self._init_options: Any = None
        self._active_requests: set[Any] = set()
        self._sites_cache: dict[str, tuple[int | None, str, list[FunctionSite]]] = {}
        self._warm_up: asyncio.Future[None] | None = None

    async def available_actions(self) -> tuple[str, ...]:
        """The orchestrator's actions; the pipeline import runs off the event loop (it loads llama.cpp)."""
        if self._warm_up is None:
            self._warm_up = asyncio.get_running_loop().run_in_executor(None, self.runner.warm_up)
        await self._warm_up
        return self.runner.available_actions()

    # -- settings -------------------------------------------------------------------------------------------
    def apply_settings(self, *layers: Any) -> None:
        try:
            self.settings = parse_settings(self._init_options, *layers)
        except SettingsError as exc:
            self.show(str(exc), types.MessageType.Error)
            return
        self.trust.apply_setting(self.settings.trust)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"cra: {message}"))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Malformed input from the client: answer with a JSON-RPC parse error and keep serving."""
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            self.protocol._send_data({"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32700, "message": f"Parse error: {error}"}})
        super().report_server_error(error, source)

    # -- documents ------------------------------------------------------------------------------------------
    def function_sites(self, uri: str) -> tuple[int | None, str, list[FunctionSite]]:
        """(version, text, functions) of an open or on-disk C document; cached per version."""
        document = self.workspace.get_text_document(uri)
        cached = self._sites_cache.get(uri)
        if cached is not None and cached[0] == document.version and document.version is not None:
            return cached
        text = document.source
        data = check_document(uri, text, language_id=document.language_id,
                              max_bytes=self.settings.max_document_bytes)
        entry = (document.version, text, functions_in(data))
        self._sites_cache[uri] = entry
        return entry

    def workspace_root(self, path: str) -> str:
        root = self.workspace.root_path
        return root if root else os.path.dirname(path)


def create_server(runner: PipelineRunner | None = None) -> CraLanguageServer:
    server = CraLanguageServer(runner)
    _register_lifecycle(server)
    _register_documents(server)
    _register_code_actions(server)
    _register_commands(server)
    # Hover (generated docstrings, inserted through `cra.insertDoc`) registers here once the document action
    # produces them; it is deliberately not advertised before.
    return server


def _register_lifecycle(server: CraLanguageServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: CraLanguageServer, params: types.InitializeParams) -> None:
        ls._init_options = params.initialization_options
        ls.apply_settings()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CraLanguageServer, params: types.InitializedParams) -> None:
        if ls._warm_up is None:
            ls._warm_up = asyncio.get_running_loop().run_in_executor(None, ls.runner.warm_up)
        await _pull_settings(ls)

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
        await ls.jobs.wait_all(SHUTDOWN_GRACE_S)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while time.monotonic() < deadline and any(r in ls.protocol._request_futures for r in ls._active_requests):
            await asyncio.sleep(0.01)


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


def _register_documents(server: CraLanguageServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CraLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        if not is_c_document(document.uri, document.language_id):
            return
        try:
            ls.function_sites(document.uri)
        except DocumentError as exc:
            ls.show(f"{exc}; no cra actions for it", types.MessageType.Warning)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CraLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        ls._sites_cache.pop(params.text_document.uri, None)


def _register_code_actions(server: CraLanguageServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=list(cra_actions.CODE_ACTION_KINDS), resolve_provider=True))
    async def code_action(ls: CraLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        document = ls.workspace.get_text_document(uri)
        if not is_c_document(uri, document.language_id):
            return None
        try:
            version, _, sites = ls.function_sites(uri)
        except DocumentError:
            return None  # already reported once when the document was opened
        return cra_actions.code_actions(uri, version, sites, params.range.start.line,
                                        await ls.available_actions(), params.context.only) or None

    @server.feature(types.CODE_ACTION_RESOLVE)
    def resolve(ls: CraLanguageServer, action: types.CodeAction) -> types.CodeAction:
        # Our actions are command-only and complete; Neovim 0.7 still resolves them: hand them back unchanged.
        return action


def _register_commands(server: CraLanguageServer) -> None:
    for action, command in cra_actions.ACTION_COMMANDS.items():
        _register_action_command(server, action, command)

    @server.command(cra_actions.TRUST_COMMAND)
    def trust(ls: CraLanguageServer, *args: Any) -> dict[str, Any]:
        ls.trust.grant()
        ls.show(ls.trust.describe())
        return {"ok": True, "trusted": True}

    @server.command(cra_actions.INSERT_DOC_COMMAND)
    async def insert_doc(ls: CraLanguageServer, *arguments: Any) -> dict[str, Any]:
        return await _insert_doc(ls, arguments[0] if len(arguments) == 1 else None)


def _register_action_command(server: CraLanguageServer, action: str, command: str) -> None:
    async def handler(ls: CraLanguageServer, *arguments: Any) -> dict[str, Any]:
        if len(arguments) != 1:
            outcome = CommandOutcome(ok=False, error=(
                f'{command} takes one argument {{"uri", "symbol", "version"}}, got {len(arguments)}'))
        else:
            outcome = await _run_action(ls, action, arguments[0])
        if outcome.error and not outcome.cancelled:
            ls.show(outcome.error, types.MessageType.Error)
        return msgspec.to_builtins(outcome)

    handler.__name__ = f"command_{action}"
    server.command(command)(handler)


def _parse_argument(argument: Any) -> CommandArgument:
    try:
        return msgspec.convert(argument, type=CommandArgument)
    except msgspec.ValidationError as exc:
        raise DocumentError(f'bad command argument (expected {{"uri", "symbol", "version"}}): {exc}') from None


async def _run_action(ls: CraLanguageServer, action: str, argument: Any) -> CommandOutcome:
    request_id = ls.protocol.msg_id
    outer = ls.protocol._request_futures.get(request_id) if request_id is not None else None
    if outer is not None and outer.cancelled():
        return CommandOutcome(ok=False, cancelled=True, error="cancelled")
    try:
        arg = _parse_argument(argument)
        path = uri_to_path(arg.uri)
        if not is_c_document(arg.uri, ls.workspace.get_text_document(arg.uri).language_id):
            check_document(arg.uri, "")  # raises the "not a C file" error
        version, text, sites = ls.function_sites(arg.uri)
    except DocumentError as exc:
        return CommandOutcome(ok=False, error=str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        return CommandOutcome(ok=False, error=f"cannot read {argument.get('uri') if isinstance(argument, dict) else argument}: {exc}")
    if arg.version is not None and version is not None and arg.version != version:
        return CommandOutcome(ok=False, error=(
            f"the document changed since the action was offered (version {arg.version}, now {version}); "
            "request the code action again"))
    if arg.symbol is not None and find_function(sites, arg.symbol) is None:
        return CommandOutcome(ok=False, error=f"no function named `{arg.symbol}` in {os.path.basename(path)}")
    if action not in await ls.available_actions():
        return CommandOutcome(ok=False, error=f"the `{action}` action is not available in this installation")

    request = ActionRequest(action=action, path=path, text=text, root=ls.workspace_root(path), symbol=arg.symbol,
                            version=version, instruction=arg.instruction)
    progress = ActionProgress(ls, ACTION_TITLES[action])
    trusted, settings = ls.trust.trusted, ls.settings

    def work(token: Any) -> ActionResult:
        return ls.runner.run(request, trusted=trusted, settings=settings, progress=progress.report, cancel=token)

    job = ls.jobs.start(work)
    # pygls answers $/cancelRequest for executeCommand but keeps running the command: tie the request to the job.
    if outer is not None:
        ls._active_requests.add(request_id)
        outer.add_done_callback(lambda f: job.cancel() if f.cancelled() else None)
    try:
        await progress.begin(on_cancel=job.cancel)
        try:
            result = await job.result()
        except JobCancelled:
            progress.end("cancelled")
            return CommandOutcome(ok=False, task_id=job.id, cancelled=True, error="cancelled")
        except PipelineUnavailable as exc:
            progress.end("failed")
            return CommandOutcome(ok=False, task_id=job.id, error=str(exc))
        except Exception as exc:  # a pipeline bug must not take the server down
            logger.exception("action %s failed", action)
            progress.end("failed")
            return CommandOutcome(ok=False, task_id=job.id, error=f"{action} failed: {type(exc).__name__}: {exc}")
        verdict = msgspec.to_builtins(result.verdict)
        if result.cancelled or job.cancelled:
            progress.end("cancelled")
            return CommandOutcome(ok=False, task_id=result.task_id, verdict=verdict, cancelled=True, error="cancelled")
        if not result.ok:
            progress.end("failed")
            return CommandOutcome(ok=False, task_id=result.task_id, verdict=verdict,
                                  error=result.error or f"{action} failed")
        applied, error = await _apply_result(ls, result, uri=arg.uri, path=path, job_text=text, job_version=version)
        progress.end("done" if applied else "not applied")
        return CommandOutcome(ok=error is None, task_id=result.task_id, verdict=verdict, error=error, applied=applied)
    finally:
        ls._active_requests.discard(request_id)


async def _apply_result(ls: CraLanguageServer, result: ActionResult, *, uri: str, path: str, job_text: str,
                        job_version: int | None) -> tuple[bool, str | None]:
    document = ls.workspace.get_text_document(uri)
    try:
        edit = workspace_edit(result, uri=uri, target_path=path, job_text=job_text, job_version=job_version,
                              current_text=document.source, current_version=document.version)
    except EditRefused as exc:
        ls.show(str(exc), types.MessageType.Warning)
        return False, str(exc)
    if edit is None:
        return False, None
    response = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(
        edit=edit, label=ACTION_TITLES.get(result.action, "cra")))
    if not response.applied:
        return False, f"the editor did not apply the edit: {response.failure_reason or 'no reason given'}"
    return True, None


async def _insert_doc(ls: CraLanguageServer, argument: Any) -> dict[str, Any]:
    """Insert a given doc comment above a function (the hover's "insert" link)."""
    try:
        if not isinstance(argument, dict):
            raise DocumentError('cra.insertDoc takes one argument {"uri", "symbol", "version", "doc"}')
        arg = _parse_argument({k: v for k, v in argument.items() if k != "doc"})
        doc = argument.get("doc")
        if not isinstance(doc, str) or not doc.strip():
            raise DocumentError('cra.insertDoc needs a non-empty "doc" string')
        version, text, sites = ls.function_sites(arg.uri)
    except DocumentError as exc:
        ls.show(str(exc), types.MessageType.Error)
        return {"ok": False, "error": str(exc)}
    site = find_function(sites, arg.symbol or "")
    if site is None:
        message = f"no function named `{arg.symbol}` in this document"
        ls.show(message, types.MessageType.Error)
        return {"ok": False, "error": message}
    if arg.version is not None and version is not None and arg.version != version:
        message = "the document changed since the documentation was generated; hover again"
        ls.show(message, types.MessageType.Warning)
        return {"ok": False, "error": message}
    block = doc if doc.endswith("\n") else doc + "\n"
    edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=arg.uri, version=version),
        edits=[types.TextEdit(range=types.Range(start=types.Position(line=site.start_line, character=0),
                                                end=types.Position(line=site.start_line, character=0)),
                              new_text=block)])])
    response = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="cra: insert doc"))
    return {"ok": bool(response.applied), "error": None if response.applied else response.failure_reason}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    create_server().start_io()
