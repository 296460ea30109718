"""PageRank over the workspace reference graph: a symbol many others use (directly or through users) ranks high."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from cra.pipeline.context.symbols import ENUMERATOR, FUNCTION, MACRO, MACRO_FUNCTION, PROTOTYPE, REF_IDENT, REF_KINDS

_IDENT_KINDS = frozenset({MACRO, MACRO_FUNCTION, ENUMERATOR, FUNCTION, PROTOTYPE})

if TYPE_CHECKING:
    from cra.pipeline.context.index import WorkspaceIndex


def pagerank(
    node_count: int,
    sources: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    damping: float = 0.85,
    tolerance: float = 1e-8,
    max_iterations: int = 100,
) -> np.ndarray:
    """Power iteration; dangling nodes spread their rank uniformly. Returns ranks summing to 1."""
    if node_count == 0:
        return np.zeros(0)
    if weights is None:
        weights = np.ones(len(sources), dtype=np.float64)
    out_weight = np.bincount(sources, weights=weights, minlength=node_count)
    dangling = out_weight == 0
    safe_out = np.where(dangling, 1.0, out_weight)
    edge_share = weights / safe_out[sources]
    ranks = np.full(node_count, 1.0 / node_count)
    for _ in range(max_iterations):
        spread = np.bincount(targets, weights=ranks[sources] * edge_share, minlength=node_count)
        following = (1.0 - damping) / node_count + damping * (spread + ranks[dangling].sum() / node_count)
        change = np.abs(following - ranks).sum()
        ranks = following
        if change < tolerance:
            break
    return ranks


_cache: weakref.WeakKeyDictionary[WorkspaceIndex, tuple[int, dict[str, float]]] = weakref.WeakKeyDictionary()


def symbol_ranks(index: WorkspaceIndex) -> dict[str, float]:
    """Rank per defined name, scaled so the mean is 1.0; cached until the index changes."""
    cached = _cache.get(index)
    if cached is not None and cached[0] == index.generation:
        return cached[1]
    names: dict[str, int] = {}
    # A bare identifier counts only when it names a macro, enumerator or function: one named like a global
    # variable is far more often a local (`i`, `dst`) and would crown loop counters as the most used symbols.
    ident_targets: set[str] = set()
    for entry in index.files.values():
        for symbol in entry.symbols:
            names.setdefault(symbol.name, len(names))
            if symbol.kind in _IDENT_KINDS:
                ident_targets.add(symbol.name)
    ident_names = {name: i for name, i in names.items() if name in ident_targets}
    ident_code = REF_KINDS.index(REF_IDENT)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for entry in index.files.values():
        refs = entry.references
        if not len(refs):
            continue
        # Columns, not Reference objects: this visits every reference of the workspace.
        owner_ids = np.array([names.get(o, -1) for o in refs.owner_names] + [-1], dtype=np.int64)
        a = owner_ids[refs.column("owners")]  # owner -1 (file scope) reads the trailing -1
        b = np.array(
            [(ident_names if kind == ident_code else names).get(name, -1)
             for name, kind in zip(refs.name_list(), refs.kind_codes().tolist())],
            dtype=np.int64,
        )
        edge = (a >= 0) & (b >= 0) & (a != b)
        src.append(a[edge])
        dst.append(b[edge])
    ranks = pagerank(
        len(names),
        np.concatenate(src) if src else np.zeros(0, dtype=np.int64),
        np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64),
    )
    scale = float(len(names)) if len(names) else 1.0
    result = {name: float(ranks[i]) * scale for name, i in names.items()}
    _cache[index] = (index.generation, result)
    return result
