"""Which test programs can exercise a function: those whose source calls it, or calls a function that (through
a few calls) does. zlib's test/example.c never names `compress2`, but calls `compress`, which does.

Used by the verdict: when every program that reaches the target fails before the change and after it, the tests
cannot say whether the change works, even if other programs pass (they never run the target).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cra.pipeline.context.symbols import REF_CALL, REF_IDENT

if TYPE_CHECKING:
    from cra.pipeline.context.index import WorkspaceIndex

MAX_DEPTH = 4  # calls between a test's code and the target
MAX_CALLERS = 2000  # a function everything calls (an allocator) reaches everything: stop widening there


def callers_of(index: WorkspaceIndex, target: str, depth: int = MAX_DEPTH) -> set[str]:
    """`target` and the functions that call it, directly or through up to `depth - 1` others (by name)."""
    names = {target}
    frontier = {target}
    for _ in range(depth):
        following: set[str] = set()
        for name in frontier:
            for _, ref in index.references_to(name):
                # a call, or a function passed by name (`qsort(..., cmp)`, a table of callbacks)
                if ref.kind in (REF_CALL, REF_IDENT) and ref.enclosing and ref.enclosing not in names:
                    following.add(ref.enclosing)
        if not following or len(names) + len(following) > MAX_CALLERS:
            break
        names |= following
        frontier = following
    return names


def program_source(name: str) -> str:
    """The source path in a test program's name: `examples/zran.c[-DTEST]` → `examples/zran.c`."""
    return name.split("[", 1)[0]


def programs_reaching(root: str | Path, programs: Iterable[str], target: str) -> set[str]:
    """The programs (by name, as the test report names them) whose own source refers to `target` or to one of
    its callers. A program named by no source file of the workspace (`make check`, a ctest name) is not judged
    here and never in the result."""
    from cra.pipeline.context import ContextError
    from cra.pipeline.context.index import WorkspaceIndex

    programs = list(programs)
    if not programs or not target:
        return set()
    try:
        index = WorkspaceIndex.build(str(root))
    except ContextError:
        return set()
    reaching = callers_of(index, target)
    found: set[str] = set()
    for name in programs:
        entry = index.files.get(program_source(name))
        if entry is not None and any(ref.name in reaching for ref in entry.references):
            found.add(name)
    return found
