"""The documents cra works on: which ones (C sources only, bounded size, valid UTF-8), their functions per
version, and the didOpen/didChange/didClose notifications that keep those current.

A document's functions come from the workspace index's incremental update (or one parse of the text when the
index is not ready or busy), computed on a worker thread when the document is opened or changed: requests await
that result for the current version and never wait for the index.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from lsprotocol import types

from .server import CraLanguageServer
from .settings import DEFAULT_MAX_DOCUMENT_BYTES
from .symbols import FunctionSite, functions_in, sites_of

logger = logging.getLogger(__name__)

C_SUFFIXES = frozenset({".c", ".h"})
C_LANGUAGE_IDS = frozenset({"c"})


class DocumentError(Exception):
    """A document the server refuses to work on; the message tells the user why."""


def uri_to_path(uri: str) -> str:
    """The file-system path of a `file:` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise DocumentError(f"cra works on files on disk only, not on {parsed.scheme or 'scheme-less'} URIs: {uri}")
    return unquote(parsed.path)


def is_c_document(uri: str, language_id: str | None = None) -> bool:
    if language_id and language_id.lower() in C_LANGUAGE_IDS:
        return True
    return PurePosixPath(urlparse(uri).path).suffix.lower() in C_SUFFIXES


def check_document(uri: str, text: str, *, language_id: str | None = None,
                   max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> bytes:
    """Return the document's UTF-8 bytes, or raise `DocumentError` saying why cra will not touch it."""
    name = PurePosixPath(urlparse(uri).path).name or uri
    if not is_c_document(uri, language_id):
        raise DocumentError(f"{name} is not a C source or header (.c/.h): cra only works on C files")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise DocumentError(f"{name} is not valid UTF-8 text (undecodable character on line {line})") from None
    if len(data) > max_bytes:
        raise DocumentError(f"{name} is {len(data):,} bytes, over cra's limit of {max_bytes:,} bytes per document")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DocumentError(f"{name} contains a NUL byte on line {line}: it looks like a binary file, not C source")
    return data


Sites = tuple[int | None, str, list[FunctionSite]]  # (version, text, functions) of one document version
Parsed = tuple[str, list[FunctionSite]]  # (text, functions)


class DocumentSites:
    """The functions of each open C document's current version, parsed on a worker thread."""

    def __init__(self, server: CraLanguageServer) -> None:
        self._server = server
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cra-parse")
        # Both touched on the event loop only.
        self._parsed: dict[str, Sites] = {}
        self._pending: dict[str, tuple[int | None, asyncio.Future[Parsed]]] = {}

    def refresh(self, uri: str) -> asyncio.Future[Parsed]:
        """Start computing the document's functions for its current text (raises OSError for an unreadable file
        that is not open)."""
        ls = self._server
        document = ls.workspace.get_text_document(uri)
        pending = self._pending.get(uri)
        if pending is not None and document.version is not None and pending[0] == document.version:
            return pending[1]
        version, text = document.version, document.source
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._compute, uri, text, document.language_id, ls.settings.max_document_bytes)
        self._pending[uri] = (version, future)
        future.add_done_callback(lambda done: self._store(uri, version, text, done))
        return future

    def _compute(self, uri: str, text: str, language_id: str | None, max_bytes: int) -> Parsed:
        """On the parse thread: check the text, then take its functions from the index or one parse."""
        ls = self._server
        data = check_document(uri, text, language_id=language_id, max_bytes=max_bytes)
        if uri.startswith("file:"):
            path = uri_to_path(uri)
            # The workspace index re-parses incrementally and keeps the buffer for the next action's context;
            # None when it is not built yet or an action holds it.
            indexed = ls.runner.note_text(ls.workspace_root(path), path, text)
            if indexed is not None:
                return text, sites_of(indexed)
        return text, functions_in(data)

    def _store(self, uri: str, version: int | None, text: str, future: asyncio.Future[Parsed]) -> None:
        pending = self._pending.get(uri)
        if pending is None or pending[1] is not future:
            return  # closed, or a newer version is on its way
        del self._pending[uri]
        if not future.cancelled() and future.exception() is None and version is not None:
            self._parsed[uri] = (version, text, future.result()[1])

    async def sites(self, uri: str) -> Sites:
        """(version, text, functions) of the document's current version; raises `DocumentError` for a document
        cra does not work on."""
        version = self._server.workspace.get_text_document(uri).version
        parsed = self._parsed.get(uri)
        if parsed is not None and version is not None and parsed[0] == version:
            return parsed
        text, sites = await asyncio.shield(self.refresh(uri))  # the one running for this version, if any
        return version, text, sites

    def forget(self, uri: str) -> None:
        self._parsed.pop(uri, None)
        self._pending.pop(uri, None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def publish_diagnostics(ls: CraLanguageServer, uri: str, *, force: bool = False) -> int:
    """Send the document's cra diagnostics against its current functions (an empty list clears them); how many."""
    if not (force or ls.diagnostics.has(uri)):
        return 0
    try:
        version, _, sites = await ls.documents.sites(uri)
    except (DocumentError, OSError, UnicodeDecodeError):  # not a document cra works on: nothing to place
        version, sites = ls.workspace.get_text_document(uri).version, []
    shown = ls.diagnostics.diagnostics(uri, sites)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=shown, version=version))
    return len(shown)


def register(server: CraLanguageServer) -> None:
    server.documents = DocumentSites(server)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CraLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        if not is_c_document(document.uri, document.language_id):
            return
        try:
            check_document(document.uri, document.text, language_id=document.language_id,
                           max_bytes=ls.settings.max_document_bytes)
        except DocumentError as exc:
            ls.show(f"{exc}; no cra actions for it", types.MessageType.Warning)
            return
        ls.documents.refresh(document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: CraLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if not is_c_document(uri, ls.workspace.get_text_document(uri).language_id):
            return
        ls.documents.refresh(uri)
        # Re-send: lines moved, or the failed function was edited (its findings are dropped and cleared).
        await publish_diagnostics(ls, uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CraLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.forget(params.text_document.uri)
