"""`workspace/executeCommand` for the actions (`cra.<action>`) and for `cra.trust`.

An action runs as a job off the event loop, with progress and cancellation (`$/cancelRequest` or the progress UI's
cancel), and its result reaches the editor through `workspace/applyEdit` (`edits.apply_result`); a result that
failed validation leaves diagnostics on its function.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgspec
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from cra.pipeline.actions import ACTION_TITLES, ActionRequest, ActionResult

from . import actions as cra_actions
from . import pygls_compat
from .documents import (
    DocumentError,
    check_document,
    is_c_document,
    publish_diagnostics,
    uri_to_path,
)
from .edits import apply_result
from .jobs import JobCancelled
from .progress import ActionProgress
from .runner import PipelineUnavailable
from .server import CraLanguageServer
from .symbols import FunctionSite, find_function

logger = logging.getLogger(__name__)


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


def parse_argument(argument: Any) -> CommandArgument:
    try:
        return msgspec.convert(argument, type=CommandArgument)
    except msgspec.ValidationError as exc:
        raise DocumentError(f'bad command argument (expected {{"uri", "symbol", "version"}}): {exc}') from None
    except UnicodeEncodeError:  # msgspec encodes strings: a lone surrogate (valid in JSON's \u escapes) fails
        raise DocumentError("bad command argument: a string in it is not valid Unicode (lone surrogate)") from None


async def run_action(ls: CraLanguageServer, action: str, argument: Any) -> CommandOutcome:
    request_id, outer = pygls_compat.current_request(ls)
    if outer is not None and outer.cancelled():
        return CommandOutcome(ok=False, cancelled=True, error="cancelled")
    try:
        arg = parse_argument(argument)
        path = uri_to_path(arg.uri)
        if not is_c_document(arg.uri, ls.workspace.get_text_document(arg.uri).language_id):
            check_document(arg.uri, "")  # raises the "not a C file" error
        version, text, sites = await ls.documents.sites(arg.uri)
    except DocumentError as exc:
        return CommandOutcome(ok=False, error=str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        uri = argument.get("uri") if isinstance(argument, dict) else argument
        return CommandOutcome(ok=False, error=f"cannot read {uri}: {exc}")
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
        return ls.runner.run(request, trusted=trusted, settings=settings, progress=progress, cancel=token)

    ls.docgen.cancel_all()  # background doc generation yields to what the user asked for
    job = ls.jobs.start(work)
    # pygls answers $/cancelRequest for executeCommand but keeps running the command: tie the request to the job.
    if outer is not None:
        ls.active_requests.add(request_id)
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
        shown = await _update_diagnostics(ls, arg.uri, result, sites)
        if not result.ok:
            progress.end("failed")
            return CommandOutcome(ok=False, task_id=result.task_id, verdict=verdict, diagnostics=shown,
                                  error=result.error or f"{action} failed")
        applied, error = await apply_result(ls, result, uri=arg.uri, path=path, job_text=text, job_version=version)
        progress.end("done" if applied else "not applied")
        return CommandOutcome(ok=error is None, task_id=result.task_id, verdict=verdict, error=error, applied=applied)
    finally:
        ls.active_requests.discard(request_id)


async def _update_diagnostics(ls: CraLanguageServer, uri: str, result: ActionResult,
                              sites: list[FunctionSite]) -> int:
    """Show why the action failed validation on its function, or clear that after a success."""
    symbol = result.symbol
    if result.ok:
        if ls.diagnostics.clear(uri, symbol):
            await publish_diagnostics(ls, uri, force=True)
        return 0
    site = find_function(sites, symbol) if symbol else None
    if site is None or not ls.diagnostics.record(uri, result, site):
        return 0
    return await publish_diagnostics(ls, uri, force=True)


def trust_arguments_problem(args: tuple[Any, ...]) -> str | None:
    """Why `cra.trust`'s arguments are not what clients send (none, or the usual argument object), else None."""
    if not args:
        return None
    if len(args) > 1:
        return f'takes no argument or one {{"uri", "symbol", "version"}} object, got {len(args)} arguments'
    try:
        parse_argument(args[0])
    except DocumentError as exc:
        return str(exc)
    return None


def _register_action(server: CraLanguageServer, action: str, command: str) -> None:
    async def handler(ls: CraLanguageServer, *arguments: Any) -> dict[str, Any]:
        if len(arguments) != 1:
            outcome = CommandOutcome(ok=False, error=(
                f'{command} takes one argument {{"uri", "symbol", "version"}}, got {len(arguments)}'))
        else:
            outcome = await run_action(ls, action, arguments[0])
        if outcome.error and not outcome.cancelled:
            ls.show(outcome.error, types.MessageType.Error)
        return msgspec.to_builtins(outcome)

    handler.__name__ = f"command_{action}"
    server.command(command)(handler)


def register(server: CraLanguageServer) -> None:
    for action, command in cra_actions.ACTION_COMMANDS.items():
        _register_action(server, action, command)

    @server.command(cra_actions.TRUST_COMMAND)
    def trust(ls: CraLanguageServer, *args: Any) -> dict[str, Any]:
        problem = trust_arguments_problem(args)
        if problem is not None:  # garbage never grants trust
            raise JsonRpcInvalidParams(f"cra.trust: {problem}")
        ls.trust.grant()
        ls.show(ls.trust.describe())
        return {"ok": True, "trusted": True}
