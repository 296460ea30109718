"""The workspace of a file: what `cra run` hands the server as its root, so the project's build files are seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.pipeline.workspace_root import find_root


@pytest.mark.parametrize("marker", ["CMakeLists.txt", "configure.ac", "meson.build", "cra.toml"])
def test_a_source_in_a_subfolder_belongs_to_the_project_root(tmp_path: Path, marker: str) -> None:
    (tmp_path / marker).write_text("")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "Makefile.am").write_text("")  # automake's per-folder file marks no root
    source = tmp_path / "src" / "lib.c"
    source.write_text("int f(void) { return 0; }\n")
    assert find_root(source) == tmp_path.resolve()


def test_the_nearest_project_wins(tmp_path: Path) -> None:
    (tmp_path / "CMakeLists.txt").write_text("")
    inner = tmp_path / "vendor" / "lib"
    inner.mkdir(parents=True)
    (inner / "Makefile").write_text("all:\n")
    assert find_root(inner / "x.c") == inner.resolve()

