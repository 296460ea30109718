"""Table-driven tests of the text helpers the flows stand on: A6's body extraction, the engine's text stream
(stop sequences, held-back text, split UTF-8), line-level diffs to LSP edits, byte offsets to LSP positions."""

from __future__ import annotations

import pytest

from cra.pipeline.actions import TextEditOut
from cra.pipeline.engine.session import TextStream
from cra.pipeline.flows.edits import Splice, diff_edits, line_start
from cra.pipeline.stages.implement import extract_body
from cra.pipeline.textpos import byte_to_position


# ---- extract_body ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("continuation", "stopped", "body", "complete"), [
    # generation stopped on "\n}" (consumed): everything is the body
    ("    return a + b;", True, "    return a + b;\n", True),
    # the closing brace is in the text: the body ends before it, the rest is dropped
    ("    return a + b;\n}\nint other(void) { return 1; }", False, "    return a + b;\n", True),
    ("    if (a) {\n        return 1;\n    }\n    return 0;\n}", False,
     "    if (a) {\n        return 1;\n    }\n    return 0;\n", True),
    # braces inside strings, characters and comments do not count
    ('    puts("}");\n    return 0;\n}', False, '    puts("}");\n    return 0;\n', True),
    ('    puts("\\"}");\n}', False, '    puts("\\"}");\n', True),
    ("    char c = '}';\n}", False, "    char c = '}';\n", True),
    ("    // }\n    return 0;\n}", False, "    // }\n    return 0;\n", True),
    ("    /* } */ return 0;\n}", False, "    /* } */ return 0;\n", True),
    # stopped inside a nested block: not complete
    ("    if (a) {\n        return 1;", True, "    if (a) {\n        return 1;\n", False),
    # the token budget ran out (no stop): not complete; a closing code fence ends the text
    ("    return a", False, "    return a\n", False),
    ("    return 0;\n```\ntrailing prose", False, "    return 0;\n", False),
    ("", True, "\n", True),
])
def test_extract_body(continuation: str, stopped: bool, body: str, complete: bool) -> None:
    assert extract_body(continuation, stopped=stopped) == (body, complete)


# ---- the engine's text stream -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("stops", "pieces", "chunks", "text", "stopped_at"), [
    ([], [b"ab", b"c"], ["ab", "c"], "abc", None),
    # a piece that may start a stop sequence is held back until it cannot
    (["END"], [b"aE", b"N", b"x"], ["a", "ENx"], "aENx", None),
    # the stop sequence is cut, never streamed; feed says so on the piece that completed it
    (["\n}"], [b"x;", b"\n", b"}", b"more"], ["x;"], "x;", 2),
    (["```"], [b"a`", b"``b"], ["a"], "a", 1),
    # the first of several stop sequences wins
    (["\n}", "```"], [b"ok```\n}"], ["ok"], "ok", 0),
    # UTF-8 split across pieces is decoded whole; an unfinished character at the end is dropped
    ([], [b"\xc3", b"\xa9t\xc3"], ["\u00e9t"], "\u00e9t", None),
    ([], [b"\xf0\x9f", b"\x98\x80"], ["\U0001F600"], "\U0001F600", None),
])
def test_text_stream(stops: list[str], pieces: list[bytes], chunks: list[str], text: str,
                     stopped_at: int | None) -> None:
    seen: list[str] = []
    stream = TextStream(stops, seen.append)
    results = [stream.feed(p) for p in pieces[: (stopped_at + 1) if stopped_at is not None else None]]
    assert results == [i == stopped_at for i in range(len(results))]
    assert stream.finish() == text
    assert seen == chunks and "".join(seen) == text


# ---- diff_edits ---------------------------------------------------------------------------------------------------
def edit(sl: int, sc: int, el: int, ec: int, new: str) -> TextEditOut:
    return TextEditOut(start_line=sl, start_char=sc, end_line=el, end_char=ec, new_text=new)


@pytest.mark.parametrize(("old", "new", "edits"), [
    ("a\nb\n", "a\nb\n", []),
    ("a\nb\n", "a\nx\nb\n", [edit(1, 0, 1, 0, "x\n")]),  # an insertion stays an insertion
    ("a\nb\nc\n", "a\nc\n", [edit(1, 0, 2, 0, "")]),
    ("a\nb\n", "a\nB\n", [edit(1, 0, 2, 0, "B\n")]),
    ("a\nb\nc\nd\n", "A\nb\nc\nD\n", [edit(0, 0, 1, 0, "A\n"), edit(3, 0, 4, 0, "D\n")]),
    ("", "x\n", [edit(0, 0, 0, 0, "x\n")]),
    ("a\n", "a\n#endif\n", [edit(1, 0, 1, 0, "#endif\n")]),
    ("\u00e9\n", "\u00e9\n\u00e9\n", [edit(1, 0, 1, 0, "\u00e9\n")]),
])
def test_diff_edits(old: str, new: str, edits: list[TextEditOut]) -> None:
    assert diff_edits(old.encode(), new.encode()) == edits
    assert apply_lsp(old, edits) == new


def apply_lsp(text: str, edits: list[TextEditOut]) -> str:
    """Apply LSP edits (UTF-16 columns) the way an editor does: from the last to the first."""
    def offset(line: int, char: int) -> int:
        lines = text.splitlines(keepends=True)
        start = sum(len(x) for x in lines[:line])
        units = i = 0
        rest = lines[line] if line < len(lines) else ""
        while units < char and i < len(rest):
            units += 2 if ord(rest[i]) > 0xFFFF else 1
            i += 1
        return start + i

    for e in sorted(edits, key=lambda e: (e.start_line, e.start_char), reverse=True):
        text = text[:offset(e.start_line, e.start_char)] + e.new_text + text[offset(e.end_line, e.end_char):]
    return text


# ---- positions ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "offset", "position"), [
    (b"abc", 0, (0, 0)),
    (b"abc", 3, (0, 3)),
    (b"a\nbc", 2, (1, 0)),
    (b"a\nbc", 4, (1, 2)),
    (b"a\r\nb", 3, (1, 0)),
    ("\u00e9x".encode(), 2, (0, 1)),  # two UTF-8 bytes, one UTF-16 unit
    ("\U0001F600x".encode(), 4, (0, 2)),  # four bytes, a surrogate pair
    ("\U0001F600x".encode(), 5, (0, 3)),
    ("\u00e9".encode(), 1, (0, 1)),  # inside a character: its replacement counts as one unit
    ("x\n\u4e2d\u6587y".encode(), 8, (1, 2)),
])
def test_byte_to_position(text: bytes, offset: int, position: tuple[int, int]) -> None:
    assert byte_to_position(text, offset) == position


@pytest.mark.parametrize(("source", "offset", "start"), [
    (b"abc", 2, 0), (b"a\nbc", 3, 2), (b"a\nbc", 2, 2), (b"a\n", 1, 0), (b"", 0, 0),
])
def test_line_start(source: bytes, offset: int, start: int) -> None:
    assert line_start(source, offset) == start


@pytest.mark.parametrize(("source", "start", "end", "text", "result"), [
    ("int f(void)\n{\n}\n", 12, 15, "{\n    return 0;\n}", "int f(void)\n{\n    return 0;\n}\n"),
    ("/* \u00e9 */\nint f;\n", 0, 0, "/** doc */\n", "/** doc */\n/* \u00e9 */\nint f;\n"),
    ("\U0001F600 old\n", 5, 8, "new", "\U0001F600 new\n"),
])
def test_splice_edit_and_apply_agree(source: str, start: int, end: int, text: str, result: str) -> None:
    splice = Splice(start, end, text)
    data = source.encode()
    assert splice.apply(data).decode() == result
    assert apply_lsp(source, [splice.edit(data)]) == result
