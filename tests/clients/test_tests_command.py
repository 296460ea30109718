"""`cra tests detect|run`: real fixture projects, real gcc, in-process CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cra.clients.cli import main

PROJECTS = Path(__file__).parents[1] / "pipeline" / "sandbox" / "projects"


@pytest.fixture
def several(tmp_path: Path) -> Path:
    return Path(shutil.copytree(PROJECTS / "several_mains", tmp_path / "several_mains"))


def test_detect_json_lists_each_program_and_its_units(several: Path, capsys) -> None:
    assert main(["tests", "detect", str(several), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["kind"] == "direct" and not plan["trusted"]
    assert {p["name"]: p["units"] for p in plan["programs"]} == {
        "tests/test_calc.c": ["tests/test_calc.c", "src/calc.c"],
        "tests/test_strutil.c": ["tests/test_strutil.c", "src/strutil.c"]}


def test_run_prints_pass_fail_per_program(several: Path, capsys) -> None:
    (several / "src" / "strutil.c").write_text((several / "src" / "strutil.c").read_text().replace("n++", "n += 2"))
    assert main(["tests", "run", str(several)]) == 1
    out = capsys.readouterr().out
    assert "PASSED       tests/test_calc.c" in out and "FAILED       tests/test_strutil.c: exit 1" in out


def test_untrusted_run_says_the_project_build_was_not_run(tmp_path: Path, capsys) -> None:
    root = Path(shutil.copytree(PROJECTS / "make_check", tmp_path / "make_check"))
    assert main(["tests", "run", str(root)]) == 0
    out = capsys.readouterr().out
    assert "not trusted" in out and "--trust" in out and "MAKE-CHECK-RAN" not in out


@pytest.mark.parametrize("make_bad", [lambda p: p / "missing", lambda p: p / "file.c"])
def test_bad_root_is_a_clear_error(tmp_path: Path, capsys, make_bad) -> None:
    (tmp_path / "file.c").write_text("int x;\n")
    bad = make_bad(tmp_path)
    assert main(["tests", "run", str(bad)]) == 2
    assert main(["tests", "detect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and ("does not exist" in err or "not a directory" in err) and "Traceback" not in err
