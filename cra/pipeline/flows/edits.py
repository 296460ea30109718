"""From a change to what the editor gets: LSP edits of the request's text and the file's new text.

A change is either a replacement of a byte range of the request's text (`Splice`: implement's body, document's
comment block) or a whole new text (`diff_edits`: scaffold's header/source). `propose` puts the edits, the new
text and the anchor into the action's result.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from cra.pipeline.actions import ActionResult, TextEditOut
from cra.pipeline.textpos import byte_to_position


def line_start(source: bytes, offset: int) -> int:
    """Byte offset of the start of the line holding `offset`."""
    return source.rfind(b"\n", 0, offset) + 1


def edit_between(source: bytes, start: int, end: int, new_text: str) -> TextEditOut:
    """The LSP edit replacing source[start:end] (byte offsets) by `new_text`."""
    a = byte_to_position(source, start)
    b = byte_to_position(source, end)
    return TextEditOut(start_line=a[0], start_char=a[1], end_line=b[0], end_char=b[1], new_text=new_text)


@dataclass(frozen=True, slots=True)
class Splice:
    """`text` in place of source[start:end] (byte offsets into the request's text)."""

    start: int
    end: int
    text: str

    def apply(self, source: bytes) -> bytes:
        return source[:self.start] + self.text.encode("utf-8", errors="surrogateescape") + source[self.end:]

    def edit(self, source: bytes) -> TextEditOut:
        return edit_between(source, self.start, self.end, self.text)


def diff_edits(old: bytes, new: bytes) -> list[TextEditOut]:
    """Line-level LSP edits turning `old` into `new` (so an insertion stays an insertion in the editor)."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    offsets = [0]
    for line in a:
        offsets.append(offsets[-1] + len(line))
    edits: list[TextEditOut] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        text = b"".join(b[j1:j2]).decode("utf-8", errors="surrogateescape")
        edits.append(edit_between(old, offsets[i1], offsets[i2], text))
    return edits


def propose(result: ActionResult, source: bytes, change: Splice | bytes, *, anchor: str | None = None) -> None:
    """Put a change of the request's text (`source`) into `result`: a splice as its one edit, a whole new text as
    line-level edits; `new_text` is the file after the change; `anchor` the target's text the edit was computed
    against (so the server can re-anchor it on a moved document)."""
    if isinstance(change, Splice):
        result.edits = [change.edit(source)]
        new = change.apply(source)
    else:
        result.edits = diff_edits(source, change)
        new = change
    result.new_text = new.decode("utf-8", errors="replace")
    result.anchor_text = anchor
