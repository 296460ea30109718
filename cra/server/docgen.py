"""Hover on an undocumented function: its generated Doxygen comment, from the cache or generated in the background.

The hover never waits beyond `HOVER_BUDGET_S`: on a cache miss it starts the document action (through the
runtime, like any action) and answers "generating…"; the next hover shows the comment, and a code action offers
to insert it (`cra.insertDoc`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from cra.pipeline.actions import ActionRequest, ActionResult

from .actions import INSERT_DOC_COMMAND, INSERT_DOC_KIND, kind_wanted
from .doccache import GeneratedDoc, doc_block
from .documents import DocumentError, is_c_document, uri_to_path
from .jobs import JobCancelled
from .symbols import DEFINITION, FunctionSite, function_at

if TYPE_CHECKING:
    from .app import CraLanguageServer

logger = logging.getLogger(__name__)

HOVER_BUDGET_S = 0.3
INSERT_DOC_TITLE = "cra: Insert generated doc comment"
GENERATING = "cra: generating documentation… (hover again in a moment)"


def _header_lines(site: FunctionSite) -> int:
    """How many lines the function's head spans (up to its body's `{`): hovering in the body shows nothing."""
    brace = site.text.find("{")
    return site.text.count("\n", 0, brace if brace >= 0 else len(site.text)) + 1


def undocumented_function_at(sites: list[FunctionSite], line: int) -> FunctionSite | None:
    site = function_at(sites, line)
    if site is None or site.kind != DEFINITION or site.doc.strip():
        return None
    return site if line < site.start_line + _header_lines(site) else None


def _markdown(value: str) -> types.MarkupContent:
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=value)


def _hover(site: FunctionSite, value: str) -> types.Hover:
    return types.Hover(contents=_markdown(value), range=types.Range(
        start=types.Position(line=site.start_line, character=0),
        end=types.Position(line=site.start_line + _header_lines(site) - 1, character=0)))


def doc_hover(site: FunctionSite, generated: GeneratedDoc) -> types.Hover:
    return _hover(site, f"**cra: generated documentation** — not in the file yet (code action *{INSERT_DOC_TITLE}*)"
                        f"\n\n```c\n{generated.doc}\n```")


def start_generation(ls: CraLanguageServer, uri: str, version: int | None, text: str, site: FunctionSite) -> Any:
    """The background job generating `site`'s doc comment (one per content hash at a time)."""
    key = site.content_hash
    running = ls.doc_pending.get(key)
    if running is not None and not running.done:
        return running
    path = uri_to_path(uri)
    root = ls.workspace_root(path)
    request = ActionRequest(action="document", path=path, text=text, root=root, symbol=site.name, version=version)
    trusted, settings = ls.trust.trusted, ls.settings

    def work(token: Any) -> ActionResult:
        result = ls.runner.run(request, trusted=trusted, settings=settings, progress=lambda stage, percent: None,
                               cancel=token)
        if result.ok and result.edits:
            ls.doc_cache.put(root, key, GeneratedDoc(symbol=site.name, doc=doc_block(result.edits[0].new_text),
                                                     task_id=result.task_id))
        elif not result.cancelled:
            ls.doc_cache.fail(root, key, result.error or result.verdict.message or "the document action failed")
        return result

    job = ls.doc_jobs.start(work)
    ls.doc_pending[key] = job
    return job


async def hover(ls: CraLanguageServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri
    if not uri.startswith("file:") or not is_c_document(uri, ls.workspace.get_text_document(uri).language_id):
        return None
    try:
        version, text, sites = ls.function_sites(uri)
    except DocumentError:
        return None
    site = undocumented_function_at(sites, params.position.line)
    if site is None or "document" not in await ls.available_actions():
        return None
    root = ls.workspace_root(uri_to_path(uri))
    cached = ls.doc_cache.get(root, site.content_hash)
    if cached is not None:
        return doc_hover(site, cached)
    failure = ls.doc_cache.failure(root, site.content_hash)
    if failure is not None:
        return _hover(site, f"cra could not generate documentation for `{site.name}`: {failure}")
    job = start_generation(ls, uri, version, text, site)
    try:
        await asyncio.wait_for(asyncio.shield(job.result()), HOVER_BUDGET_S)
    except (TimeoutError, JobCancelled):
        return _hover(site, GENERATING)
    except Exception as exc:  # a pipeline bug: say so on the hover, keep serving
        logger.exception("doc generation failed")
        return _hover(site, f"cra could not generate documentation for `{site.name}`: {exc}")
    cached = ls.doc_cache.get(root, site.content_hash)
    if cached is not None:
        return doc_hover(site, cached)
    failure = ls.doc_cache.failure(root, site.content_hash)
    return _hover(site, f"cra could not generate documentation for `{site.name}`: {failure}" if failure
                  else GENERATING)


def insert_doc_action(ls: CraLanguageServer, uri: str, version: int | None, sites: list[FunctionSite], line: int,
                      only: list[str] | None) -> types.CodeAction | None:
    """"Insert generated doc comment" for the undocumented function at `line`, when its doc is cached."""
    site = function_at(sites, line)
    if site is None or site.kind != DEFINITION or site.doc.strip() or not kind_wanted(INSERT_DOC_KIND, only):
        return None
    cached = ls.doc_cache.get(ls.workspace_root(uri_to_path(uri)), site.content_hash)
    if cached is None:
        return None
    argument = {"uri": uri, "symbol": site.name, "version": version, "doc": cached.doc, "taskId": cached.task_id}
    title = f"{INSERT_DOC_TITLE} `{site.name}`"
    return types.CodeAction(title=title, kind=INSERT_DOC_KIND,
                            command=types.Command(title=title, command=INSERT_DOC_COMMAND, arguments=[argument]))


def register_hover(server: CraLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_HOVER)(hover)
