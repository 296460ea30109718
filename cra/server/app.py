"""The cra language server: LSP ↔ pipeline translation only (code actions, executeCommand, progress, cancel,
hover with generated docs, diagnostics of failed validations, trust).

Advertises code actions, hover and executeCommand and nothing else, so it coexists with clangd in the same editor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from typing import Any

import msgspec
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from cra.pipeline.actions import ACTION_TITLES, ActionRequest, ActionResult

from . import actions as cra_actions
from .diagnostics import DiagnosticsBook
from .doccache import DocCache
from .documents import DocumentError, check_document, is_c_document, uri_to_path
from .edits import EditRefused, workspace_edit
from .hover import insert_doc_action, register_hover
from .jobs import JobCancelled, JobRunner
from .progress import ActionProgress
from .runner import CONFIG_FILENAME, PipelineRunner, PipelineUnavailable
from .settings import SECTION, ServerSettings, SettingsError, parse_settings
from .symbols import FunctionSite, find_function, functions_in, sites_of
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
    diagnostics: int = 0  # cra diagnostics published for the target function


class CraLanguageServer(LanguageServer):
    def __init__(self, runner: PipelineRunner | None = None) -> None:
        super().__init__(SERVER_NAME, SERVER_VERSION)
        self.runner = runner or PipelineRunner()
        self.jobs = JobRunner(max_workers=1)
        # Hover docs are generated in the background, apart from commands, which cancel them (the user waits).
        self.doc_jobs = JobRunner(max_workers=1)
        self.doc_cache = DocCache()
        self.doc_pending: dict[str, Any] = {}  # content hash -> running generation job
        self.diagnostics = DiagnosticsBook()
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
        root = self.protocol._workspace.root_path if self.protocol._workspace is not None else None
        if root and self.runner.known_workspace(root) is not None:
            self.reload_config(root)

    def reload_config(self, root: str) -> None:
        """Re-read the workspace's config now; a broken cra.toml is reported and the old config kept."""
        from cra.pipeline.config import ConfigError

        try:
            self.runner.reload(root, self.settings)
        except ConfigError as exc:
            self.show(f"configuration error (the previous configuration stays in use): {exc}",
                      types.MessageType.Error)

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
        sites: list[FunctionSite] | None = None
        if uri.startswith("file:"):
            path = uri_to_path(uri)
            # The workspace index re-parses incrementally and keeps the buffer for the next action's context.
            indexed = self.runner.note_text(self.workspace_root(path), path, text)
            sites = sites_of(indexed) if indexed is not None else None
        entry = (document.version, text, sites if sites is not None else functions_in(data))
        self._sites_cache[uri] = entry
        return entry

    def publish_diagnostics(self, uri: str, sites: list[FunctionSite] | None = None, *, force: bool = False) -> int:
        """Send the document's cra diagnostics (an empty list clears them); returns how many."""
        if not (force or self.diagnostics.has(uri)):
            return 0
        document = self.workspace.get_text_document(uri)
        if sites is None:
            try:
                _, _, sites = self.function_sites(uri)
            except DocumentError:
                sites = []
        shown = self.diagnostics.diagnostics(uri, sites)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, diagnostics=shown, version=document.version))
        return len(shown)

    def workspace_root(self, path: str) -> str:
        root = self.workspace.root_path
        return root if root else os.path.dirname(path)


def create_server(runner: PipelineRunner | None = None) -> CraLanguageServer:
    server = CraLanguageServer(runner)
    _register_lifecycle(server)
    _register_documents(server)
    _register_code_actions(server)
    _register_commands(server)
    register_hover(server)
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
        await _watch_config_file(ls)
        root = ls.workspace.root_path
        if root:
            asyncio.get_running_loop().run_in_executor(None, _build_index, ls, root)

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
        ls.doc_jobs.cancel_all()
        await ls.jobs.wait_all(SHUTDOWN_GRACE_S)
        await ls.doc_jobs.wait_all(SHUTDOWN_GRACE_S)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while time.monotonic() < deadline and any(r in ls.protocol._request_futures for r in ls._active_requests):
            await asyncio.sleep(0.01)


def _build_index(ls: CraLanguageServer, root: str) -> None:
    """Warm the workspace (config, symbol index from its on-disk cache) so the first action starts at once."""
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

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CraLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if not is_c_document(uri, ls.workspace.get_text_document(uri).language_id):
            return
        try:
            _, _, sites = ls.function_sites(uri)
        except DocumentError:
            return
        # Re-send: lines moved, or the failed function was edited (its findings are dropped and cleared).
        ls.publish_diagnostics(uri, sites)

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
        offered = cra_actions.code_actions(uri, version, sites, params.range.start.line,
                                           await ls.available_actions(), params.context.only)
        if uri.startswith("file:"):
            insert = insert_doc_action(ls, uri, version, sites, params.range.start.line, params.context.only)
            if insert is not None:
                offered.append(insert)
        return offered or None

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

    ls.doc_jobs.cancel_all()  # background doc generation yields to what the user asked for
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
        shown = _update_diagnostics(ls, arg.uri, result, sites)
        if not result.ok:
            progress.end("failed")
            return CommandOutcome(ok=False, task_id=result.task_id, verdict=verdict, diagnostics=shown,
                                  error=result.error or f"{action} failed")
        applied, error = await _apply_result(ls, result, uri=arg.uri, path=path, job_text=text, job_version=version)
        progress.end("done" if applied else "not applied")
        return CommandOutcome(ok=error is None, task_id=result.task_id, verdict=verdict, error=error, applied=applied)
    finally:
        ls._active_requests.discard(request_id)


def _update_diagnostics(ls: CraLanguageServer, uri: str, result: ActionResult, sites: list[FunctionSite]) -> int:
    """Show why the action failed validation on its function, or clear that after a success."""
    symbol = result.symbol
    if result.ok:
        if ls.diagnostics.clear(uri, symbol):
            ls.publish_diagnostics(uri, force=True)
        return 0
    site = find_function(sites, symbol) if symbol else None
    if site is None or not ls.diagnostics.record(uri, result, site):
        return 0
    return ls.publish_diagnostics(uri, force=True)


async def _apply_result(ls: CraLanguageServer, result: ActionResult, *, uri: str, path: str, job_text: str,
                        job_version: int | None) -> tuple[bool, str | None]:
    document = ls.workspace.get_text_document(uri)
    root = ls.workspace_root(path)
    try:
        edit = workspace_edit(result, uri=uri, target_path=path, job_text=job_text, job_version=job_version,
                              current_text=document.source, current_version=document.version)
    except EditRefused as exc:
        ls.show(str(exc), types.MessageType.Warning)
        ls.runner.set_edit_status(root, result.task_id, "rejected", f"not sent to the editor: {exc}")
        return False, str(exc)
    if edit is None:
        return False, None
    applied, reason = await apply_edit(ls, edit, ACTION_TITLES.get(result.action, "cra"))
    # The call log learns what became of the proposal: the training data's label.
    ls.runner.set_edit_status(root, result.task_id, "applied" if applied else "rejected", reason)
    if not applied:
        return False, f"the editor did not apply the edit: {reason or 'no reason given'}"
    return True, None


async def apply_edit(ls: CraLanguageServer, edit: types.WorkspaceEdit, label: str) -> tuple[bool, str | None]:
    """Send `workspace/applyEdit`: (applied, the client's reason when it did not)."""
    try:
        response = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=label))
    except JsonRpcException as exc:  # the client answered with an error: nothing was applied
        return False, f"the editor answered with an error: {exc}"
    if response.applied:
        return True, None
    return False, response.failure_reason or "no reason given"


async def _insert_doc(ls: CraLanguageServer, argument: Any) -> dict[str, Any]:
    """Insert a generated doc comment above a function (the "Insert generated doc comment" code action).
    Without a "doc" string the cached one for the function's current text is used."""
    try:
        if not isinstance(argument, dict):
            raise DocumentError('cra.insertDoc takes one argument {"uri", "symbol", "version", "doc"}')
        arg = _parse_argument({k: v for k, v in argument.items() if k not in ("doc", "taskId")})
        version, text, sites = ls.function_sites(arg.uri)
        site = find_function(sites, arg.symbol or "")
        if site is None:
            raise DocumentError(f"no function named `{arg.symbol}` in this document")
        doc, task_id = argument.get("doc"), argument.get("taskId") or ""
        if doc is None:
            cached = ls.doc_cache.get(ls.workspace_root(uri_to_path(arg.uri)), site.content_hash)
            if cached is None:
                raise DocumentError(f"no generated documentation for `{site.name}` yet; hover over it first")
            doc, task_id = cached.doc, cached.task_id
        if not isinstance(doc, str) or not doc.strip():
            raise DocumentError('cra.insertDoc needs a non-empty "doc" string')
    except DocumentError as exc:
        ls.show(str(exc), types.MessageType.Error)
        return {"ok": False, "error": str(exc)}
    if arg.version is not None and version is not None and arg.version != version:
        message = "the document changed since the documentation was generated; hover again"
        ls.show(message, types.MessageType.Warning)
        return {"ok": False, "error": message}
    if site.doc.strip():
        message = f"`{site.name}` already has a doc comment; cra does not add a second one"
        ls.show(message, types.MessageType.Warning)
        return {"ok": False, "error": message}
    block = doc if doc.endswith("\n") else doc + "\n"
    edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=arg.uri, version=version),
        edits=[types.TextEdit(range=types.Range(start=types.Position(line=site.start_line, character=0),
                                                end=types.Position(line=site.start_line, character=0)),
                              new_text=block)])])
    applied, reason = await apply_edit(ls, edit, "cra: insert doc")
    if isinstance(task_id, str) and task_id:
        ls.runner.set_edit_status(ls.workspace_root(uri_to_path(arg.uri)), task_id,
                                  "applied" if applied else "rejected", reason)
    return {"ok": applied, "error": reason, "task_id": task_id}


def start_stdio(server: CraLanguageServer) -> None:
    """Serve on stdin/stdout through private copies of the two descriptors.

    llama.cpp points fds 1 and 2 at /dev/null, process-wide, while it loads a model: a response written by the
    event loop meanwhile would vanish and the editor would wait forever. Anything a library prints to stdout would
    corrupt the JSON-RPC stream too. So the protocol gets its own descriptors and fd 1 becomes a copy of stderr.
    """
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    server.start_io(protocol_in, protocol_out)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    start_stdio(create_server())
