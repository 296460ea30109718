"""Generated doc comments: hover on an undocumented function shows one, a code action inserts it (`cra.insertDoc`).

A hover never waits for a model beyond `HOVER_BUDGET_S`: it reads the cache (keyed by the function's content hash,
in memory and under `<root>/.cra/docs/`), and on a miss starts the document action in the background (through the
runtime, like any action) and answers "generating…"; the next hover shows the comment and a code action offers to
insert it. A function whose text changes gets a new hash, so a stale comment is never shown for it. Generation
yields to the actions the user runs (they cancel it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from lsprotocol import types

from cra.pipeline.actions import ActionRequest, ActionResult

from .actions import INSERT_DOC_COMMAND, INSERT_DOC_KIND, kind_wanted
from .commands import parse_argument
from .documents import DocumentError, is_c_document, uri_to_path
from .edits import accepted_status, apply_edit
from .jobs import Job, JobCancelled, JobRunner
from .server import CraLanguageServer
from .symbols import DEFINITION, FunctionSite, find_function, function_at

logger = logging.getLogger(__name__)

HOVER_BUDGET_S = 0.3
INSERT_DOC_TITLE = "cra: Insert generated doc comment"
GENERATING = "cra: generating documentation… (hover again in a moment)"
DOCS_DIR = Path(".cra") / "docs"
_HASH = re.compile(r"^[0-9a-f]{16,64}$")


# -- the cache ----------------------------------------------------------------------------------------------------
class GeneratedDoc(msgspec.Struct, kw_only=True):
    symbol: str
    doc: str  # the `/** ... */` block, without a trailing newline
    task_id: str = ""  # the document task that produced it (its outcome is updated when the doc is inserted)


class DocCache:
    """Thread-safe: the worker thread stores, the event loop reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], GeneratedDoc] = {}
        self._failures: dict[tuple[str, str], str] = {}  # why generation failed, for this session only

    @staticmethod
    def _file(root: str, key: str) -> Path:
        if not _HASH.match(key):
            raise ValueError(f"not a content hash: {key!r}")
        return Path(root) / DOCS_DIR / f"{key}.json"

    def get(self, root: str, key: str) -> GeneratedDoc | None:
        with self._lock:
            found = self._memory.get((root, key))
        if found is not None:
            return found
        try:
            found = msgspec.json.decode(self._file(root, key).read_bytes(), type=GeneratedDoc)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:  # a damaged entry is regenerated, not fatal
            logger.warning("ignoring the cached doc %s: %s", key, exc)
            return None
        with self._lock:
            self._memory[(root, key)] = found
        return found

    def put(self, root: str, key: str, entry: GeneratedDoc) -> None:
        with self._lock:
            self._memory[(root, key)] = entry
            self._failures.pop((root, key), None)
        path = self._file(root, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(msgspec.json.encode(entry))
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError as exc:  # a read-only workspace still gets the in-memory cache
            logger.warning("cannot store the generated doc under %s: %s", path.parent, exc)

    def fail(self, root: str, key: str, reason: str) -> None:
        with self._lock:
            self._failures[(root, key)] = reason

    def failure(self, root: str, key: str) -> str | None:
        with self._lock:
            return self._failures.get((root, key))


def doc_block(new_text: str) -> str:
    """The comment block of a document action's inserted text (which ends with the newline before the function)."""
    text = new_text.rstrip("\n")
    start = text.find("/**")
    return text[start:] if start >= 0 else text


# -- generation ---------------------------------------------------------------------------------------------------
class DocGenerator:
    """The doc cache and the background jobs filling it (one at a time, one per content hash)."""

    def __init__(self, server: CraLanguageServer) -> None:
        self._server = server
        self.cache = DocCache()
        self.jobs = JobRunner(max_workers=1)
        self._pending: dict[str, Job[ActionResult]] = {}  # content hash -> running generation

    def start(self, uri: str, version: int | None, text: str, site: FunctionSite) -> Job[ActionResult]:
        """The background job generating `site`'s doc comment."""
        ls = self._server
        key = site.content_hash
        running = self._pending.get(key)
        if running is not None and not running.done:
            return running
        path = uri_to_path(uri)
        root = ls.workspace_root(path)
        request = ActionRequest(action="document", path=path, text=text, root=root, symbol=site.name,
                                version=version)
        trusted, settings = ls.trust.trusted, ls.settings

        def work(token: Any) -> ActionResult:
            result = ls.runner.run(request, trusted=trusted, settings=settings,
                                   progress=lambda stage, percent: None, cancel=token)
            if result.ok and result.edits:
                self.cache.put(root, key, GeneratedDoc(symbol=site.name, doc=doc_block(result.edits[0].new_text),
                                                       task_id=result.task_id))
            elif not result.cancelled:
                self.cache.fail(root, key, result.error or result.verdict.message or "the document action failed")
            return result

        job = self.jobs.start(work)
        self._pending[key] = job
        return job

    def cancel_all(self) -> int:
        """Stop generating: what the user asked for runs first."""
        return self.jobs.cancel_all()

    async def wait_all(self, timeout: float) -> bool:
        return await self.jobs.wait_all(timeout)


# -- hover --------------------------------------------------------------------------------------------------------
def _header_lines(site: FunctionSite) -> int:
    """How many lines the function's head spans (up to its body's `{`): hovering in the body shows nothing."""
    brace = site.text.find("{")
    return site.text.count("\n", 0, brace if brace >= 0 else len(site.text)) + 1


def undocumented_function_at(sites: list[FunctionSite], line: int) -> FunctionSite | None:
    site = function_at(sites, line)
    if site is None or site.kind != DEFINITION or site.doc.strip():
        return None
    return site if line < site.start_line + _header_lines(site) else None


def _hover(site: FunctionSite, value: str) -> types.Hover:
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=value), range=types.Range(
        start=types.Position(line=site.start_line, character=0),
        end=types.Position(line=site.start_line + _header_lines(site) - 1, character=0)))


def doc_hover(site: FunctionSite, generated: GeneratedDoc) -> types.Hover:
    return _hover(site, f"**cra: generated documentation** — not in the file yet (code action *{INSERT_DOC_TITLE}*)"
                        f"\n\n```c\n{generated.doc}\n```")


def _cached_hover(ls: CraLanguageServer, root: str, site: FunctionSite) -> types.Hover | None:
    cached = ls.docgen.cache.get(root, site.content_hash)
    if cached is not None:
        return doc_hover(site, cached)
    failure = ls.docgen.cache.failure(root, site.content_hash)
    if failure is not None:
        return _hover(site, f"cra could not generate documentation for `{site.name}`: {failure}")
    return None


async def hover(ls: CraLanguageServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri
    if not uri.startswith("file:") or not is_c_document(uri, ls.workspace.get_text_document(uri).language_id):
        return None
    try:
        version, text, sites = await ls.documents.sites(uri)
    except DocumentError:
        return None
    site = undocumented_function_at(sites, params.position.line)
    if site is None or "document" not in await ls.available_actions():
        return None
    root = ls.workspace_root(uri_to_path(uri))
    shown = _cached_hover(ls, root, site)
    if shown is not None:
        return shown
    job = ls.docgen.start(uri, version, text, site)
    try:
        await asyncio.wait_for(asyncio.shield(job.result()), HOVER_BUDGET_S)
    except (TimeoutError, JobCancelled):
        return _hover(site, GENERATING)
    except Exception as exc:  # a pipeline bug: say so on the hover, keep serving
        logger.exception("doc generation failed")
        return _hover(site, f"cra could not generate documentation for `{site.name}`: {exc}")
    return _cached_hover(ls, root, site) or _hover(site, GENERATING)


# -- inserting ----------------------------------------------------------------------------------------------------
def insert_doc_action(ls: CraLanguageServer, uri: str, version: int | None, sites: list[FunctionSite], line: int,
                      only: Sequence[str] | None) -> types.CodeAction | None:
    """"Insert generated doc comment" for the undocumented function at `line`, when its doc is cached."""
    site = function_at(sites, line)
    if site is None or site.kind != DEFINITION or site.doc.strip() or not kind_wanted(INSERT_DOC_KIND, only):
        return None
    cached = ls.docgen.cache.get(ls.workspace_root(uri_to_path(uri)), site.content_hash)
    if cached is None:
        return None
    argument = {"uri": uri, "symbol": site.name, "version": version, "doc": cached.doc, "taskId": cached.task_id}
    title = f"{INSERT_DOC_TITLE} `{site.name}`"
    return types.CodeAction(title=title, kind=INSERT_DOC_KIND,
                            command=types.Command(title=title, command=INSERT_DOC_COMMAND, arguments=[argument]))


def check_insert_target(ls: CraLanguageServer, uri: str) -> None:
    """Raise `DocumentError` unless cra may edit `uri`: a file inside the workspace (symlinks resolved), or, when
    the editor opened no folder, a document open in it. An argument can name any path; the edit must not."""
    path = uri_to_path(uri)
    if ls.workspace_roots():
        if not ls.inside_workspace(path):
            raise DocumentError(f"cra.insertDoc refuses to edit {path}: it is outside the workspace "
                                f"({', '.join(ls.workspace_roots())}), symlinks resolved")
    elif not ls.documents.is_open(uri):
        raise DocumentError(f"cra.insertDoc refuses to edit {path}: there is no workspace folder and the file is "
                            "not open in the editor")


async def insert_doc(ls: CraLanguageServer, argument: Any) -> dict[str, Any]:
    """Insert a generated doc comment above a function (the "Insert generated doc comment" code action).
    Without a "doc" string the cached one for the function's current text is used."""
    try:
        if not isinstance(argument, dict):
            raise DocumentError('cra.insertDoc takes one argument {"uri", "symbol", "version", "doc"}')
        arg = parse_argument({k: v for k, v in argument.items() if k not in ("doc", "taskId")})
        check_insert_target(ls, arg.uri)
        version, _, sites = await ls.documents.sites(arg.uri)
        site = find_function(sites, arg.symbol or "")
        if site is None:
            raise DocumentError(f"no function named `{arg.symbol}` in this document")
        doc, task_id = argument.get("doc"), argument.get("taskId") or ""
        if doc is None:
            cached = ls.docgen.cache.get(ls.workspace_root(uri_to_path(arg.uri)), site.content_hash)
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
                                  accepted_status(ls) if applied else "rejected", reason)
    return {"ok": applied, "error": reason, "task_id": task_id}


def register(server: CraLanguageServer) -> None:
    server.docgen = DocGenerator(server)
    server.feature(types.TEXT_DOCUMENT_HOVER)(hover)

    @server.command(INSERT_DOC_COMMAND)
    async def insert_doc_command(ls: CraLanguageServer, *arguments: Any) -> dict[str, Any]:
        return await insert_doc(ls, arguments[0] if len(arguments) == 1 else None)
