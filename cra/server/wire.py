"""The server's read loop: frames from the client (`framing`) → JSON → pygls, answering everything malformed.

Replaces pygls' own loop (see `pygls_compat`): pygls logs and drops a message it cannot structure, so a request
with `params: null` or a parameter of the wrong type was never answered and its client waited forever. Here every
request gets a response: a parse error (-32700) for a body that is not JSON, InvalidRequest (-32600) for a frame
or message that is not a JSON-RPC request, InvalidParams (-32602) for params that do not fit the method.

Frames are read on a daemon thread (a client that stops sending can never keep the process alive) and handed to
the event loop through a short queue, so a flood of frames cannot pile up in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, TypeGuard

from . import pygls_compat
from .framing import Frame, FrameReader

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

logger = logging.getLogger(__name__)

INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
EXIT = "exit"
QUEUE_DEPTH = 16  # frames read ahead of the event loop


def valid_id(value: Any) -> TypeGuard[int | str]:
    """A JSON-RPC request id: an integer or a string (bool is an int in Python, not in JSON)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _describe(exc: BaseException) -> str:
    """The validation error behind a pygls exception, in one readable line."""
    cause = exc.__cause__
    if cause is not None:
        try:
            from cattrs import transform_error

            details = "; ".join(transform_error(cause))  # type: ignore[arg-type]
        except Exception:  # not a cattrs error
            details = str(cause)
        if details:
            return f"{exc}: {details}"[:2000]
    return str(exc)[:2000]


def handle_body(server: LanguageServer, body: bytes) -> None:
    """Decode one frame's body and hand it to pygls; answer a request that cannot be handled with an error."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8 (UnicodeDecodeError is a ValueError), too deep
        from pygls.exceptions import JsonRpcParseError

        pygls_compat.send_parse_error(server, exc)
        server.report_server_error(exc, JsonRpcParseError)  # pygls shows "Error in server: ..." to the user
        return
    if not isinstance(data, dict):
        pygls_compat.send_error(server, None, INVALID_REQUEST,
                                f"Invalid Request: a message must be a JSON object, not {type(data).__name__}")
        return
    method = data.get("method")
    msg_id = data.get("id")
    is_request = "id" in data and "method" in data
    reply_id = msg_id if valid_id(msg_id) else None

    def refuse(code: int, message: str) -> None:
        if is_request or ("id" in data and not valid_id(msg_id)):
            pygls_compat.send_error(server, reply_id, code, message)
        else:
            logger.warning("ignoring a malformed message: %s", message)

    if data.get("jsonrpc") != "2.0":
        refuse(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"')
        return
    if "id" in data and not valid_id(msg_id):
        refuse(INVALID_REQUEST, f"Invalid Request: an id must be an integer or a string, not {json.dumps(msg_id)[:80]}")
        return
    if "method" in data and not isinstance(method, str):
        refuse(INVALID_REQUEST, "Invalid Request: \"method\" must be a string")
        return
    if is_request and method != EXIT and pygls_compat.shutting_down(server):
        refuse(INVALID_REQUEST, f"Invalid Request: the server is shutting down and no longer answers {method}")
        return
    from pygls.exceptions import JsonRpcException

    try:
        message = server.protocol.structure_message(data)
    except JsonRpcException as exc:
        if "method" not in data and valid_id(msg_id):
            # A malformed answer to one of our requests (applyEdit, configuration…): fail that request instead of
            # leaving whatever awaits it waiting forever.
            _fail_response(server, msg_id, _describe(exc))
            return
        refuse(exc.code, f"{_describe(exc)} (for {method})")
        return
    except Exception as exc:  # a converter bug on odd input: answer, keep serving
        refuse(INTERNAL_ERROR, f"Internal Error: cannot read the {method} message: {exc}")
        return
    try:
        server.protocol.handle_message(message)
    except Exception as exc:  # pygls answers a request's own failures; this is anything else
        logger.exception("cannot handle %s", method)
        refuse(INTERNAL_ERROR, f"Internal Error: {type(exc).__name__}: {exc}")


def _fail_response(server: LanguageServer, msg_id: int | str, why: str) -> None:
    error = {"jsonrpc": "2.0", "id": msg_id,
             "error": {"code": INVALID_REQUEST, "message": f"malformed response from the client: {why}"}}
    try:
        server.protocol.handle_message(server.protocol.structure_message(error))
    except Exception:
        logger.exception("cannot fail the request %r", msg_id)


def handle_frame(server: LanguageServer, frame: Frame) -> None:
    if frame.body is not None:
        handle_body(server, frame.body)
        return
    logger.warning("bad frame from the client: %s", frame.problem)
    pygls_compat.send_error(server, None, INVALID_REQUEST, f"Invalid Request: {frame.problem}")


async def read_loop(server: LanguageServer, reader: FrameReader) -> None:
    """Handle frames until the client closes the stream."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Frame | None] = asyncio.Queue(QUEUE_DEPTH)

    def pump() -> None:
        try:
            while True:
                frame = reader.next_frame()
                asyncio.run_coroutine_threadsafe(queue.put(frame), loop).result()
                if frame is None:
                    return
        except Exception as exc:  # the stream broke (or the loop is gone): end as at end of stream
            logger.warning("stopped reading from the client: %s", exc)
            try:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)
            except RuntimeError:  # the loop is closed
                pass

    threading.Thread(target=pump, name="cra-reader", daemon=True).start()
    while (frame := await queue.get()) is not None:
        handle_frame(server, frame)


def serve(server: LanguageServer, stream_in: BinaryIO, stream_out: BinaryIO) -> None:
    """Serve one client on these streams until it closes them or sends `exit` (what pygls' `start_io` does,
    with cra's reader)."""
    from pygls.io_ import StdoutWriter

    server.protocol.set_writer(StdoutWriter(stream_out))
    try:
        asyncio.run(read_loop(server, FrameReader(stream_in)))
    except BrokenPipeError:
        logger.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):  # `exit` ends the process through SystemExit
        pass
    finally:
        server.shutdown()
