"""The frame reader on its own: lengths it accepts and refuses, resynchronising after a bad frame, bounded lines."""

from __future__ import annotations

import io

import pytest

from cra.server.framing import MAX_FRAME_BYTES, MAX_HEADER_LINE_BYTES, Frame, FrameReader, parse_length

BODY = b'{"jsonrpc": "2.0", "id": 1, "method": "x"}'
GOOD = b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY


def frames(data: bytes) -> list[Frame]:
    reader = FrameReader(io.BytesIO(data))
    out = []
    while (frame := reader.next_frame()) is not None:
        out.append(frame)
    return out


@pytest.mark.parametrize("value, length", [(b"5", 5), (b" 42 \r\n", 42), (b"%d" % MAX_FRAME_BYTES, MAX_FRAME_BYTES)])
def test_usable_lengths(value: bytes, length: int):
    assert parse_length(value) == (length, None)


@pytest.mark.parametrize("value, why", [
    (b"", "not a non-negative integer"), (b"-5", "not a non-negative integer"), (b"abc", "not a non-negative"),
    (b"1e3", "not a non-negative"), (b"0", "empty frame"), (b"1000000000000", "over cra's limit"),
    (b"9" * 400, "over cra's limit"), (b"%d" % (MAX_FRAME_BYTES + 1), "over cra's limit"),
])
def test_refused_lengths(value: bytes, why: str):
    length, problem = parse_length(value)
    assert length is None and problem is not None and why in problem


def test_header_names_are_case_insensitive_and_other_headers_ignored():
    data = (b"content-length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" % len(BODY)
            + BODY + b"CONTENT-LENGTH:%d\r\n\r\n" % len(BODY) + BODY)
    assert frames(data) == [Frame(body=BODY), Frame(body=BODY)]


@pytest.mark.parametrize("header", [b"Content-Length: 0", b"Content-Length: -7", b"Content-Length: abc",
                                    b"Content-Length: 1000000000000", b"X-Whatever: 1"])
def test_a_bad_frame_is_reported_and_the_next_header_resynchronises(header: bytes):
    # The bad frame's body is not newline-terminated: the next header arrives glued to it.
    data = header + b"\r\n\r\n" + BODY + GOOD
    got = frames(data)
    assert got[0].body is None and got[0].problem
    assert got[-1] == Frame(body=BODY)
    assert all(frame.body in (None, BODY) for frame in got)


def test_a_body_without_any_header_is_skipped_up_to_the_next_header():
    assert frames(b"\r\n\r\n" + BODY + GOOD) == [Frame(body=BODY)]


def test_an_endless_header_line_is_held_only_in_part_and_a_glued_header_still_found():
    junk = b"x" * (MAX_HEADER_LINE_BYTES * 50)
    stream = io.BytesIO(junk + GOOD)
    reader = FrameReader(stream)
    assert reader.next_frame() == Frame(body=BODY)


def test_a_stream_ending_inside_a_body_is_the_end():
    assert frames(b"Content-Length: 100\r\n\r\n{\"short\"") == []
