"""JSON-RPC base-protocol framing (`Content-Length: N\\r\\n\\r\\n` + N bytes), read defensively.

pygls' own reader trusts the client: a huge length is allocated at once (MemoryError kills the server), and a
header block without an exact `Content-Length: <digits>` line is skipped until a bare CRLF happens to arrive, so
one bad frame leaves the server deaf to the messages after it. This reader instead

* accepts header names case-insensitively (they are HTTP-style headers) and ignores unknown or malformed lines;
* refuses a frame whose length is missing, zero, negative, not a number or over `MAX_FRAME_BYTES`, reports it (the
  caller answers with a JSON-RPC error) and resynchronises on the next `Content-Length` header, even one glued to
  the end of the skipped bytes (a body is not newline-terminated);
* never holds more than `MAX_HEADER_LINE_BYTES` of one header line, nor more than the cap of one body.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

# Far above any real LSP message (a 1 MB C file is ~1.1 MB of JSON), far below what would exhaust memory.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# Real header lines are ~30 bytes; a longer line is junk and only its tail is kept (to find a glued header).
MAX_HEADER_LINE_BYTES = 8 * 1024
_LENGTH_HEADER = b"content-length:"


class ByteStream(Protocol):
    """What frames are read from: a buffered binary file (stdin, a socket's makefile)."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class Frame(msgspec.Struct, frozen=True):
    """One frame: its body, or why there is none (`problem`, a sentence for the client)."""

    body: bytes | None = None
    problem: str | None = None


def parse_length(value: bytes) -> tuple[int | None, str | None]:
    """(length, None) for a usable Content-Length value, else (None, why not)."""
    text = value.strip()
    shown = text[:40].decode("ascii", "replace")
    if not text.isdigit():  # rejects "", "-5", "+5", "1e3", " 5 5", non-ASCII digits
        return None, f"Content-Length {shown!r} is not a non-negative integer"
    length = int(text[:20])  # more than 20 digits is over the cap anyway; no huge int parsing
    if len(text) > 20 or length > MAX_FRAME_BYTES:
        return None, (f"a frame of {shown} bytes is over cra's limit of {MAX_FRAME_BYTES:,} bytes "
                      "(the frame is skipped)")
    if length == 0:
        return None, "Content-Length 0: an empty frame carries no message"
    return length, None


class FrameReader:
    """Reads frames from a blocking byte stream, one `next_frame()` call per frame (None at end of stream)."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def _line(self) -> bytes:
        """The next line (with its newline), or only its last `MAX_HEADER_LINE_BYTES` bytes when longer;
        b"" at end of stream."""
        line = self._stream.readline(MAX_HEADER_LINE_BYTES)
        while line and not line.endswith(b"\n") and len(line) >= MAX_HEADER_LINE_BYTES:
            more = self._stream.readline(MAX_HEADER_LINE_BYTES)
            if not more:
                break
            line = (line + more)[-MAX_HEADER_LINE_BYTES:]
        return line

    def next_frame(self) -> Frame | None:
        length: int | None = None
        problem: str | None = None
        seen = False  # any non-blank line in this header block
        while True:
            line = self._line()
            if not line:
                return None
            if not line.strip():
                if not seen:
                    continue  # stray blank lines between frames
                break
            seen = True
            lowered = line.lower()
            start = lowered.rfind(_LENGTH_HEADER)
            if start < 0:
                continue  # Content-Type or another header, or junk: ignored
            # A header at the start of the line, or glued to the end of skipped bytes: resynchronise on it.
            value = line[start + len(_LENGTH_HEADER):]
            length, problem = parse_length(value)
        if length is not None:
            body = self._stream.read(length)
            if len(body) < length:
                return None  # the stream ended inside the body
            return Frame(body=body)
        return Frame(problem=problem or "a frame without a Content-Length header (skipped)")
