"""Positions: tree-sitter speaks UTF-8 byte offsets, LSP speaks lines and UTF-16 code units."""

from __future__ import annotations


def byte_to_position(data: bytes, offset: int) -> tuple[int, int]:
    """(0-based line, UTF-16 column) of a byte offset in `data`."""
    line = data.count(b"\n", 0, offset)
    line_start = data.rfind(b"\n", 0, offset) + 1
    prefix = data[line_start:offset].decode("utf-8", errors="replace")
    return line, len(prefix.encode("utf-16-le")) // 2


def position_to_offset(text: str, line: int, character: int) -> int:
    """Index into `text` (a str) of an LSP position; clamps past-the-end positions as LSP clients expect."""
    lines = text.splitlines(keepends=True)
    if line >= len(lines):
        return len(text)
    start = sum(len(x) for x in lines[:line])
    content = lines[line].rstrip("\r\n")
    units = 0
    for i, ch in enumerate(content):
        if units >= character:
            return start + i
        units += 2 if ord(ch) > 0xFFFF else 1
    return start + len(content)
