"""Workspace copy, compile_commands.json flags, diagnostic parsing, condensation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cra.pipeline.sandbox import (
    CompileCommandsError,
    Diagnostic,
    PathOutsideWorkspace,
    WorkspaceTooLarge,
    condense,
    copy_workspace,
    flags_for,
    new_warnings,
    parse_diagnostics,
)
from cra.pipeline.sandbox.flags import rebase_flags


def _project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.c").write_text("int a(void) { return 1; }\n")
    (root / "include").mkdir()
    (root / "include" / "a.h").write_text("int a(void);\n")
    (root / "Makefile").write_text("all:\n\tcc -c src/a.c\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / ".cra").mkdir()
    (root / ".cra" / "calls.db").write_text("db")
    (root / "src" / "a.o").write_bytes(b"\x7fELF")
    (root / "huge.bin").write_bytes(b"x" * 5000)
    return root


def test_copy_workspace_skips_tool_dirs_outputs_and_big_files(tmp_path: Path) -> None:
    root = _project(tmp_path / "ws")
    dest = tmp_path / "copy"
    copied = copy_workspace(root, dest, changed={"src/a.c": "int a(void) { return 2; }\n"}, max_file_bytes=4096)
    assert copied == ["Makefile", "include/a.h", "src/a.c"]
    assert (dest / "src" / "a.c").read_text() == "int a(void) { return 2; }\n"
    assert (root / "src" / "a.c").read_text() == "int a(void) { return 1; }\n"  # the user's file is untouched
    assert not (dest / ".git").exists() and not (dest / ".cra").exists() and not (dest / "src" / "a.o").exists()


def test_copy_workspace_new_file_budget_and_escape(tmp_path: Path) -> None:
    root = _project(tmp_path / "ws")
    copied = copy_workspace(root, tmp_path / "c1", changed={str(root / "src" / "new.c"): "int n;\n"})
    assert "src/new.c" in copied and (tmp_path / "c1" / "src" / "new.c").read_text() == "int n;\n"
    with pytest.raises(WorkspaceTooLarge, match="more than 100 bytes"):
        copy_workspace(root, tmp_path / "c2", max_bytes=100)
    with pytest.raises(PathOutsideWorkspace, match="outside the workspace"):
        copy_workspace(root, tmp_path / "c3", changed={"../evil.c": "x"})


def test_flags_from_compile_commands_arguments_form(tmp_path: Path) -> None:
    root = _project(tmp_path / "ws")
    (root / "build").mkdir()
    (root / "build" / "compile_commands.json").write_text(json.dumps([{
        "directory": str(root / "build"), "file": "../src/a.c",
        "arguments": ["/usr/bin/gcc", "-DMODE=2", "-I../include", "-isystem", "../vendor", "-O2",
                      "-o", "CMakeFiles/a.dir/a.c.o", "-c", "../src/a.c", "-MD", "-MF", "a.d"],
    }]))
    got = flags_for(root, "src/a.c")
    assert got.source == "compile_commands" and got.database == "build/compile_commands.json"
    assert got.flags == ["-DMODE=2", f"-I{root / 'include'}", "-isystem", str(root / "vendor"), "-O2"]


def test_flags_from_compile_commands_command_form_and_fallback(tmp_path: Path) -> None:
    root = _project(tmp_path / "ws")
    (root / "compile_commands.json").write_text(json.dumps([{
        "directory": str(root), "file": str(root / "src" / "a.c"),
        "command": "cc -std=gnu99 -D'NAME=\"x y\"' -Iinclude -c -o a.o src/a.c",
    }]))
    got = flags_for(root, str(root / "src" / "a.c"))
    assert got.flags == ["-std=gnu99", '-DNAME="x y"', f"-I{root / 'include'}"]
    other = flags_for(root, "src/other.c")
    assert other.source == "default"
    assert other.flags[:3] == ["-std=c11", "-Wall", "-Wextra"] and f"-I{root / 'include'}" in other.flags
    assert rebase_flags(got.flags, root, Path("/sbx")) == ["-std=gnu99", '-DNAME="x y"', "-I/sbx/include"]
    (root / "compile_commands.json").write_text("{not json")
    with pytest.raises(CompileCommandsError, match="not valid JSON"):
        flags_for(root, "src/a.c")


GCC_OUTPUT = """\
In file included from /tmp/sbx1/src/main.c:2:
/tmp/sbx1/include/util.h:3:5: warning: no previous prototype for 'helper' [-Wmissing-prototypes]
/tmp/sbx1/src/main.c: In function 'main':
/tmp/sbx1/src/main.c:10:12: error: 'y' undeclared (first use in this function)
   10 |     return y;
      |            ^
/tmp/sbx1/src/main.c:10:12: note: each undeclared identifier is reported only once
src/lib.c:4:1: fatal error: missing.h: No such file or directory
/usr/bin/ld: /tmp/sbx1/tmp/ccAbc.o: in function `main':
main.c:(.text+0x1e): undefined reference to `frob'
/usr/bin/ld: /tmp/sbx1/tmp/ccB.o:(.data+0x0): multiple definition of `x'; /tmp/ccA.o:(.data+0x0): first defined here
collect2: error: ld returned 1 exit status
"""


def test_parse_diagnostics_compiler_and_linker() -> None:
    diags = parse_diagnostics(GCC_OUTPUT, "/tmp/sbx1")
    assert diags[0] == Diagnostic("include/util.h", 3, 5, "warning", "no previous prototype for 'helper'",
                                  "-Wmissing-prototypes")
    assert diags[1] == Diagnostic("src/main.c", 10, 12, "error", "'y' undeclared (first use in this function)")
    assert diags[2].severity == "note"
    assert diags[3] == Diagnostic("src/lib.c", 4, 1, "error", "missing.h: No such file or directory")
    assert diags[4] == Diagnostic("main.c", None, None, "error", "undefined reference to `frob'")
    assert diags[5].message.startswith("multiple definition of `x'") and diags[5].severity == "error"
    assert diags[5].file == "tmp/ccB.o"
    assert len(diags) == 6  # context lines and the collect2 summary are not diagnostics
    assert diags[1].render() == "src/main.c:10:12: error: 'y' undeclared (first use in this function)"


def test_new_warnings_ignore_line_shifts_but_count_copies() -> None:
    w = Diagnostic("a.c", 3, 1, "warning", "unused variable 'x'", "-Wunused-variable")
    moved = Diagnostic("a.c", 9, 1, "warning", "unused variable 'x'", "-Wunused-variable")
    other = Diagnostic("a.c", 4, 1, "warning", "unused variable 'z'", "-Wunused-variable")
    assert new_warnings([w], [moved]) == []
    assert new_warnings([w], [moved, other, moved]) == [other, moved]


def test_condense_keeps_first_error_unique_diagnostics_and_failures() -> None:
    noise = [f"compiling file {i}" for i in range(300)]
    repeated = [f"src/x.c:{i}:1: warning: unused variable 'v' [-Wunused-variable]" for i in range(50)]
    lines = noise + ["ctx before", "src/a.c:3:4: error: expected ';' before '}' token", "  3 | x = 1", "ctx after"]
    lines += repeated + ["test_a.c:12: test_add: Assertion `add(1,1)==3' failed.", "0 Tests 1 Failures 0 Ignored"]
    text = "\n".join(lines)
    short = condense(text, 1500)
    assert len(short) <= 1500
    assert short == condense(text, 1500)  # deterministic
    assert "first error:\ncompiling file 299\nctx before\nsrc/a.c:3:4: error: expected ';' before '}' token\n  3 | x = 1" in short
    assert short.split("unique diagnostics and failures:")[1].count("unused variable 'v'") == 1
    assert "Assertion `add(1,1)==3' failed." in short
    assert "1 error lines, 50 warning lines" in short
    assert "compiling file 17" not in short
    assert condense("short output", 100) == "short output"
    with pytest.raises(ValueError):
        condense("x", 0)
