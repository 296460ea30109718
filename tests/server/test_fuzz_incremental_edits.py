"""cra's incremental-change path for large documents (`pygls_compat`) gives exactly pygls' text for any edit:
random documents (multi-byte and non-BMP characters, with or without a final newline), random ranges (inverted,
past the end of a line or of the text) and random inserted text."""

from __future__ import annotations

import pytest
from fuzz_support import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace.text_document import TextDocument

from cra.server import pygls_compat

line_text = st.text(alphabet=st.sampled_from(list("ab ;{}é\t") + ["😋", "中"]), max_size=12)
documents = st.tuples(st.lists(line_text, min_size=0, max_size=30), st.booleans()).map(
    lambda parts: "\n".join(parts[0]) + ("\n" if parts[1] else ""))
positions = st.builds(types.Position, line=st.integers(min_value=0, max_value=34),
                      character=st.integers(min_value=0, max_value=16))


def apply(function, source: str, start: types.Position, end: types.Position, text: str) -> str:
    document = TextDocument("file:///w/x.c", source, version=1)
    change = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=start.line, character=start.character),
                          end=types.Position(line=end.line, character=end.character)), text=text)
    function(document, change)
    return document.source


@FUZZ
@given(source=documents, start=positions, end=positions, text=line_text)
def test_the_fast_path_edits_exactly_like_pygls(monkeypatch: pytest.MonkeyPatch, source: str,
                                                start: types.Position, end: types.Position, text: str):
    monkeypatch.setattr(pygls_compat, "LARGE_DOCUMENT_CHARS", 0)  # every text takes the fast path
    expected = apply(pygls_compat._pygls_incremental_change, source, start, end, text)
    assert apply(pygls_compat._incremental_change, source, start, end, text) == expected


def test_a_keystroke_in_a_20_mb_document_is_spliced_in_quickly():
    import time

    pygls_compat.install_fast_incremental_changes()
    source = "int f(int a) { return a; }\n" * 750_000
    document = TextDocument("file:///w/big.c", source, version=1)
    worst = 0.0
    for line in (3, 375_000, 749_999):
        started = time.perf_counter()
        document.apply_change(types.TextDocumentContentChangePartial(range=types.Range(
            start=types.Position(line=line, character=4), end=types.Position(line=line, character=4)), text="x"))
        worst = max(worst, time.perf_counter() - started)
    assert document.source.count("x") == source.count("x") + 3
    assert document.lines[375_000].startswith("int xf(")
    assert worst < 0.25, f"a keystroke took {worst:.3f} s (pygls' own loop: ~0.4 s)"
