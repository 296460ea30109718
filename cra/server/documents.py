"""The documents cra works on: which ones (C sources only, bounded size, valid UTF-8), their functions per
version, and the didOpen/didChange/didClose notifications that keep those current.

A document's functions come from the workspace index's incremental update (or one parse of the text when the
index is not ready or busy), computed on a worker thread when the document is opened or changed: requests await
that result for the current version and never wait for the index.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from lsprotocol import types

from .quickscan import SCAN_LIMIT_CHARS, scan_functions
from .server import CraLanguageServer
from .settings import DEFAULT_MAX_DOCUMENT_BYTES
from .symbols import FunctionSite, functions_in, sites_of

logger = logging.getLogger(__name__)

C_SUFFIXES = frozenset({".c", ".h"})
# Whatever `maxDocumentBytes` says, nothing larger is parsed or indexed: parsing 20 MB blocks for seconds.
MAX_DOCUMENT_BYTES_CEILING = 8 * 1024 * 1024
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


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f}".rstrip("0").rstrip(".")


def too_large(name: str, size: int, limit: int) -> DocumentError:
    return DocumentError(f"file too large for cra ({_megabytes(size)} MB > {_megabytes(limit)} MB): {name} is "
                         f"{size:,} bytes, over cra's limit of {limit:,} bytes per document (no parse, no actions)")


def document_limit(max_bytes: int) -> int:
    """The per-document size limit in force: the setting, never above `MAX_DOCUMENT_BYTES_CEILING`."""
    return min(max_bytes, MAX_DOCUMENT_BYTES_CEILING)


def read_source_file(path: str, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> str:
    """A C file that is not open in the editor, read from disk without ever blocking: only a regular file (a FIFO
    would block the reader until a writer comes, a device may never end), at most `max_bytes`."""
    name = os.path.basename(path) or path
    limit = document_limit(max_bytes)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DocumentError(f"cannot read {name}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError(f"{name} is not a regular file (a FIFO, device or directory): cra does not read it")
        if info.st_size > limit:
            raise too_large(name, info.st_size, limit)
        data = handle.read(limit + 1)
    if len(data) > limit:  # grew since the fstat
        raise too_large(name, len(data), limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DocumentError(f"{name} is not valid UTF-8 text (undecodable byte on line {line})") from None


def check_document(uri: str, text: str, *, language_id: str | None = None,
                   max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> bytes:
    """Return the document's UTF-8 bytes, or raise `DocumentError` saying why cra will not touch it."""
    name = PurePosixPath(urlparse(uri).path).name or uri
    if not is_c_document(uri, language_id):
        raise DocumentError(f"{name} is not a C source or header (.c/.h): cra only works on C files")
    limit = document_limit(max_bytes)
    if len(text) > limit:  # UTF-8 has at least one byte per character: too large without encoding it all
        raise too_large(name, len(text.encode("utf-8", "surrogatepass")), limit)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise DocumentError(f"{name} is not valid UTF-8 text (undecodable character on line {line})") from None
    if len(data) > limit:
        raise too_large(name, len(data), limit)
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
        self._parser_ready = False  # a parse has completed: the C parser is loaded, parses take milliseconds
        self.refused: set[str] = set()  # open documents cra said it will not work on (said once, not per keystroke)

    def refresh(self, uri: str) -> asyncio.Future[Parsed]:
        """Start computing the document's functions for its current text (raises OSError for an unreadable file
        that is not open)."""
        ls = self._server
        document = ls.workspace.get_text_document(uri)
        pending = self._pending.get(uri)
        if pending is not None and document.version is not None and pending[0] == document.version:
            return pending[1]
        # Never `document.source` for a document the editor has not opened: pygls would read the file on the
        # event loop, whatever it is (a FIFO blocks the whole server). The parse thread reads it safely.
        version, text = document.version, (document.source if self.is_open(uri) else None)
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._compute, uri, text, document.language_id, ls.settings.max_document_bytes)
        self._pending[uri] = (version, future)
        future.add_done_callback(lambda done: self._store(uri, version, text, done))
        return future

    def is_open(self, uri: str) -> bool:
        """Whether the editor has opened the document (pygls then holds its text)."""
        return unquote(uri) in self._server.workspace.text_documents

    def _compute(self, uri: str, text: str | None, language_id: str | None, max_bytes: int) -> Parsed:
        """On the parse thread: check the text (read from disk when not open), then take its functions from the
        index or one parse."""
        ls = self._server
        if text is None:
            if not is_c_document(uri, language_id):
                check_document(uri, "", language_id=language_id)  # raises the "not a C file" error
            text = read_source_file(uri_to_path(uri), max_bytes) if uri.startswith("file:") else ""
        data = check_document(uri, text, language_id=language_id, max_bytes=max_bytes)
        if uri.startswith("file:"):
            path = uri_to_path(uri)
            # The workspace index re-parses incrementally and keeps the buffer for the next action's context;
            # None when it is not built yet or an action holds it.
            indexed = ls.runner.note_text(ls.workspace_root(path), path, text)
            if indexed is not None:
                return text, sites_of(indexed)
        return text, functions_in(data)

    def _store(self, uri: str, version: int | None, text: str | None, future: asyncio.Future[Parsed]) -> None:
        pending = self._pending.get(uri)
        if pending is None or pending[1] is not future:
            return  # closed, or a newer version is on its way
        del self._pending[uri]
        error = None if future.cancelled() else future.exception()
        if isinstance(error, DocumentError) and self.is_open(uri) and uri not in self.refused:
            self.refused.add(uri)  # e.g. an edit made it too large: say so once
            self._server.show(f"{error}; no cra actions for it", types.MessageType.Warning)
        if not future.cancelled() and error is None:
            self.refused.discard(uri)
            self._parser_ready = True
            if version is not None:
                self._parsed[uri] = (version, *future.result())

    async def sites(self, uri: str, *, quick: bool = False) -> Sites:
        """(version, text, functions) of the document's current version; raises `DocumentError` for a document
        cra does not work on. `quick`: while the C parser is still loading (no parse has completed yet), answer
        from a scan of the text (`quickscan`) instead of waiting for it."""
        document = self._server.workspace.get_text_document(uri)
        version = document.version
        parsed = self._parsed.get(uri)
        if parsed is not None and version is not None and parsed[0] == version:
            return parsed
        future = self.refresh(uri)  # the one running for this version, if any
        if (quick and not self._parser_ready and not future.done() and self.is_open(uri)
                and len(document.source) <= SCAN_LIMIT_CHARS):  # a longer scan would hold the event loop
            text = document.source
            check_document(uri, text, language_id=document.language_id,
                           max_bytes=self._server.settings.max_document_bytes)
            return version, text, scan_functions(text)
        text, sites = await asyncio.shield(future)
        return version, text, sites

    def forget(self, uri: str) -> None:
        self.refused.discard(uri)
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
            ls.documents.refused.add(document.uri)
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
