"""Incremental re-indexing of one edited file: after tree-sitter re-parses incrementally, only the top-level
definitions around the edit are extracted again; everything after it is shifted, everything before it is kept."""

from __future__ import annotations

import msgspec
import numpy as np
import tree_sitter

from cra.pipeline.context import cparse
from cra.pipeline.context.symbols import FileIndex, Include, References, Symbol

# Siblings re-extracted on each side of an edited unit: a doc comment links a definition to the node above it.
_NEIGHBOURS = 2
# Past this share of the file, a full extraction is as cheap and simpler.
_FULL_SHARE = 0.5


class Edit(msgspec.Struct, frozen=True):
    start: int
    old_end: int
    new_end: int


def diff_span(old: bytes, new: bytes) -> Edit:
    """The smallest single span replacing old by new (common prefix and suffix kept), compared in chunks."""
    limit = min(len(old), len(new))
    start = 0
    chunk = 4096
    while start + chunk <= limit and old[start : start + chunk] == new[start : start + chunk]:
        start += chunk
    while start < limit and old[start] == new[start]:
        start += 1
    suffix = 0
    max_suffix = limit - start
    while suffix + chunk <= max_suffix and old[len(old) - suffix - chunk : len(old) - suffix] == new[
        len(new) - suffix - chunk : len(new) - suffix
    ]:
        suffix += chunk
    while suffix < max_suffix and old[len(old) - suffix - 1] == new[len(new) - suffix - 1]:
        suffix += 1
    return Edit(start, len(old) - suffix, len(new) - suffix)


def union(a: Edit, b: Edit, old_len: int, new_len: int) -> Edit:
    """One span covering both spans of the same old → new change."""
    suffix = min(old_len - a.old_end, old_len - b.old_end)
    return Edit(min(a.start, b.start), old_len - suffix, new_len - suffix)


def point(data: bytes, offset: int) -> tuple[int, int]:
    row = data.count(b"\n", 0, offset)
    return row, offset - (data.rfind(b"\n", 0, offset) + 1)


def apply_edit(tree: tree_sitter.Tree, old: bytes, new: bytes, edit: Edit) -> None:
    tree.edit(
        start_byte=edit.start,
        old_end_byte=edit.old_end,
        new_end_byte=edit.new_end,
        start_point=point(old, edit.start),
        old_end_point=point(old, edit.old_end),
        new_end_point=point(new, edit.new_end),
    )


def _units(children: list[tree_sitter.Node], lo: int, hi: int, bounds: list[int]) -> None:
    """Collect start/end bytes of the definition units touching [lo, hi], with neighbours."""
    touched = [i for i, n in enumerate(children) if n.end_byte >= lo and n.start_byte <= hi]
    if not touched:
        return
    for i in touched:
        node = children[i]
        if node.type in cparse._TRANSPARENT:
            _units(node.children, lo, hi, bounds)
    first = max(0, touched[0] - _NEIGHBOURS)
    last = min(len(children) - 1, touched[-1] + _NEIGHBOURS)
    for i in range(first, last + 1):
        node = children[i]
        if node.type not in cparse._TRANSPARENT:
            bounds.append(node.start_byte)
            bounds.append(node.end_byte)


def reextract(
    path: str,
    old_entry: FileIndex,
    old_data: bytes,
    data: bytes,
    masked: bytes,
    tree: tree_sitter.Tree,
    edit: Edit,
    changed: list[tree_sitter.Range],
) -> FileIndex:
    """`old_entry` brought up to date with `data`, re-extracting only the region around `edit`."""
    lo = min([edit.start] + [r.start_byte for r in changed])
    hi = max([edit.new_end] + [r.end_byte for r in changed])
    bounds = [lo, hi]
    _units(tree.root_node.children, lo, hi, bounds)
    region_lo, region_hi = min(bounds), max(bounds)
    delta = len(data) - len(old_data)
    old_hi = region_hi - delta
    if region_lo > edit.start or region_hi < edit.new_end or old_hi < region_lo or (
        region_hi - region_lo > _FULL_SHARE * len(data)
    ):
        return cparse.extract(path, data, tree, masked)
    builder = cparse._Builder(path, data, masked)
    builder.walk(tree.root_node.children, region_lo, region_hi)
    fresh = builder.finish(tree.root_node, region_lo, region_hi)

    line_delta = data.count(b"\n", 0, region_hi) - old_data.count(b"\n", 0, old_hi)
    boundary_row = data.count(b"\n", 0, region_hi)  # refs on this line after the region may change column

    symbols: list[Symbol] = [s for s in old_entry.symbols if s.name_byte < region_lo]
    symbols.extend(fresh.symbols)
    replace = msgspec.structs.replace
    for s in old_entry.symbols:
        if s.name_byte >= old_hi:
            symbols.append(
                replace(
                    s,
                    start_byte=s.start_byte + delta,
                    end_byte=s.end_byte + delta,
                    start_line=s.start_line + line_delta,
                    end_line=s.end_line + line_delta,
                    name_byte=s.name_byte + delta,
                    body_start_byte=s.body_start_byte + delta if s.body_start_byte >= 0 else -1,
                    body_end_byte=s.body_end_byte + delta if s.body_end_byte >= 0 else -1,
                )
            )
    symbols.sort(key=lambda s: (s.start_byte, s.name_byte))

    references = _splice(old_entry.references, fresh.references, region_lo, old_hi, delta, line_delta)
    _fix_columns(references, data, boundary_row)

    lo_row = data.count(b"\n", 0, region_lo)
    old_hi_row = old_data.count(b"\n", 0, old_hi)
    includes: list[Include] = [i for i in old_entry.includes if i.line < lo_row]
    includes.extend(fresh.includes)
    includes.extend(
        Include(i.target, i.system, i.line + line_delta) for i in old_entry.includes if i.line >= old_hi_row and i.line > lo_row
    )
    error_lines = sorted(
        {e for e in old_entry.error_lines if e < lo_row}
        | set(fresh.error_lines)
        | {e + line_delta for e in old_entry.error_lines if e > old_hi_row}
    )
    return FileIndex(
        path=path,
        sha256=cparse.sha256(data),
        size=len(data),
        symbols=symbols,
        references=references,
        includes=includes,
        error_lines=error_lines,
    )


def _splice(old: References, fresh: References, lo: int, old_hi: int, delta: int, line_delta: int) -> References:
    """Old references before `lo`, then the fresh ones, then old ones from `old_hi` on, shifted by the edit."""
    starts = old.column("starts")
    cut_lo, cut_hi = np.searchsorted(starts, [lo, old_hi]).tolist()
    offsets = old.column("offsets")
    text_lo = int(offsets[cut_lo]) if cut_lo < len(offsets) else len(old.names)
    text_hi = int(offsets[cut_hi]) if cut_hi < len(offsets) else len(old.names)
    tail = old.names[text_hi:]
    fresh_owners = fresh.column("owners")
    return References.from_columns(
        old.names[:text_lo] + fresh.names + tail,
        np.concatenate(
            [offsets[:cut_lo], fresh.column("offsets") + text_lo, offsets[cut_hi:] - text_hi + text_lo + len(fresh.names)]
        ),
        np.frombuffer(old.kinds[:cut_lo] + fresh.kinds + old.kinds[cut_hi:], dtype=np.uint8),
        np.concatenate([old.column("lines")[:cut_lo], fresh.column("lines"), old.column("lines")[cut_hi:] + line_delta]),
        np.concatenate([old.column("columns")[:cut_lo], fresh.column("columns"), old.column("columns")[cut_hi:]]),
        np.concatenate([starts[:cut_lo], fresh.column("starts"), starts[cut_hi:] + delta]),
        np.concatenate(
            [
                old.column("owners")[:cut_lo],
                np.where(fresh_owners >= 0, fresh_owners + len(old.owner_names), -1),
                old.column("owners")[cut_hi:],
            ]
        ),
        old.owner_names + fresh.owner_names,
    )


def _fix_columns(references: References, data: bytes, row: int) -> None:
    """Recompute the columns of references on line `row`, where text before them may have changed."""
    lines = references.column("lines")
    on_row = np.flatnonzero(lines == row)
    if not len(on_row):
        return
    columns = references.column("columns").copy()
    starts = references.column("starts")
    for i in on_row.tolist():
        start = int(starts[i])
        columns[i] = start - (data.rfind(b"\n", 0, start) + 1)
    references.columns = columns.tobytes()
