"""Tests: locate the function → context → A7 writes test cases (grammar-constrained) → cra repairs what it can
without a model (unbalanced parentheses, cases that never call the function) and renders a test program for the
project's framework → it is built against the project's sources and run in the sandbox → when it fails, each case
runs on its own and the cases that pass are kept (the others are named in the verdict) → when none passes, A4
revises and A7 retries, a bounded number of rounds. The test file is returned in `ActionResult.files`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cra.pipeline.actions import FileOut, Verdict
from cra.pipeline.context.symbols import MACRO, MACRO_FUNCTION
from cra.pipeline.flows.base import DONE, ActionFailed, Flow, Task, Terminal
from cra.pipeline.flows.common import (
    adjust_and_retry,
    assemble_for,
    function_shape,
    locate_function,
    model_call,
    relative,
    require_c_file,
    retry_or_give_up,
    sandbox_limits,
    source_index,
    workspace_index,
)
from cra.pipeline.sandbox import SandboxError, TestResult, condense, detect_test_framework, run_generated_test
from cra.pipeline.sandbox.frameworks import TEST_DIR_NAMES
from cra.pipeline.stages import test_generation as a7

TEST_DIRS = ("tests", "test")


class State(enum.Enum):
    LOCATE = "locate"
    CONTEXT = "context"
    GENERATE_TESTS = "generate_tests"  # A7
    VALIDATE = "validate"
    ADJUST = "adjust"


@dataclass(slots=True, kw_only=True)
class SuiteData:
    library: str = "plain"  # the test program's flavour: "unity" | "cmocka" | "plain"
    test_rel: str = ""  # where the test file goes, workspace-relative
    includes: list[str] = field(default_factory=list)  # the header that declares the function, when there is one
    declarations: list[str] = field(default_factory=list)  # else its prototype
    unit_macros: dict[str, str] = field(default_factory=dict)  # the unit's own macros, copied when cases use them
    suite: a7.TestSuite | None = None  # the cases being checked
    triaged: bool = False  # this generation's cases were already run one by one
    dropped: list[str] = field(default_factory=list)  # left-out cases, with why
    test_text: str = ""  # the rendered test program


Next = State | Terminal
TestsTask = Task[SuiteData]


def locate(task: TestsTask) -> Next:
    require_c_file(task.request.path)
    if not task.request.path.endswith(".c"):
        raise ActionFailed(f"{task.request.path}: tests are generated for a function definition in a .c file")
    target = locate_function(task, want_stub=False)
    shape = function_shape(task.shared.source, target)
    if shape.is_static:
        raise ActionFailed(f"{target.name} is static, so a separate test file cannot call it; "
                           "make it non-static or test it through a public function")
    task.shared.shape = shape
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


def context(task: TestsTask) -> Next:
    root = Path(task.request.root).resolve()
    rel = relative(task, task.request.path)
    target = task.shared.located()
    data = task.data
    framework = detect_test_framework(root)
    data.library = framework.library if framework.library in ("unity", "cmocka") else "plain"
    data.test_rel = test_path(root, rel, target.name)
    header = _header_for(root, rel)
    data.includes = [header] if header else []
    data.declarations = [] if header else [task.shared.function_shape().declaration]
    for symbol in source_index(task).symbols:
        if symbol.kind in (MACRO, MACRO_FUNCTION):
            data.unit_macros.setdefault(symbol.name, symbol.text)  # the first of #ifdef alternatives
    task.shared.context = assemble_for(task, target, stage=a7.SPEC.name)
    task.note = f"framework {framework.name} → {data.library} test program at {data.test_rel}"
    return State.GENERATE_TESTS


def generate(task: TestsTask) -> Next:
    target = task.shared.located()
    pack = task.shared.context
    messages = a7.build_messages(context=pack.rendered if pack is not None else "", function=target.name,
                                 contract=target.doc, declaration=task.shared.function_shape().declaration,
                                 failure=task.failure)
    suite, dropped = a7.repaired(model_call(task, a7.SPEC.name,
                                            lambda: task.llm.structured(a7.SPEC.name, messages, a7.TestSuite)),
                                 target.name)
    if suite is None:
        reason = f"no test case called `{target.name}`: every case must call the function under test"
        return retry_or_give_up(task, reason, kind="test", back_to=State.GENERATE_TESTS, failure=reason)
    task.data.suite = suite
    task.data.triaged = False
    task.data.dropped = [f"{name} (does not call {target.name})" for name in dropped]
    task.data.test_text = _render(task, suite)
    return State.VALIDATE


def _render(task: TestsTask, suite: a7.TestSuite) -> str:
    data = task.data
    macros = a7.macros_used([c.body for c in suite.cases], data.unit_macros)
    return a7.render_test_file(suite, library=data.library, function=task.shared.located().name,
                               includes=data.includes, declarations=data.declarations, macros=macros)


def _sources(task: TestsTask) -> list[str]:
    """The project's library sources: every indexed .c file outside test folders (files with a main are left
    out by the sandbox)."""
    index = workspace_index(task)
    return sorted(p for p in index.files if p.endswith(".c")
                  and not any(part.lower() in TEST_DIR_NAMES for part in Path(p).parts[:-1]))


def _run(task: TestsTask, test_text: str) -> TestResult:
    rel = relative(task, task.request.path)
    try:
        return run_generated_test(task.request.root, _sources(task), test_text, changed={rel: task.request.text},
                                  limits=sandbox_limits(task), compiler=task.config.validation.compiler,
                                  flags=task.config.validation.flags)
    except SandboxError as exc:
        raise ActionFailed(f"the generated tests could not be run: {exc}") from exc


def _compiled(result: TestResult) -> bool:
    return not any(d.severity == "error" for d in result.diagnostics) and "build failed" not in result.output


def validate(task: TestsTask) -> Next:
    result = _run(task, task.data.test_text)
    compiled = _compiled(result)
    if not result.ok and _keep_cases_that_pass(task):
        return State.VALIDATE  # the cases that pass on their own are checked together, with no model call
    if not result.ok:
        task.result.verdict = Verdict(compiled=compiled, tests_passed=False if compiled else None,
                                      message=("tests fail: " if compiled else "tests do not compile: ")
                                      + condense(result.output, 300))
        return retry_or_give_up(task, task.result.verdict.message, kind="test" if compiled else "compile",
                                back_to=State.GENERATE_TESTS, failure=condense(result.output, 1200))
    test_file = str(Path(task.request.root) / task.data.test_rel)
    task.result.files = [FileOut(path=test_file, text=task.data.test_text)]
    dropped = task.data.dropped
    message = f"{result.passed} test program(s) passed ({task.data.library})"
    if dropped:
        message += f"; left out {len(dropped)} case(s): " + "; ".join(dropped)
    task.result.verdict = Verdict(compiled=True, tests_passed=True, message=message[:1000])
    return DONE


def _keep_cases_that_pass(task: TestsTask) -> bool:
    """MoMA stage 3, deterministically, once per generation: when the suite fails, keep the cases that pass on
    their own against the current code (see `split_cases`). The others are named in the verdict: a case that
    fails may have found a bug or may expect the wrong thing, and the user decides which. False when no case
    passes on its own, or every case does (they only fail together): the model then gets another round."""
    suite = task.data.suite
    if suite is None or task.data.triaged or len(suite.cases) < 2:
        return False
    task.data.triaged = True
    kept, failing = split_cases(suite, lambda one: _run(task, _render(task, one)))
    if kept is None or not failing:
        return False
    task.data.suite = kept
    task.data.test_text = _render(task, kept)
    task.data.dropped = task.data.dropped + [f"{n} ({why})" for n, why in failing.items()]
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


def adjust(task: TestsTask) -> Next:
    return adjust_and_retry(task, goal=f"write passing unit tests for `{task.shared.located().name}`",
                            change=task.data.test_text)


FLOW = Flow(
    action="tests",
    states=State,
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.CONTEXT: context, State.GENERATE_TESTS: generate, State.VALIDATE: validate,
           State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.CONTEXT: 15, State.GENERATE_TESTS: 35, State.VALIDATE: 75, State.ADJUST: 85},
    data=SuiteData,
    adjust=State.ADJUST,
)
