"""A headless LSP client for cra: start `cra lsp`, run one action on one file, return the would-be new text.

Usable as a Python API (`run_action`) and behind `cra run`. It talks to the server exactly like an editor does:
didOpen, codeAction at the symbol, resolve when needed, executeCommand, answering `workspace/applyEdit` in memory.
Progress reports reach an `on_progress` callback as they come. Setting the `cancel` event (`cra run`: Ctrl-C)
sends `$/cancelRequest` for the running command, waits until the server has stopped the job (its progress ends
and its shutdown drains the jobs, so the call log records the task as cancelled), and raises `ActionCancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import signal
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from cra.pipeline.actions import ACTIONS
from cra.pipeline.workspace_root import find_root

from .lsp_types import install_code_action_hook

DEFAULT_SERVER_ARGV: tuple[str, ...] = (sys.executable, "-m", "cra.clients.cli", "lsp")
# Whole-file actions need no symbol.
FILE_ACTIONS = ("plan", "scaffold")
# After a cancel: how long to wait for the server to stop the job, then for its shutdown (which drains the jobs).
CANCEL_GRACE_S = 10.0
SHUTDOWN_WAIT_S = 10.0
# Every request but the action's command itself is answered from the parsed document (no model): a server that
# does not answer one within this time is stuck, and the run stops instead of waiting forever.
REQUEST_WAIT_S = 60.0

T = TypeVar("T")


class HeadlessError(Exception):
    """The action could not be run; the message says why."""


class ActionUnavailable(HeadlessError):
    """The server does not offer the action for this file or symbol."""


class ActionCancelled(HeadlessError):
    """The run was cancelled before it finished; the server stopped the job and nothing was applied."""


class ProgressEvent(msgspec.Struct, kw_only=True):
    """One `$/progress` notification of the running action, as `on_progress` gets it."""

    kind: str  # "begin" | "report" | "end"
    message: str = ""  # begin: the action's title; report: the pipeline stage; end: done | failed | cancelled | ...
    percent: int | None = None
    value: dict[str, Any] = {}  # the whole progress value (a server may add fields, e.g. tokens per second)


class _Interrupted(Exception):
    """The cancel event was set while the client waited on the server."""


class NewFile(msgspec.Struct, kw_only=True):
    path: str
    text: str


class RunOutcome(msgspec.Struct, kw_only=True):
    ok: bool
    action: str
    path: str
    old_text: str
    new_text: str
    diff: str  # unified diff of the target file
    files: list[NewFile] = []  # files the action creates
    verdict: dict[str, Any] | None = None
    error: str | None = None
    progress: list[str] = []
    task_id: str = ""
    cancelled: bool = False


def _apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    from cra.server.edits import offset_at

    spans = sorted(((offset_at(text, e.range.start.line, e.range.start.character),
                     offset_at(text, e.range.end.line, e.range.end.character), e.new_text) for e in edits),
                   key=lambda s: (s[0], s[1]), reverse=True)
    for start, end, new_text in spans:  # back to front, so earlier offsets stay valid
        text = text[:start] + new_text + text[end:]
    return text


class _Session:
    """State of one headless run: the in-memory documents the server edits, progress and messages."""

    def __init__(self, uri: str, text: str) -> None:
        self.uri = uri
        self.version = 1
        self.text = text
        self.files: dict[str, str] = {}
        self.progress: list[str] = []
        self.messages: list[types.ShowMessageParams] = []
        self.stderr: list[str] = []
        self.on_progress: Callable[[ProgressEvent], None] | None = None
        self.began = False
        self.ended = asyncio.Event()

    def apply(self, edit: types.WorkspaceEdit) -> types.ApplyWorkspaceEditResult:
        text, files = self.text, dict(self.files)
        try:
            for change in edit.document_changes or []:
                if isinstance(change, types.CreateFile):
                    files.setdefault(change.uri, "")
                elif isinstance(change, types.TextDocumentEdit):
                    uri, version = change.text_document.uri, change.text_document.version
                    plain = [e for e in change.edits if isinstance(e, types.TextEdit)]
                    if uri == self.uri:
                        if version is not None and version != self.version:
                            return types.ApplyWorkspaceEditResult(
                                applied=False, failure_reason=f"version {version} is not the current {self.version}")
                        text = _apply_text_edits(text, plain)
                    elif uri in files:
                        files[uri] = _apply_text_edits(files[uri], plain)
                    else:
                        return types.ApplyWorkspaceEditResult(applied=False, failure_reason=f"unknown document {uri}")
                else:
                    return types.ApplyWorkspaceEditResult(
                        applied=False, failure_reason=f"unsupported change {type(change).__name__}")
            for uri, edits in (edit.changes or {}).items():
                if uri != self.uri:
                    return types.ApplyWorkspaceEditResult(applied=False, failure_reason=f"unknown document {uri}")
                text = _apply_text_edits(text, list(edits))
        except Exception as exc:  # a malformed edit is refused, never half-applied
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason=str(exc))
        self.text, self.files = text, files
        return types.ApplyWorkspaceEditResult(applied=True)


def _capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            apply_edit=True, configuration=False,
            workspace_edit=types.WorkspaceEditClientCapabilities(
                document_changes=True, resource_operations=[types.ResourceOperationKind.Create]),
            execute_command=types.ExecuteCommandClientCapabilities()),
        text_document=types.TextDocumentClientCapabilities(
            code_action=types.CodeActionClientCapabilities(
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(value_set=["refactor"])),
                resolve_support=types.ClientCodeActionResolveOptions(properties=["edit", "command"]))),
        window=types.WindowClientCapabilities(work_done_progress=True),
    )


def _make_client(session: _Session) -> LanguageClient:
    client = LanguageClient("cra-headless", "0.1.0")
    install_code_action_hook(client.protocol._converter)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        return session.apply(params.edit)

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def create_progress(ls: LanguageClient, params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def progress(ls: LanguageClient, params: types.ProgressParams) -> None:
        value = params.value if isinstance(params.value, dict) else {}
        text = value.get("message") or value.get("title")
        percent = value.get("percentage")
        if text:
            session.progress.append(f"{text} ({percent}%)" if percent is not None else str(text))
        kind = str(value.get("kind") or "")
        if kind == "begin":
            session.began = True
        elif kind == "end":
            session.ended.set()
        if session.on_progress is not None:
            event = ProgressEvent(kind=kind, message=str(text or ""),
                                  percent=percent if isinstance(percent, int) else None, value=value)
            try:
                session.on_progress(event)
            except Exception:  # showing progress must never break the run
                pass

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(ls: LanguageClient, params: types.ShowMessageParams) -> None:
        session.messages.append(params)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(ls: LanguageClient, params: types.LogMessageParams) -> None:
        return None

    return client


async def _drain_stderr(client: LanguageClient, session: _Session) -> None:
    # The server's stderr is a pipe nobody else reads: drain it so a chatty server never blocks on a full pipe.
    stream = client._server.stderr if client._server else None
    if stream is None:
        return
    while line := await stream.readline():
        session.stderr.append(line.decode("utf-8", "replace").rstrip())
        del session.stderr[:-50]


def _check_document(path: str | Path, text: str) -> None:
    """Refuse, before starting a server, a file the server would not work on (it would offer no action)."""
    from cra.server.settings import DEFAULT_MAX_DOCUMENT_BYTES

    size = len(text.encode("utf-8"))
    if size > DEFAULT_MAX_DOCUMENT_BYTES:
        raise ActionUnavailable(f"{path} is too large: {size:,} bytes, over cra's limit of "
                                f"{DEFAULT_MAX_DOCUMENT_BYTES:,} bytes per document")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ActionUnavailable(f"{path} contains a NUL byte on line {line}: it looks like a binary file, "
                                "not C source")


def _symbol_line(text: str, symbol: str | None, action: str) -> int:
    if symbol is None:
        if action in FILE_ACTIONS:
            return 0
        raise HeadlessError(f"the {action} action works on a function: name it (--symbol NAME)")
    from cra.server.actions import actions_for_function
    from cra.server.symbols import find_function, functions_in

    sites = functions_in(text.encode("utf-8"))
    site = find_function(sites, symbol)
    if site is None:
        raise HeadlessError(f"no function named `{symbol}` in this file")
    offered = actions_for_function(site, sites)
    if action not in offered:
        why = ("it already has a body (implement fills in stubs)" if action == "implement"
               else "its body is a stub (write it first, e.g. with the implement action)" if action == "tests"
               else "it is not offered there")
        choices = ", ".join(a for a in offered if a not in FILE_ACTIONS)
        raise ActionUnavailable(f"no {action} action for `{symbol}`: {why}"
                                + (f"; available for it: {choices}" if choices else ""))
    return site.start_line


def _pick(actions: list[Any], action: str, symbol: str | None, session: _Session | None = None) -> types.CodeAction:
    kind = f"refactor.rewrite.cra.{action}"
    for candidate in actions:
        if isinstance(candidate, types.CodeAction) and candidate.kind == kind:
            return candidate
    offered = ", ".join(str(a.kind).rsplit(".", 1)[-1] for a in actions if isinstance(a, types.CodeAction))
    target = f"`{symbol}`" if symbol else "this file"
    # The server says why it refused the document (too large, not UTF-8, ...) in a message when it opened it.
    said = [m.message for m in (session.messages if session else []) if m.type in (types.MessageType.Error,
                                                                                   types.MessageType.Warning)]
    raise ActionUnavailable(f"the {action} action is not available for {target}"
                            + (f": {said[-1]}" if said else "")
                            + (f" (available: {offered})" if offered else ""))


class _NoAnswer(Exception):
    """The server did not answer a request that needs no model within REQUEST_WAIT_S."""


async def _answered(what: str, awaitable: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(awaitable, REQUEST_WAIT_S)
    except TimeoutError:
        raise _NoAnswer(what) from None


async def _unless(cancel: asyncio.Event, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`; raise `_Interrupted` as soon as `cancel` is set instead (the awaitable keeps running)."""
    task = asyncio.ensure_future(awaitable)
    try:
        if not cancel.is_set():
            waiter = asyncio.ensure_future(cancel.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if task.done():
                return task.result()
        raise _Interrupted
    finally:
        if not task.done():  # left to finish on its own (its response still comes); the outcome no longer matters
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def _cancel_command(client: LanguageClient, session: _Session, msg_id: str,
                          pending: asyncio.Future[Any]) -> None:
    """`$/cancelRequest` for the running command, then wait until the server has stopped its job."""
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    # The server answers the request at once (RequestCancelled, or the outcome if the job had just finished)...
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(pending), CANCEL_GRACE_S)
    # ...and ends the action's progress when the worker has stopped and the task is logged as cancelled.
    if session.began:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.ended.wait(), CANCEL_GRACE_S)


async def _shut_down(client: LanguageClient) -> None:
    """`shutdown` (the server cancels and drains whatever still runs) and `exit`, bounded in time."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.shutdown_async(None), SHUTDOWN_WAIT_S)
    with contextlib.suppress(Exception):
        client.exit(None)


def _own_process_group() -> dict[str, Any]:
    # A terminal's Ctrl-C signals its whole foreground process group: the server stays out of it, so the client
    # decides how the running job ends (cancel, record, shut down) instead of the server dying mid-write.
    return {"start_new_session": True} if os.name == "posix" else {}


async def run_action_async(action: str, path: str | Path, *, symbol: str | None = None, trust: bool = False,
                           config: dict[str, Any] | None = None, config_file: str | None = None,
                           instruction: str = "", server_argv: list[str] | tuple[str, ...] | None = None,
                           timeout: float = 900.0, on_progress: Callable[[ProgressEvent], None] | None = None,
                           cancel: asyncio.Event | None = None) -> RunOutcome:
    """Run `action` on `path` through a fresh `cra lsp` server; nothing is written to disk.

    `on_progress` gets every progress notification of the action. Setting `cancel` cancels the run: the server
    stops and records the job, then `ActionCancelled` is raised."""
    if action not in ACTIONS:
        raise ActionUnavailable(f"unknown action {action!r} (actions: {', '.join(ACTIONS)})")
    file = Path(path).resolve()
    try:
        old_text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise HeadlessError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise HeadlessError(f"{path} is not UTF-8 text (byte {exc.start}); cra works on UTF-8 C sources") from None
    _check_document(path, old_text)
    line = _symbol_line(old_text, symbol, action)
    uri = file.as_uri()
    session = _Session(uri, old_text)
    session.on_progress = on_progress
    cancel = cancel or asyncio.Event()
    client = _make_client(session)
    argv = list(server_argv or DEFAULT_SERVER_ARGV)
    await client.start_io(argv[0], *argv[1:], **_own_process_group())
    stderr_task = asyncio.create_task(_drain_stderr(client, session))
    # clientWritesFiles: this client writes the edit itself (and logs "applied" after the write).
    options: dict[str, Any] = {"trust": trust, "config": config or {}, "clientWritesFiles": True}
    if config_file:
        options["configFile"] = str(Path(config_file).resolve())
    command_id = f"cra-run-{uuid.uuid4().hex}"
    pending: asyncio.Future[Any] | None = None
    try:
        try:
            async with asyncio.timeout(timeout):
                await _unless(cancel, _answered("initialize", client.initialize_async(types.InitializeParams(
                    capabilities=_capabilities(), process_id=os.getpid(), root_uri=find_root(file).as_uri(),
                    initialization_options=options))))
                client.initialized(types.InitializedParams())
                client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                    uri=uri, language_id="c", version=session.version, text=old_text)))
                position = types.Position(line=line, character=0)
                offered = await _unless(cancel, _answered("codeAction", client.text_document_code_action_async(
                    types.CodeActionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        range=types.Range(start=position, end=position),
                        context=types.CodeActionContext(diagnostics=[], only=[f"refactor.rewrite.cra.{action}"])))))
                try:
                    chosen = _pick(list(offered or []), action, symbol, session)
                except ActionUnavailable:
                    await _shut_down(client)  # promptly: nothing runs that the shutdown would have to drain
                    raise
                if chosen.command is None:
                    chosen = await _unless(cancel, _answered("codeAction/resolve", client.code_action_resolve_async(
                        chosen)))
                if chosen.command is None:
                    raise HeadlessError(f"the server's {action} action carries no command")
                arguments = list(chosen.command.arguments or [])
                if instruction and arguments and isinstance(arguments[0], dict):
                    arguments[0] = {**arguments[0], "instruction": instruction}
                # Our own request id: `$/cancelRequest` names it.
                pending = asyncio.wrap_future(client.protocol.send_request(
                    types.WORKSPACE_EXECUTE_COMMAND,
                    types.ExecuteCommandParams(command=chosen.command.command, arguments=arguments),
                    msg_id=command_id))
                result = await _unless(cancel, asyncio.shield(pending))
                await _shut_down(client)
        except _Interrupted:
            if pending is not None:
                await _cancel_command(client, session, command_id, pending)
            await _shut_down(client)
            raise ActionCancelled(f"the {action} action was cancelled") from None
    except _NoAnswer as exc:
        _kill(client)  # a stuck server gets no further grace
        raise HeadlessError(f"the cra server did not answer {exc} within {REQUEST_WAIT_S:g} s") from None
    except TimeoutError:
        raise HeadlessError(f"the {action} action did not finish within {timeout:g} s") from None
    except RuntimeError as exc:  # the server process died
        detail = "\n".join(session.stderr[-10:])
        raise HeadlessError(f"the cra server stopped: {exc}" + (f"\n{detail}" if detail else "")) from None
    except asyncio.CancelledError:  # cancelled from outside (a second Ctrl-C): no more waiting on the server
        _kill(client)
        raise
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client._server.wait(), 5) if client._server else None
        _kill(client)  # a server that neither finished nor exited must not outlive its client
        stderr_task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), SHUTDOWN_WAIT_S)
    result = result if isinstance(result, dict) else {}
    files = [NewFile(path=types_uri_path(u), text=t) for u, t in sorted(session.files.items())]
    diff = "".join(difflib.unified_diff(old_text.splitlines(keepends=True), session.text.splitlines(keepends=True),
                                        fromfile=f"a/{file.name}", tofile=f"b/{file.name}"))
    error = result.get("error")
    if not result.get("ok") and not error:
        errors = [m.message for m in session.messages if m.type == types.MessageType.Error]
        error = errors[-1] if errors else "the action failed without a message"
    return RunOutcome(ok=bool(result.get("ok")), action=action, path=str(file), old_text=old_text,
                      new_text=session.text, diff=diff, files=files, verdict=result.get("verdict"), error=error,
                      progress=session.progress, task_id=result.get("task_id") or "",
                      cancelled=bool(result.get("cancelled")))


def record_edit_status(outcome: RunOutcome, status: str, reason: str) -> bool:
    """Set the call log's edit label of the run's task to what happened to the files: the server records
    `applied` when this client accepted the edit in memory, which is only true once `cra run --apply` has
    written them ("proposed" before the write, "applied" after it, "not_applied" for a dry run, "failed" when the
    write failed). False when there is no such task or log."""
    from cra.pipeline.calllog import CallLog, CallLogError, log_path

    root = Path(outcome.path).parent  # the workspace root this client gives the server
    if not outcome.task_id or not log_path(root).is_file():
        return False
    try:
        log = CallLog.for_workspace(root)
    except CallLogError:
        return False
    try:
        return log.set_edit_status(outcome.task_id, status, reason)
    finally:
        log.close()


def write_atomically(path: str | Path, text: str) -> None:
    """Replace the file's content all at once: a crash leaves either the old or the new text, never half."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.cra-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _kill(client: LanguageClient) -> None:
    server = client._server
    if server is not None and server.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            server.kill()


def types_uri_path(uri: str) -> str:
    from cra.server.documents import uri_to_path

    return uri_to_path(uri)


def run_action(action: str, path: str | Path, *, cancel_on_interrupt: bool = False,
               on_interrupt: Callable[[], None] | None = None, **kwargs: Any) -> RunOutcome:
    """Synchronous `run_action_async`. With `cancel_on_interrupt` (`cra run`), SIGINT (Ctrl-C) cancels the run
    cleanly (`ActionCancelled` once the server has recorded the cancel; `on_interrupt` is told at once); a second
    SIGINT stops waiting for the server."""

    async def go() -> RunOutcome:
        cancel = kwargs.pop("cancel", None) or asyncio.Event()
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        installed = False
        if cancel_on_interrupt and threading.current_thread() is threading.main_thread():

            def interrupted() -> None:
                if cancel.is_set():
                    if main is not None:
                        main.cancel()
                    return
                cancel.set()
                if on_interrupt is not None:
                    with contextlib.suppress(Exception):
                        on_interrupt()

            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals here: KeyboardInterrupt
                loop.add_signal_handler(signal.SIGINT, interrupted)
                installed = True
        try:
            return await run_action_async(action, path, cancel=cancel, **kwargs)
        except asyncio.CancelledError:
            if not installed:
                raise
            raise ActionCancelled(f"the {action} action was interrupted") from None
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(go())
