"""Positions: tree-sitter speaks UTF-8 byte offsets, LSP speaks lines and UTF-16 code units."""

from __future__ import annotations


def byte_to_position(data: bytes, offset: int) -> tuple[int, int]:
    """(0-based line, UTF-16 column) of a byte offset in `data`."""
    line = data.count(b"\n", 0, offset)
    line_start = data.rfind(b"\n", 0, offset) + 1
    prefix = data[line_start:offset].decode("utf-8", errors="replace")
    return line, len(prefix.encode("utf-16-le")) // 2
