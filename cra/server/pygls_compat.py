"""The pygls 2.1.1 internals cra relies on, in one place, each with why and the test that guards it.

pyproject.toml pins pygls exactly because of these; nothing else in `cra.server` touches a private attribute or an
undocumented behaviour of pygls. When pygls is upgraded, re-check each item here (and docs of the new version).

* `protocol._send_data`: pygls hands a message it cannot decode (bad JSON, bytes that are not UTF-8) only to
  `report_server_error`; JSON-RPC wants a -32700 "Parse error" response with id null, and there is no public way
  to send a message that is neither a request, a response to a known id nor a notification.
  Guarded by tests/server/test_lsp_server.py (malformed JSON, non-UTF-8 bytes).
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
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from pygls.lsp.server import LanguageServer

PARSE_ERROR = -32700


def send_parse_error(server: LanguageServer, error: Exception) -> None:
    """Answer an undecodable message with a JSON-RPC parse error (id null)."""
    server.protocol._send_data({"jsonrpc": "2.0", "id": None,
                                "error": {"code": PARSE_ERROR, "message": f"Parse error: {error}"}})


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
