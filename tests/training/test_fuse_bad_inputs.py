"""`cra fuse` refuses bad inputs with a clear message and exit code 2, writes nothing, and shows no traceback."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from cra.clients import cli
from cra.training.synthetic import write_lora_for, write_lora_for_other_base, write_tiny_model


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    base = write_tiny_model(tmp_path / "base.gguf")
    return {"base": base, "adapter": write_lora_for(base, tmp_path / "adapter.gguf"),
            "other": write_lora_for_other_base(tmp_path / "other.gguf"), "out": tmp_path / "fused.gguf",
            "text": _write(tmp_path / "notes.gguf", "not a model\n" * 10)}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CASES: dict[str, tuple[Callable[[dict[str, Path]], list[str]], str]] = {
    "adapter for another base": (lambda f: ["--adapter", str(f["other"])], "built for another base model"),
    "missing adapter": (lambda f: ["--adapter", str(f["out"].with_name("nope.gguf"))], "does not exist"),
    "missing base": (lambda f: ["--base", str(f["out"].with_name("nobase.gguf"))], "no such file"),
    "unknown type": (lambda f: ["--type", "q3_k"], "unknown type 'q3_k'"),
    "adapter given as base": (lambda f: ["--base", str(f["adapter"])], "expected a base model GGUF"),
    "model given as adapter": (lambda f: ["--adapter", str(f["base"])], "expected a LoRA adapter GGUF"),
    "not a GGUF": (lambda f: ["--adapter", str(f["text"])], "not a GGUF file"),
    "output overwrites the base": (lambda f: ["--out", str(f["base"])], "would overwrite an input"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_clearly(case: str, files: dict[str, Path]) -> None:
    override, message = CASES[case]
    args = {"--base": str(files["base"]), "--adapter": str(files["adapter"]), "--out": str(files["out"]),
            "--type": "q8_0"}
    extra = override(files)
    args.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    base_bytes = files["base"].read_bytes()
    rc, out, err = run_cli(["fuse", *[x for pair in args.items() for x in pair]])
    assert rc == 2, err
    assert err.startswith("cra fuse: ") and message in err, err
    assert "Traceback" not in err and out == ""
    assert not files["out"].exists() and not list(files["out"].parent.glob("*.partial"))
    assert files["base"].read_bytes() == base_bytes


def test_the_good_inputs_of_those_cases_do_fuse(files: dict[str, Path]) -> None:
    # The same fixture without a bad override succeeds: the refusals above are about the input, not the setup.
    rc, out, err = run_cli(["fuse", "--base", str(files["base"]), "--adapter", str(files["adapter"]), "--out",
                            str(files["out"]), "--type", "q8_0"])
    assert rc == 0, err
    assert files["out"].is_file() and "q8_0" in out
