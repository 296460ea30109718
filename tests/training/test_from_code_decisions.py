"""`cra curate-data --from-code`: the context decisions the pipeline asks its judge, labelled by the original code
(real tree-sitter, the implement flow's own context steps): each precision question is answered "yes" exactly when
the blanked function's body names the symbol, each scope question when the file defines such a name; the
workspace is untouched and `cra train` reads the export."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cra.clients import cli
from cra.training.curate import prompt_digest
from cra.training.train import Example, balanced, fixed_subset, load_examples

FILES = {
    "src/mathutil.h": """#ifndef MATHUTIL_H
#define MATHUTIL_H
int mul(int a, int b);
int sub(int a, int b);
int neg(int a);
#define SQUARE(x) ((x) * (x))
#endif
""",
    "src/mathutil.c": """#include "mathutil.h"
int mul(int a, int b) { return a * b; }
int sub(int a, int b) { return a - b; }
int neg(int a) { return -a; }
""",
    "src/shapes.c": """#include "mathutil.h"
struct rect { int w; int h; };
struct circle { int r; };
/* Area of the rectangle, less a skew that is always zero. */
int rect_area(const struct rect *r)
{
    return mul(r->w, r->h) + sub(r->w, r->w);
}
/* Width minus height. */
int rect_skew(const struct rect *r)
{
    return sub(r->w, r->h);
}
int circle_box(const struct circle *c)
{
    return SQUARE(2 * c->r);
}
""",
}
# What each function's body names, read off the sources above by hand.
BODY_NAMES = {"rect_area": {"mul", "sub", "rect"}, "rect_skew": {"sub", "rect"}, "circle_box": {"SQUARE", "circle"},
              "mul": set(), "sub": set(), "neg": set()}
DEFINED_IN = {"mul": "src/mathutil.c", "sub": "src/mathutil.c", "neg": "src/mathutil.c", "SQUARE": "src/mathutil.h",
              "rect": "src/shapes.c", "circle": "src/shapes.c", "rect_area": "src/shapes.c",
              "rect_skew": "src/shapes.c", "circle_box": "src/shapes.c"}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("from-code")
    root = tmp / "ws"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    before = digest(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "config"))
        rc, out, err = run_cli(["curate-data", "--from-code", str(root), "--out", str(tmp / "out"),
                                "--valid-fraction", "0.3", "--json"])
    assert rc == 0, err
    pairs = [json.loads(line) for f in sorted((tmp / "out").glob("*.jsonl")) for line in f.read_text().splitlines()]
    return {"root": root, "out": tmp / "out", "before": before, "after": digest(root),
            "manifest": json.loads(out), "pairs": pairs}


def subject_name(question: str) -> str:
    signature = re.match(r"Symbol `([^`]*)`", question)
    assert signature, question
    # The symbol's name: the identifier before "(" for functions, after #define / struct otherwise.
    text = signature.group(1)
    found = (re.match(r"#define (\w+)", text) or re.match(r"struct (\w+)", text)
             or re.search(r"(\w+)\s*\(", text))
    assert found, text
    return found.group(1)


def test_every_answer_is_what_the_original_body_does(exported: dict[str, Any]) -> None:
    pairs = exported["pairs"]
    precision = [p for p in pairs if p["meta"]["stage"] == "precision_relevant"]
    scope = [p for p in pairs if p["meta"]["stage"].startswith("scope_")]
    assert precision and scope
    for pair in precision:
        function, name = pair["meta"]["function"], subject_name(pair["messages"][-2]["content"])
        assert pair["messages"][-1]["content"] == ("yes" if name in BODY_NAMES[function] else "no"), (function, name)
    for pair in scope:
        function = pair["meta"]["function"]
        path = re.match(r"The file `([^`]*)`", pair["messages"][-2]["content"]).group(1)  # type: ignore[union-attr]
        used_files = {DEFINED_IN[n] for n in BODY_NAMES[function]}
        assert pair["messages"][-1]["content"] == ("yes" if path in used_files else "no"), (function, path)
    # Both answers occur: `sub` is asked about for rect_area (one neighbour uses it) and it is used.
    assert {p["messages"][-1]["content"] for p in precision} == {"yes", "no"}
    assert any(p["meta"]["function"] == "rect_area" and subject_name(p["messages"][-2]["content"]) == "sub"
               for p in precision)


def test_a_pair_is_the_logged_form_of_a_judge_call(exported: dict[str, Any]) -> None:
    for pair in exported["pairs"]:
        system, prefix, question, answer = pair["messages"]
        assert [m["role"] for m in pair["messages"]] == ["system", "user", "user", "assistant"]
        assert system["content"].startswith("You select context for a C coding task.")
        assert prefix["content"].startswith(f"Task: Complete `{pair['meta']['function']}`")
        assert answer["content"] in ("yes", "no") and pair["meta"]["choices"] == ["yes", "no"]
        # The prompt shows the stub, never the body that gives the answer away.
        body = {"rect_area": "mul(r->w, r->h)", "rect_skew": "sub(r->w, r->h)", "circle_box": "SQUARE(2"}
        assert body.get(pair["meta"]["function"], "\0") not in prefix["content"] + question["content"]


def test_the_workspace_is_untouched_and_the_manifest_counts_the_pairs(exported: dict[str, Any]) -> None:
    assert exported["after"] == exported["before"]
    manifest = exported["manifest"]
    summary = manifest["from_code"]
    assert summary["scanned"] == summary["functions_found"] == 6 and summary["unmapped"] == 0
    assert manifest["pairs"] == len(exported["pairs"])
    by_stage: dict[str, dict[str, int]] = {}
    for pair in exported["pairs"]:
        answers = by_stage.setdefault(pair["meta"]["stage"], {})
        answers[pair["messages"][-1]["content"]] = answers.get(pair["messages"][-1]["content"], 0) + 1
    assert summary["answers"] == by_stage


def test_cra_train_reads_the_export_as_decisions(exported: dict[str, Any]) -> None:
    examples = load_examples([str(exported["out"])], "precision_relevant")
    assert len(examples) == sum(p["meta"]["stage"] == "precision_relevant" for p in exported["pairs"])
    assert all(e.choices == ["yes", "no"] and e.answer in ("yes", "no") for e in examples)


def test_a_bad_root_is_a_clear_error(tmp_path: Path) -> None:
    rc, _, err = run_cli(["curate-data", "--from-code", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no such directory" in err


def example(answer: str, n: int) -> Example:
    prompt = [{"role": "user", "content": f"q{n}"}]
    return Example(key=prompt_digest("scope_dependency", prompt), prompt=prompt, answer=answer, choices=["yes", "no"])


def test_balance_caps_the_frequent_answer_and_is_the_same_every_time() -> None:
    examples = [example("no", i) for i in range(40)] + [example("yes", 100 + i) for i in range(5)]
    kept = balanced(examples, 3)
    assert sum(e.answer == "yes" for e in kept) == 5 and sum(e.answer == "no" for e in kept) == 15
    assert {e.key for e in kept} == {e.key for e in balanced(list(reversed(examples)), 3)}
    assert [e for e in examples if e in kept] == kept  # the pairs keep their order
    assert balanced([example("no", i) for i in range(4)], 2) == [example("no", i) for i in range(4)]


def test_a_fixed_subset_is_chosen_by_prompt_hash() -> None:
    examples = [example("no", i) for i in range(30)]
    subset = fixed_subset(examples, 10)
    assert len(subset) == 10 and {e.key for e in subset} == {e.key for e in fixed_subset(examples[::-1], 10)}
    assert fixed_subset(examples, None) == examples


def test_from_code_and_from_tests_together_is_a_clear_error(tmp_path: Path) -> None:
    rc, _, err = run_cli(["curate-data", "--from-code", str(tmp_path), "--from-tests", str(tmp_path),
                          "--out", str(tmp_path / "o")])
    assert rc == 2 and "exclude each other" in err and not (tmp_path / "o").exists()


def test_a_file_as_root_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.c").write_text("int x;\n")
    rc, _, err = run_cli(["curate-data", "--from-code", str(tmp_path / "x.c"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a directory" in err
