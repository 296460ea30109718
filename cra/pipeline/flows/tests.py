"""Tests: locate the function → context → A7 writes test cases (grammar-constrained) → cra repairs what it can
without a model (unbalanced parentheses, cases that never call the function) and renders a test program for the
project's framework → it is built against the project's sources and run in the sandbox → when it fails, each case
runs on its own and the cases that pass are kept (the others are named in the verdict) → when none passes, A4
revises and A7 retries, a bounded number of rounds. The test file is returned in `ActionResult.files`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cra.pipeline.actions import FileOut, Verdict
from cra.pipeline.context.symbols import MACRO, MACRO_FUNCTION
from cra.pipeline.flows.common import (adjustment_round, assemble_for, function_shape, locate_function, relative,
                                   require_c_file, retry_or_give_up, sandbox_limits, workspace_index)
from cra.pipeline.orchestrator import ActionFailed, Flow, State, Task
from cra.pipeline.sandbox import SandboxError, TestResult, condense, detect_test_framework, run_generated_test
from cra.pipeline.sandbox.frameworks import TEST_DIR_NAMES
from cra.pipeline.stages import test_generation as a7

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
    unit_macros: dict[str, str] = {}
    for symbol in task.data["source_index"].symbols:
        if symbol.kind in (MACRO, MACRO_FUNCTION):
            unit_macros.setdefault(symbol.name, symbol.text)  # the first of #ifdef alternatives
    task.data["unit_macros"] = unit_macros
    task.data["context"] = assemble_for(task, target, stage=a7.STAGE)
    task.note = f"framework {framework.name} → {task.data['library']} test program at {task.data['test_rel']}"
    return State.GENERATE_TESTS


def generate(task: Task) -> State:
    target = task.data["target"]
    messages = a7.build_messages(context=task.data["context"].rendered, function=target.name, contract=target.doc,
                                 declaration=task.data["shape"].declaration, failure=task.failure)
    suite, dropped = a7.repaired(task.llm.structured(a7.STAGE, messages, a7.TestSuite), target.name)
    if suite is None:
        task.failure = f"no test case called `{target.name}`: every case must call the function under test"
        return retry_or_give_up(task, task.failure, kind="test", retry=State.GENERATE_TESTS)
    task.data["suite"] = suite
    task.data["triaged"] = False
    task.data["dropped"] = [f"{name} (does not call {target.name})" for name in dropped]
    task.data["test_text"] = _render(task, suite)
    return State.VALIDATE


def _render(task: Task, suite: a7.TestSuite) -> str:
    macros = a7.macros_used([c.body for c in suite.cases], task.data["unit_macros"])
    return a7.render_test_file(suite, library=task.data["library"], function=task.data["target"].name,
                               includes=task.data["includes"], declarations=task.data["declarations"],
                               macros=macros)


def _sources(task: Task) -> list[str]:
    """The project's library sources: every indexed .c file outside test folders (files with a main are left
    out by the sandbox)."""
    index = workspace_index(task)
    return sorted(p for p in index.files if p.endswith(".c")
                  and not any(part.lower() in TEST_DIR_NAMES for part in Path(p).parts[:-1]))


def _run(task: Task, test_text: str) -> TestResult:
    rel = relative(task, task.request.path)
    try:
        return run_generated_test(task.request.root, _sources(task), test_text, changed={rel: task.request.text},
                                  limits=sandbox_limits(task), compiler=task.config.validation.compiler,
                                  flags=task.config.validation.flags)
    except SandboxError as exc:
        raise ActionFailed(f"the generated tests could not be run: {exc}") from exc


def _compiled(result: TestResult) -> bool:
    return not any(d.severity == "error" for d in result.diagnostics) and "build failed" not in result.output


def validate(task: Task) -> State:
    result = _run(task, task.data["test_text"])
    compiled = _compiled(result)
    if not result.ok and _keep_cases_that_pass(task):
        return State.VALIDATE  # the cases that pass on their own are checked together, with no model call
    if not result.ok:
        task.result.verdict = Verdict(compiled=compiled, tests_passed=False if compiled else None,
                                      message=("tests fail: " if compiled else "tests do not compile: ")
                                      + condense(result.output, 300))
        task.failure = condense(result.output, 1200)
        return retry_or_give_up(task, task.result.verdict.message, kind="test" if compiled else "compile",
                                retry=State.GENERATE_TESTS)
    test_file = str(Path(task.request.root) / task.data["test_rel"])
    task.result.files = [FileOut(path=test_file, text=task.data["test_text"])]
    dropped = task.data.get("dropped", [])
    message = f"{result.passed} test program(s) passed ({task.data['library']})"
    if dropped:
        message += f"; left out {len(dropped)} case(s): " + "; ".join(dropped)
    task.result.verdict = Verdict(compiled=True, tests_passed=True, message=message[:1000])
    return State.DONE


def _keep_cases_that_pass(task: Task) -> bool:
    """MoMA stage 3, deterministically, once per generation: when the suite fails, keep the cases that pass on
    their own against the current code (see `split_cases`). The others are named in the verdict: a case that
    fails may have found a bug or may expect the wrong thing, and the user decides which. False when no case
    passes on its own, or every case does (they only fail together): the model then gets another round."""
    suite = task.data["suite"]
    if task.data.get("triaged") or len(suite.cases) < 2:
        return False
    task.data["triaged"] = True
    kept, failing = split_cases(suite, lambda one: _run(task, _render(task, one)))
    if kept is None or not failing:
        return False
    task.data["suite"] = kept
    task.data["test_text"] = _render(task, kept)
    task.data["dropped"] = task.data.get("dropped", []) + [f"{n} ({why})" for n, why in failing.items()]
    task.note = f"kept {len(kept.cases)} case(s); left out: {', '.join(failing)}"
    return True


def split_cases(suite: a7.TestSuite, run: Callable[[a7.TestSuite], TestResult]
                ) -> tuple[a7.TestSuite | None, dict[str, str]]:
    """Run each case of `suite` on its own (`run` builds and runs a one-case suite), so that a compile error, a
    failed check or a crash is that one case's. Returns the cases that pass (None when none does) and, for each
    case that does not, one line on why."""
    failing: dict[str, str] = {}
    for case in a7.unique_cases(suite):
        alone = run(a7.only_case(suite, case.name))
        if not alone.ok:
            failing[case.name] = _first_problem(alone)
    return a7.without_cases(suite, set(failing)), failing


def _first_problem(result: TestResult) -> str:
    """One line on why a single case failed: its first compiler error, failed check or how the program ended."""
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if errors:
        return f"does not compile: {errors[0].message}"[:160]
    for line in result.output.splitlines():
        if "FAIL" in line or "Assertion" in line or "stopped:" in line:
            return f"fails on the current code: {line.strip()}"[:160]
    return "fails on the current code"


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
