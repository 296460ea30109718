"""PageRank over the reference graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cra.pipeline.context import WorkspaceIndex
from cra.pipeline.context.rank import pagerank, symbol_ranks


def test_pagerank_known_graph() -> None:
    # 0 -> 1, 2 -> 1, 1 -> 0: node 1 collects the most rank; ranks form a distribution.
    ranks = pagerank(3, np.array([0, 2, 1]), np.array([1, 1, 0]))
    assert abs(ranks.sum() - 1.0) < 1e-9
    assert ranks[1] > ranks[0] > ranks[2]
    assert pagerank(0, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).size == 0


def test_symbol_ranks_favour_widely_used_symbols(tmp_path: Path) -> None:
    users = "".join(f"int user{n}(void) {{ int i = 0; return core(i) + LIMIT; }}\n" for n in range(6))
    (tmp_path / "a.c").write_text(
        "#define LIMIT 8\nint i;\nint core(int v) { return v * 2; }\nint lonely(void) { return 1; }\n" + users
    )
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    ranks = symbol_ranks(index)
    assert ranks["core"] > ranks["lonely"]
    assert ranks["LIMIT"] > ranks["lonely"]
    assert ranks["i"] < ranks["core"]  # locals named like a global do not feed the global's rank
