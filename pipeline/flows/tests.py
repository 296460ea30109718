"""Tests: locate the function → context → A7 writes test cases (grammar-constrained) → cra renders a test program
for the project's framework → it is built against the project's sources and run in the sandbox → on failure A4
revises and A7 retries, a bounded number of rounds. The test file is returned in `ActionResult.files`."""

from __future__ import annotations

from pathlib import Path

from pipeline.actions import FileOut, Verdict
from pipeline.flows.common import (adjustment_round, assemble_for, function_shape, locate_function, relative,
                                   require_c_file, retry_or_give_up, sandbox_limits, workspace_index)
from pipeline.orchestrator import ActionFailed, Flow, State, Task
from pipeline.sandbox import SandboxError, condense, detect_test_framework, run_generated_test
from pipeline.sandbox.frameworks import GENERATED_TEST_NAME
from pipeline.sandbox.frameworks import TEST_DIR_NAMES
from pipeline.stages import test_generation as a7

TEST_DIRS = ("tests", "test")


def locate(task: Task) -> State:
    require_c_file(task.request.path)
    if not task.request.path.endswith(".c"):
        raise ActionFailed(f"{task.request.path}: tests are generated for a function definition in a .c file")
    target = locate_function(task, want_stub=False)
    shape = function_shape(task.data["source"], target)
    if shape.is_static:
        raise ActionFailed(f"{target.name} is static, so a separate test file cannot call it; "
                           "make it non-static or test it through a public function")
    task.data["target"], task.data["shape"] = target, shape
    task.result.symbol = target.name
    return State.CONTEXT


def test_path(root: Path, source_rel: str, function: str) -> str:
    """`tests/test_<fn>.c` when the project keeps its tests in a tests/ (or test/) folder, else next to the
    source file."""
    name = f"test_{function}.c"
    for folder in TEST_DIRS:
        if (root / folder).is_dir():
            return f"{folder}/{name}"
    parent = Path(source_rel).parent
    return (parent / name).as_posix() if parent.as_posix() != "." else name


def _header_for(root: Path, source_rel: str) -> str | None:
    stem = Path(source_rel).with_suffix(".h")
    for candidate in (stem, Path("include") / stem.name, stem.parent.parent / "include" / stem.name):
        if (root / candidate).is_file():
            return candidate.name
    return None


def context(task: Task) -> State:
    root = Path(task.request.root).resolve()
    rel = relative(task, task.request.path)
    target = task.data["target"]
    framework = detect_test_framework(root)
    task.data["library"] = framework.library if framework.library in ("unity", "cmocka") else "plain"
    task.data["test_rel"] = test_path(root, rel, target.name)
    header = _header_for(root, rel)
    task.data["includes"] = [header] if header else []
    task.data["declarations"] = [] if header else [task.data["shape"].declaration]
    task.data["context"] = assemble_for(task, target, stage=a7.STAGE)
    task.note = f"framework {framework.name} → {task.data['library']} test program at {task.data['test_rel']}"
    return State.GENERATE_TESTS


def generate(task: Task) -> State:
    target = task.data["target"]
    messages = a7.build_messages(context=task.data["context"].rendered, function=target.name, contract=target.doc,
                                 declaration=task.data["shape"].declaration, failure=task.failure)
    suite = task.llm.structured(a7.STAGE, messages, a7.TestSuite)
    task.data["suite"] = suite
    task.data["pruned"] = False
    task.data["test_text"] = a7.render_test_file(suite, library=task.data["library"], function=target.name,
                                                 includes=task.data["includes"],
                                                 declarations=task.data["declarations"])
    return State.VALIDATE


def _sources(task: Task) -> list[str]:
    """The project's library sources: every indexed .c file outside test folders (files with a main are left
    out by the sandbox)."""
    index = workspace_index(task)
    return sorted(p for p in index.files if p.endswith(".c")
                  and not any(part.lower() in TEST_DIR_NAMES for part in Path(p).parts[:-1]))


def validate(task: Task) -> State:
    rel = relative(task, task.request.path)
    try:
        result = run_generated_test(task.request.root, _sources(task), task.data["test_text"],
                                    changed={rel: task.request.text}, limits=sandbox_limits(task),
                                    compiler=task.config.validation.compiler, flags=task.config.validation.flags)
    except SandboxError as exc:
        raise ActionFailed(f"the generated tests could not be run: {exc}") from exc
    compiled = not any(d.severity == "error" for d in result.diagnostics) and "build failed" not in result.output
    if not compiled and _prune_cases_that_do_not_compile(task, result.diagnostics):
        return State.VALIDATE  # the cases that compile are checked again, with no model call
    if not result.ok:
        task.result.verdict = Verdict(compiled=compiled, tests_passed=False if compiled else None,
                                      message=("tests fail: " if compiled else "tests do not compile: ")
                                      + condense(result.output, 300))
        task.failure = condense(result.output, 1200)
        return retry_or_give_up(task, task.result.verdict.message, kind="test" if compiled else "compile",
                                retry=State.GENERATE_TESTS)
    test_file = str(Path(task.request.root) / task.data["test_rel"])
    task.result.files = [FileOut(path=test_file, text=task.data["test_text"])]
    task.result.verdict = Verdict(compiled=True, tests_passed=True,
                                  message=f"{result.passed} test program(s) passed ({task.data['library']})")
    return State.DONE


def _prune_cases_that_do_not_compile(task: Task, diagnostics: list) -> bool:
    """MoMA stage 3, deterministically: one case that does not compile should not sink the cases that do. Drops
    the cases the compiler's errors point into (once per generation) and re-renders the file."""
    if task.data.get("pruned"):
        return False
    errors = [d for d in diagnostics if d.severity == "error"]
    if not errors or any(not d.line or not str(d.file).endswith(GENERATED_TEST_NAME) for d in errors):
        return False  # an error elsewhere (a header, the link) is not the cases' fault
    text = task.data["test_text"]
    if any(not a7.cases_at_lines(text, {d.line}) for d in errors):
        return False  # an error in the includes or declarations: every case would fail alike
    broken = a7.cases_at_lines(text, {d.line for d in errors})
    suite = a7.without_cases(task.data["suite"], broken)
    if suite is None:
        return False
    task.data["pruned"] = True
    task.data["suite"] = suite
    task.data["test_text"] = a7.render_test_file(suite, library=task.data["library"],
                                                 function=task.data["target"].name, includes=task.data["includes"],
                                                 declarations=task.data["declarations"])
    task.note = f"dropped {len(broken)} test case(s) that do not compile: {', '.join(sorted(broken))}"
    return True


def adjust(task: Task) -> State:
    target = task.data["target"]
    adjustment_round(task, goal=f"write passing unit tests for `{target.name}`",
                     change=task.data.get("test_text", ""), kind=task.data.get("failure_kind", "test"))
    return task.data["retry_state"]


FLOW = Flow(
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.CONTEXT: context, State.GENERATE_TESTS: generate, State.VALIDATE: validate,
           State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.CONTEXT: 15, State.GENERATE_TESTS: 35, State.VALIDATE: 75, State.ADJUST: 85},
)
