"""Steps shared by several actions: find the target, assemble its context, validate a change in the sandbox."""

from __future__ import annotations

from pathlib import Path

from pipeline.actions import Verdict
from pipeline.context import ContextPack, WorkspaceIndex, assemble, parse_source
from pipeline.context.symbols import FUNCTION, Symbol
from pipeline.orchestrator import ActionFailed, Task
from pipeline.sandbox import Limits, compile_unit, condense, run_project_tests

C_SUFFIXES = (".c", ".h")


def require_c_file(path: str) -> None:
    if not path.endswith(C_SUFFIXES):
        raise ActionFailed(f"{path}: not a C source or header file (.c/.h)")


def relative(task: Task, path: str) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(Path(task.request.root).resolve()).as_posix()
    except ValueError:
        return p.name


def locate_function(task: Task, *, want_stub: bool) -> Symbol:
    """The requested function definition (or, with no name given, the first stub) in the request's text."""
    source = task.request.text.encode("utf-8", errors="surrogateescape")
    task.data["source"] = source
    index = parse_source(relative(task, task.request.path), source)
    functions = [s for s in index.symbols if s.kind == FUNCTION]
    name = task.request.symbol
    if name:
        matches = [s for s in functions if s.name == name]
        if not matches:
            known = ", ".join(sorted({s.name for s in functions})[:12]) or "none"
            raise ActionFailed(f"no function definition named {name!r} in {task.request.path} "
                               f"(functions here: {known})")
        symbol = matches[0]
        if want_stub and not symbol.is_stub:
            raise ActionFailed(f"{name} already has a body; cra implements functions whose body is empty or a stub")
        return symbol
    stubs = [s for s in functions if s.is_stub]
    if want_stub and not stubs:
        raise ActionFailed(f"{task.request.path}: no function with an empty or stub body to implement")
    if not want_stub and not functions:
        raise ActionFailed(f"{task.request.path}: no function definitions")
    return (stubs or functions)[0]


def workspace_index(task: Task) -> WorkspaceIndex:
    if task.index is None:
        task.index = WorkspaceIndex.build(task.request.root, max_file_bytes=task.config.context.max_file_bytes)
    # The editor's buffer may be unsaved: index what the user sees, not what is on disk.
    task.index.update(task.request.path, task.request.text)
    return task.index


def assemble_context(task: Task, target: Symbol, *, stage: str) -> ContextPack:
    index = workspace_index(task)

    def count(text: str) -> int:
        return task.llm.count_tokens(stage, text)

    return assemble(index, task.request.path, target.name, budget=task.config.context.budget_tokens,
                    count_tokens=count, task_text=task.request.instruction)


def parse_errors_in(path: str, data: bytes, start_byte: int, end_byte: int) -> list[int]:
    """0-based lines with syntax errors between two byte offsets of `data`."""
    first = data.count(b"\n", 0, start_byte)
    last = data.count(b"\n", 0, end_byte)
    return [line for line in parse_source(path, data).error_lines if first <= line <= last]


def sandbox_limits(task: Task) -> Limits:
    lim = task.config.validation.limits
    return Limits(cpu_seconds=lim.cpu_seconds, wall_seconds=lim.wall_seconds, memory_mb=lim.memory_mb,
                  max_processes=lim.max_processes, max_output_bytes=lim.max_output_bytes)


def validate_change(task: Task, changed: dict[str, str]) -> tuple[Verdict, str | None]:
    """Compile each changed unit, then run the project's tests, all in a temp copy. Returns the verdict and, on
    failure, a condensed failure text for the next attempt's prompt."""
    limits = sandbox_limits(task)
    cfg = task.config.validation
    root = task.request.root
    for path, text in changed.items():
        if not path.endswith(".c"):
            continue
        compiled = compile_unit(root, path, text, compiler=cfg.compiler, flags=_flags(task), limits=limits)
        if not compiled.ok:
            errors = [d for d in compiled.diagnostics if d.severity == "error"] or compiled.diagnostics
            summary = "; ".join(f"line {d.line}: {d.message}" for d in errors[:3]) or condense(compiled.stderr, 400)
            return (Verdict(compiled=False, message=f"does not compile: {summary}"),
                    condense(compiled.stderr, 1200))
    tests = run_project_tests(root, changed, limits=limits, test_command=cfg.test_command or None,
                              trusted=task.trusted)
    if tests.framework is None:
        return Verdict(compiled=True, tests_passed=None, message="compiled; no tests found"), None
    if not tests.ok:
        return (Verdict(compiled=True, tests_passed=False,
                        message=f"compiled; tests failed ({tests.framework}): {condense(tests.output, 300)}"),
                condense(tests.output, 1200))
    return Verdict(compiled=True, tests_passed=True, message=f"compiled; tests passed ({tests.framework})"), None


def _flags(task: Task) -> list[str] | None:
    """None lets the sandbox take the project's compile_commands.json; else the configured defaults."""
    return None if (Path(task.request.root) / "compile_commands.json").is_file() else task.config.validation.flags

