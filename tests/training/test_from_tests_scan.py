"""`cra curate-data --from-tests` on a small project whose tests cover two of its three functions (real gcc,
real tree-sitter, real sandbox): exactly the covered functions become implement pairs, each with the implement
flow's own prompt and the original body as the answer, the workspace is left untouched, and `cra train` reads
the export."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cra.clients import cli
from cra.pipeline.actions import ActionRequest
from cra.pipeline.calllog import CallLog
from cra.pipeline.config import load_config
from cra.pipeline.context.packing import estimate_tokens
from cra.pipeline.engine import CallStats, CancelToken, Generation, Message
from cra.pipeline.orchestrator import run_action
from cra.pipeline.stages import implement as a6
from cra.training.curate import in_valid_split, prompt_digest, training_messages
from cra.training.from_tests import original_body
from cra.training.train import load_examples

PROJECTS = Path(__file__).parent / "from_tests_projects"
DOCS = {"mathx_add": "/* Sum of a and b. */", "mathx_mul": "/* Product of a and b. */"}
COVERED = {"mathx_add": "    return a + b;", "mathx_mul": "    int product = a * b;\n    return product;"}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_pairs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for name in ("implement.train.jsonl", "implement.valid.jsonl")
            for line in (out / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("from-tests")
    root = tmp / "ws"
    shutil.copytree(PROJECTS / "two_of_three", root)
    before = tree_digest(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRA_BASELINE_CACHE", str(tmp / "baseline-cache"))
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "config"))
        runs = [run_cli(["curate-data", "--from-tests", str(root), "--out", str(tmp / f"out{i}"),
                         "--valid-fraction", "0.5", "--json"]) for i in (1, 2)]
    for rc, _, err in runs:
        assert rc == 0, err
    return {"root": root, "tmp": tmp, "before": before, "after": tree_digest(root),
            "manifest": json.loads(runs[0][1]), "stderr": runs[0][2], "out": tmp / "out1", "out2": tmp / "out2"}


def test_exactly_the_covered_functions_become_pairs(scanned: dict[str, Any]) -> None:
    scan = scanned["manifest"]["from_tests"]
    assert scan["test_kind"] == "direct" and scan["functions_found"] == 3 and scan["scanned"] == 3
    by_name = {f["name"]: f for f in scan["functions"]}
    assert {n for n, f in by_name.items() if f["covered"]} == set(COVERED)
    assert by_name["mathx_clamp"]["covered"] is False and by_name["mathx_clamp"]["skipped"] == ""
    assert scan["covered"] == 2 and scan["pairs"] == 2 and scanned["manifest"]["pairs"] == 2
    pairs = read_pairs(scanned["out"])
    assert sorted(p["meta"]["function"] for p in pairs) == sorted(COVERED)
    for pair in pairs:
        meta = pair["meta"]
        assert meta["source"] == "from-tests" and meta["label"] == "positive" and meta["stage"] == "implement"
        assert meta["verified_by"] == ["tests/test_mathx.c"] and meta["path"] == "src/mathx.c"
    # Progress on stderr, one line per function.
    assert "[3/3] src/mathx.c:mathx_clamp not covered" in scanned["stderr"]
    assert "covered by tests/test_mathx.c" in scanned["stderr"]


def test_pairs_have_the_stage_prompt_and_the_original_body(scanned: dict[str, Any]) -> None:
    source = (scanned["root"] / "src" / "mathx.c").read_text()
    for pair in read_pairs(scanned["out"]):
        name = pair["meta"]["function"]
        messages = pair["messages"]
        assert messages[0]["role"] == "system" and messages[-1]["role"] == "assistant"
        assert a6.SYSTEM in messages[-2]["content"]
        assert f"Implement the C function `{name}`." in messages[-2]["content"]
        head = next(line for line in source.splitlines() if line.startswith(f"int {name}("))
        assert messages[-1]["content"] == a6.answer_prefix(DOCS[name], head) + COVERED[name]
        # The answer is exactly the body the stage's extractor would keep from such a continuation.
        body, complete = a6.extract_body(COVERED[name] + "\n}", stopped=False)
        assert complete and body.rstrip() == COVERED[name]


def test_the_workspace_is_unchanged(scanned: dict[str, Any]) -> None:
    assert scanned["after"] == scanned["before"]
    assert not (scanned["root"] / ".cra").exists()


def test_the_split_is_deterministic(scanned: dict[str, Any]) -> None:
    out, out2 = scanned["out"], scanned["out2"]
    for name in ("implement.train.jsonl", "implement.valid.jsonl"):
        assert (out / name).read_bytes() == (out2 / name).read_bytes()
    for side in ("train", "valid"):
        for line in (out / f"implement.{side}.jsonl").read_text().splitlines():
            pair = json.loads(line)
            # The key curate-data splits a logged call by: its prompt, the pre-filled assistant turn included.
            *prompt, answer = pair["messages"]
            prefix = answer["content"].removesuffix(COVERED[pair["meta"]["function"]])
            prompt.append({"role": "assistant", "content": prefix})
            assert in_valid_split(prompt_digest("implement", prompt), 0.5) is (side == "valid")


def test_cra_train_reads_the_export(scanned: dict[str, Any]) -> None:
    examples = load_examples([str(scanned["out"])], "implement")
    assert len(examples) == 2
    assert sorted(e.answer.rsplit("{\n", 1)[1] for e in examples) == sorted(COVERED.values())
    rc, _, err = run_cli(["train", "implement", "--data", str(scanned["out"]), "--held-out", "0",
                          "--base", str(scanned["tmp"] / "no-such-base.gguf"), "--out", str(scanned["tmp"] / "a.gguf")])
    assert rc != 0 and "pair" not in err.lower() and "no-such-base" in err  # the data parsed; the base is missing


class RecordingEngine:
    """An engine that answers the implement call with a given body and counts tokens as the scan does."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.messages: list[list[Message]] = []

    def count_tokens(self, model: object, text: str) -> int:
        return estimate_tokens(text)

    def generate(self, model: object, adapters: Sequence[object], messages: Sequence[Message], params: object = None,
                 cancel: CancelToken | None = None, on_text: object = None,
                 timeout_s: float | None = None) -> Generation:
        self.messages.append(list(messages))
        return Generation(text=self.body, stats=CallStats(finish_reason="stop"))


def test_a_pair_is_what_the_pipeline_logs_for_that_stub(scanned: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The real implement flow on the blanked file, answered with the original body: it passes the project's
    tests, and curate-data would turn its logged call into exactly the pair the scan wrote."""
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(tmp_path / "baseline-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "ws"
    shutil.copytree(scanned["root"], root)
    pairs = {p["meta"]["function"]: p for p in read_pairs(scanned["out"])}
    model = tmp_path / "scripted.gguf"
    model.write_bytes(b"GGUF never loaded")
    config = load_config(root, overrides={"models": {r: {"model": str(model)} for r in
                                                     ("router", "reasoning", "coding", "summarization", "validation")}},
                         user=False)
    from cra.bench.quality_tasks import blank_function, find_function

    source = (root / "src" / "mathx.c").read_text()
    log = CallLog(tmp_path / "calls.db")
    for name, pair in pairs.items():
        body = original_body(source, find_function(source, name, path="src/mathx.c"))
        engine = RecordingEngine(body)
        request = ActionRequest(action="implement", path=str(root / "src" / "mathx.c"),
                                text=blank_function(source, name, path="src/mathx.c"), root=str(root), symbol=name)
        result = run_action(request, config=config, engine=engine, log=log)  # type: ignore[arg-type]
        assert result.ok and result.verdict.tests_passed is True, result.verdict.message
        (call,) = log.calls(task_id=result.task_id)
        assert training_messages(call) == pair["messages"]
    rows = [msgspec.to_builtins(c) for c in log.calls()]
    assert len(rows) == 2


def test_bad_root_is_a_clear_error(tmp_path: Path) -> None:
    rc, out, err = run_cli(["curate-data", "--from-tests", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no such directory" in err and "Traceback" not in err and out == ""
    file = tmp_path / "file.c"
    file.write_text("int x;\n")
    rc, _, err = run_cli(["curate-data", "--from-tests", str(file), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a directory" in err
    assert not (tmp_path / "o").exists()


def test_a_project_without_tests_gives_no_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(tmp_path / "baseline-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "ws"
    shutil.copytree(PROJECTS / "no_tests", root)
    rc, out, err = run_cli(["curate-data", "--from-tests", str(root), "--out", str(tmp_path / "o")])
    assert rc == 0, err
    assert "no tests" in err and "no pairs written" in err
    assert "0 implement pairs" in out
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["manifest.json"]


def test_limit_bounds_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(tmp_path / "baseline-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "ws"
    shutil.copytree(PROJECTS / "two_of_three", root)
    rc, out, err = run_cli(["curate-data", "--from-tests", str(root), "--out", str(tmp_path / "o"), "--limit", "1",
                            "--json"])
    assert rc == 0, err
    scan = json.loads(out)["from_tests"]
    assert scan["functions_found"] == 3 and scan["scanned"] == 1 and [f["name"] for f in scan["functions"]] == [
        "mathx_add"]
    rc, _, err = run_cli(["curate-data", "--from-tests", str(root), "--out", str(tmp_path / "o2"), "--limit", "0"])
    assert rc == 2 and "--limit 0" in err


def test_a_stub_that_does_not_build_is_not_coverage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`return 0;` in a function returning a struct breaks the build, not a test: skipped, with the reason."""
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(tmp_path / "baseline-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "ws"
    shutil.copytree(PROJECTS / "struct_stub", root)
    rc, out, err = run_cli(["curate-data", "--from-tests", str(root), "--out", str(tmp_path / "o"), "--json"])
    assert rc == 0, err
    by_name = {f["name"]: f for f in json.loads(out)["from_tests"]["functions"]}
    assert by_name["pt_make"]["covered"] is False and "does not build" in by_name["pt_make"]["skipped"]
    assert by_name["pt_sum"]["covered"] is True and by_name["pt_sum"]["verified_by"] == ["tests/test_pt.c"]
    assert [p["meta"]["function"] for p in read_pairs(tmp_path / "o")] == ["pt_sum"]
