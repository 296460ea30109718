"""Fuzzing the C inputs the server hands to the indexer: random bytes, NUL bytes, invalid UTF-8, token soup and
deep nesting through `parse_source`, the server's own function scan, and the workspace index (build, then
incremental updates). Each gives an index (or a ContextError that says why), never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fuzz_support import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from cra.pipeline.context import ContextError, FileIndex, WorkspaceIndex, parse_source
from cra.server.symbols import functions_in

pytestmark = pytest.mark.timeout(180)

TOKENS = ["int", "void", "char", "struct", "s", "{", "}", "(", ")", ";", ",", "*", "return", "#define", "#include",
          "#if", "#endif", "X(", "\n", " ", "/*", "*/", "//", '"', "'", "\\", "\x00", "\xff", "typedef", "f", "a",
          "[", "]", "=", "0", "enum", "union", "static", "inline", "...", "->", "\t", "__attribute__((x))"]

c_soup = st.lists(st.sampled_from(TOKENS), max_size=120).map(lambda parts: " ".join(parts).encode("utf-8",
                                                                                                  "surrogatepass"))
nesting = st.tuples(st.sampled_from([b"{", b"(", b"[", b"int f(void) {", b"#if 1\n", b"struct s {"]),
                    st.integers(min_value=1, max_value=30_000)).map(lambda p: p[0] * p[1])
c_bytes = st.one_of(st.binary(max_size=1500), c_soup, nesting,
                    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))


@FUZZ
@given(c_bytes)
def test_parse_source_indexes_any_bytes(data: bytes):
    index = parse_source("fuzz.c", data)
    assert isinstance(index, FileIndex)


@FUZZ
@given(c_bytes)
def test_the_servers_function_scan_takes_any_bytes(data: bytes):
    sites = functions_in(data)
    assert all(site.start_line <= site.end_line for site in sites)


@FUZZ
@given(files=st.lists(c_bytes, min_size=1, max_size=3),
       edits=st.lists(st.tuples(st.integers(min_value=0, max_value=2), c_bytes), max_size=4))
def test_the_workspace_index_builds_and_updates_from_any_bytes(files: list[bytes], edits: list[tuple[int, bytes]]):
    with tempfile.TemporaryDirectory() as root:
        for number, data in enumerate(files):
            (Path(root) / f"f{number}.c").write_bytes(data)
        index = WorkspaceIndex.build(root, use_cache=False, workers=1)
        for number, data in edits:
            path = str(Path(root) / f"f{number % len(files)}.c")
            try:
                entry = index.update(path, data)
            except ContextError as exc:  # over the size limit: said so
                assert str(exc)
                continue
            assert isinstance(entry, FileIndex)
