"""The pygls 2.1.1 internals cra relies on, in one place, each with why and the test that guards it.

pyproject.toml pins pygls exactly because of these; nothing else in `cra.server` touches a private attribute or an
undocumented behaviour of pygls. When pygls is upgraded, re-check each item here (and docs of the new version).

* `protocol._send_data`: pygls hands a message it cannot decode (bad JSON, bytes that are not UTF-8) only to
  `report_server_error`; JSON-RPC wants a -32700 "Parse error" response with id null, and there is no public way
  to send a message that is neither a request, a response to a known id nor a notification.
  Guarded by tests/server/test_lsp_server.py (malformed JSON, non-UTF-8 bytes) and test_framing_errors.py.
* `protocol._shutdown`: after `shutdown` pygls drops every request but `exit` without an answer; the LSP wants an
  InvalidRequest error for them, so cra's reader answers those itself.
  Guarded by tests/server/test_framing_errors.py (a request after shutdown).
* The read loop (`pygls.io_.run_async`) is replaced, not wrapped (`cra.server.wire`): cra reads frames itself and
  hands each decoded message to the public `protocol.structure_message` / `handle_message`, so that a message
  pygls cannot structure (`params: null`, a wrong type) is answered with an error instead of only being logged.
  It relies on `structure_message` raising `JsonRpcInvalidParams` for a cattrs validation error and on
  `JsonRPCServer.shutdown()` releasing pygls' thread pool. Guarded by tests/server/test_framing_errors.py.
* `protocol.fm` (`features`, `builtin_features`, `commands`): the methods and commands a server handles, for the
  robustness fuzzing (`cra bench robustness`, tests/server/test_fuzz_params.py) to cover each one.
* `TextDocument._apply_incremental_change`: pygls applies each incremental change by splitting the whole text
  into lines and rewriting them in a Python loop, on the event loop: 0.4 s per keystroke in a 20 MB document,
  blocking every request. For large texts cra splices the change in instead (the same result; line breaks and
  position conversion exactly as pygls' own: `splitlines` and the document's position codec). Guarded by
  tests/server/test_fuzz_incremental_edits.py (same text as pygls' for random edits) and
  tests/server/test_hostile_inputs.py (keystrokes in a 20 MB document).
* `protocol._request_futures`: pygls answers `$/cancelRequest` for a `workspace/executeCommand` at once but keeps
  the command's coroutine running; the only thing that learns of the cancel is the request's future in this
  dict, so cra ties that future to its job. pygls also iterates this dict, cancelling, after the `shutdown`
  handler, and fails with "dictionary changed size during iteration" when a command's future leaves it
  meanwhile; cra's shutdown handler waits until its commands have left it.
  Guarded by tests/server/test_long_jobs.py ($/cancelRequest, shutdown during a command).
* `work_done_progress.tokens`: `window/workDoneProgress/cancel` cancels the `concurrent.futures.Future` pygls keeps
  per progress token; there is no callback API for it. Guarded by tests/server/test_long_jobs.py.
* `protocol._converter` / `protocol._serialize_message`: the cattrs converter builds the (un)structure functions
  of a message type the first time it meets the type (tens of ms for a code action request). The server has them
  built in the background after `initialize`, so that the editor's first requests do not pay for it.
  Guarded by tests/server/test_startup.py and measured by `cra bench lsp` (first codeAction).
  The answer to `initialize` (`InitializeResult`, `ServerCapabilities`) is written once per process, so building
  cattrs' functions for it (for every capability type it could hold, ~30 classes) is pure start-up cost: those two
  are unstructured field by field instead (`unstructure_once_types`), the same way lsprotocol's hooks would
  (camelCase names, fields at their default left out unless lsprotocol marks them special). Guarded by
  tests/server/test_startup_latency.py (the same JSON as lsprotocol's own functions give).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, overload

import attrs
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace.text_document import TextDocument

PARSE_ERROR = -32700


def send_error(server: LanguageServer, msg_id: int | str | None, code: int, message: str) -> None:
    """Send a JSON-RPC error response (id null when the request's id could not be read)."""
    server.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


def send_parse_error(server: LanguageServer, error: Exception) -> None:
    """Answer an undecodable message with a JSON-RPC parse error (id null)."""
    send_error(server, None, PARSE_ERROR, f"Parse error: {error}")


def shutting_down(server: LanguageServer) -> bool:
    """Whether `shutdown` was received: pygls then ignores every request but `exit` without answering."""
    return bool(server.protocol._shutdown)


def current_request(server: LanguageServer) -> tuple[Any, Future[Any] | Any | None]:
    """(id, future) of the request whose handler is running; the future is cancelled by `$/cancelRequest`."""
    msg_id = server.protocol.msg_id
    if msg_id is None:
        return None, None
    return msg_id, server.protocol._request_futures.get(msg_id)


def request_pending(server: LanguageServer, msg_id: Any) -> bool:
    """Whether pygls still tracks the request (its response has not been sent)."""
    return msg_id in server.protocol._request_futures


def on_progress_cancel(server: LanguageServer, token: str, callback: Callable[[], None]) -> bool:
    """Run `callback` when the client cancels the progress `token` (`window/workDoneProgress/cancel`)."""
    future = server.work_done_progress.tokens.get(token)
    if future is None:
        return False
    future.add_done_callback(lambda f: callback() if f.cancelled() else None)
    return True


def warm_converter(server: LanguageServer, messages: Iterable[dict[str, Any]], results: Iterable[Any]) -> None:
    """Build the converter's functions for these incoming messages (JSON-RPC dicts, as read from the wire) and
    outgoing values (lsprotocol objects), as the first real ones would; thread-safe (cattrs caches by type)."""
    protocol = server.protocol
    for message in messages:
        protocol.structure_message(message)
    for value in results:
        json.dumps(value, default=protocol._serialize_message)


def registered(server: LanguageServer) -> tuple[set[str], set[str]]:
    """(the LSP methods the server handles, its own and pygls' built-in ones; its executeCommand commands)."""
    fm = server.protocol.fm
    return set(fm.features) | set(fm.builtin_features), set(fm.commands)


# -- incremental changes for large documents ----------------------------------------------------------------------
LARGE_DOCUMENT_CHARS = 200_000  # below this pygls' own loop takes a few ms
# Every line break `str.splitlines` (pygls' line model) knows other than "\n": texts containing one take pygls' path.
_OTHER_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # one `in` each: C speed, unlike a regex
_FIND_LIMIT = 2_000  # up to this many lines, find them one by one; beyond, one C-level split


class _Lines(Sequence[str]):
    """`text.splitlines(True)` for a text whose only line break is "\n", computed lazily: only the lines asked for."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._breaks = text.count("\n")
        self._count = self._breaks + (0 if not text or text.endswith("\n") else 1)
        self._starts: dict[int, int] = {}

    def __len__(self) -> int:
        return self._count

    def start(self, line: int) -> int:
        if line <= 0:
            return 0
        if line >= self._count:
            return len(self.text)
        if line in self._starts:
            return self._starts[line]
        if line <= _FIND_LIMIT:
            offset = -1
            for _ in range(line):
                offset = self.text.find("\n", offset + 1)
            start = offset + 1
        elif line <= self._breaks // 2:  # split off the lines before it, at C speed
            start = len(self.text) - len(self.text.split("\n", line)[-1])
        else:  # nearer the end: split off the lines after it
            start = len(self.text.rsplit("\n", self._breaks - line + 1)[0]) + 1
        self._starts[line] = start
        return start

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        start = self.start(index)
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end + 1]


_pygls_incremental_change = TextDocument._apply_incremental_change


def _incremental_change(document: TextDocument, change: types.TextDocumentContentChangePartial) -> None:
    """pygls' `_apply_incremental_change`, without its pass over every line for a large text."""
    source = document.source
    if len(source) < LARGE_DOCUMENT_CHARS or any(mark in source for mark in _OTHER_LINE_BREAKS):
        _pygls_incremental_change(document, change)
        return
    lines = _Lines(source)
    span = document.position_codec.range_from_client_units(lines, change.range)
    start_line, end_line = span.start.line, span.end.line
    if start_line == len(lines):  # pygls: an edit at the very end appends
        document._source = source + change.text
        return
    if end_line < start_line:  # pygls' loop writes every line unchanged then
        return
    start_text, end_text = lines[start_line], lines[end_line]
    start = lines.start(start_line) + min(max(span.start.character, 0), len(start_text))
    end = lines.start(end_line) + min(max(span.end.character, 0), len(end_text))
    document._source = source[:start] + change.text + source[end:]


def install_fast_incremental_changes() -> None:
    """Make pygls apply incremental changes to large documents without its per-line loop (idempotent)."""
    TextDocument._apply_incremental_change = _incremental_change  # type: ignore[method-assign, assignment]


# Types the server unstructures once per process (the answer to `initialize`).
ONCE_TYPES: tuple[type, ...] = (types.InitializeResult, types.ServerCapabilities)


def _camel(name: str) -> str:
    """lsprotocol's field name → JSON key (`text_document_sync` → `textDocumentSync`, `from_` → `from`)."""
    bare = name.removesuffix("_")
    head, *rest = bare.split("_")
    return head + "".join(part.title() for part in rest)


def _unstructure_fields(converter: Any, cls: type) -> Callable[[Any], dict[str, Any]]:
    plan = [(f.name, _camel(f.name), f.default, not types.is_special_property(cls, f.name))
            for f in attrs.fields(cls)]

    def unstructure(value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key, default, omit_default in plan:
            item = getattr(value, name)
            if omit_default:
                if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                    default = default.factory()
                if item == default:
                    continue
            out[key] = converter.unstructure(item)
        return out

    return unstructure


def unstructure_once_types(server: LanguageServer) -> None:
    """Unstructure ONCE_TYPES field by field, without generating cattrs functions for them (see the module doc)."""
    converter = server.protocol._converter
    for cls in ONCE_TYPES:
        converter.register_unstructure_hook(cls, _unstructure_fields(converter, cls))
