"""`programs_reaching`: the test programs whose own code can run a function (real tree-sitter index)."""

from __future__ import annotations

from pathlib import Path

from cra.pipeline.context.index import WorkspaceIndex
from cra.pipeline.sandbox.reach import callers_of, program_source, programs_reaching

FILES = {
    "compress.c": "int compress2(char *d, int n, int level) { return n + level; }\n"
                  "int compress(char *d, int n) { return compress2(d, n, 6); }\n"
                  "static int (*table[])(char *, int) = { compress };\n",
    "gzio.c": "int gzwrite(char *d, int n) { return n; }\n",
    "test/example.c": "int compress(char *d, int n);\nint main(void) { return compress(0, 1) != 7; }\n",
    "test/minigzip.c": "int gzwrite(char *d, int n);\nint main(void) { return gzwrite(0, 1) != 1; }\n",
}


def tree(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_a_program_reaches_the_target_through_the_functions_that_call_it(tmp_path: Path) -> None:
    root = tree(tmp_path)
    callers = callers_of(WorkspaceIndex.build(str(root), use_cache=False), "compress2")
    assert {"compress2", "compress", "table"} <= callers and "gzwrite" not in callers  # calls, and a callback table
    names = ["test/example.c", "test/minigzip.c", "examples/zran.c[-DTEST]", "make check"]
    assert programs_reaching(root, names, "compress2") == {"test/example.c"}
    assert programs_reaching(root, names, "gzwrite") == {"test/minigzip.c"}
    assert programs_reaching(root, names, "nowhere") == set()


def test_a_program_name_with_its_defines_names_its_source() -> None:
    assert program_source("examples/zran.c[-DTEST]") == "examples/zran.c"
    assert program_source("tests/t.c") == "tests/t.c"


def test_a_root_that_cannot_be_indexed_reaches_nothing(tmp_path: Path) -> None:
    # a file, or a folder gone meanwhile: no program is judged by reach, the verdict keeps its other grounds
    (tmp_path / "file.c").write_text("int x;\n")
    assert programs_reaching(tmp_path / "file.c", ["test/example.c"], "compress2") == set()
    assert programs_reaching(tmp_path / "gone", ["test/example.c"], "compress2") == set()
    assert programs_reaching(tmp_path, [], "compress2") == set()
