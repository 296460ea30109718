"""Steps shared by several actions: find the target, assemble its context, analyse the task, the options of the
sandbox check, and the retry loop (a failed attempt → an adjustment round → the attempt again, bounded)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec

from cra.pipeline.actions import Verdict
from cra.pipeline.context import ContextPack, FileIndex, Judge, WorkspaceIndex, parse_source
from cra.pipeline.context.assemble import assemble  # the function, never the submodule of the same name
from cra.pipeline.context.symbols import FUNCTION, Symbol
from cra.pipeline.engine import Timeout
from cra.pipeline.flows.base import ActionFailed, Task
from cra.pipeline.sandbox import ChangeCheck, CheckOptions, Limits, condense
from cra.pipeline.sandbox.flags import restrict_untrusted
from cra.pipeline.stages.task_analysis import TaskQuery

C_SUFFIXES = (".c", ".h")


def require_c_file(path: str) -> None:
    if not path.endswith(C_SUFFIXES):
        raise ActionFailed(f"{path}: not a C source or header file (.c/.h)")


def relative(task: Task[Any], path: str) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(Path(task.request.root).resolve()).as_posix()
    except ValueError:
        return p.name


def source_index(task: Task[Any]) -> FileIndex:
    """The parse of the request's text, made once per task (later steps reuse it: macros, neighbours)."""
    if task.shared.source_index is None:
        task.shared.source_index = parse_source(relative(task, task.request.path), task.shared.source)
    return task.shared.source_index


def locate_function(task: Task[Any], *, want_stub: bool) -> Symbol:
    """The requested function definition (or, with no name given, the first stub) in the request's text; it
    becomes the task's target."""
    symbol = _find_function(task, want_stub=want_stub)
    task.shared.target = symbol
    task.result.symbol = symbol.name
    return symbol


def _find_function(task: Task[Any], *, want_stub: bool) -> Symbol:
    index = source_index(task)
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


def workspace_index(task: Task[Any]) -> WorkspaceIndex:
    if task.index is None:
        task.index = WorkspaceIndex.build(task.request.root, max_file_bytes=task.config.context.max_file_bytes)
    # The editor's buffer may be unsaved: index what the user sees, not what is on disk.
    task.index.update(task.request.path, task.request.text)
    return task.index


def parse_errors_in(path: str, data: bytes, start_byte: int, end_byte: int) -> list[int]:
    """0-based lines with syntax errors between two byte offsets of `data`."""
    first = data.count(b"\n", 0, start_byte)
    last = data.count(b"\n", 0, end_byte)
    return [line for line in parse_source(path, data).error_lines if first <= line <= last]


def sandbox_limits(task: Task[Any]) -> Limits:
    lim = task.config.validation.limits
    return Limits(cpu_seconds=lim.cpu_seconds, wall_seconds=lim.wall_seconds, memory_mb=lim.memory_mb,
                  max_processes=lim.max_processes, max_output_bytes=lim.max_output_bytes)


def check_options(task: Task[Any]) -> CheckOptions:
    """The sandbox check's settings for this task: `[validation]` and the workspace's trust."""
    cfg = task.config.validation
    # An untrusted workspace's config names no compiler or flag that could run a program (see restrict_untrusted).
    build = restrict_untrusted(cfg.compiler, list(cfg.flags), task.request.root, trusted=task.trusted)
    return CheckOptions(compiler=build.compiler, flags=build.flags, limits=sandbox_limits(task),
                        test_command=cfg.test_command or None, trusted=task.trusted)


def verdict_of(check: ChangeCheck) -> Verdict:
    return Verdict(compiled=check.compiled, tests_passed=check.tests_passed, message=check.message)


def blamed_on(check: ChangeCheck) -> list[str]:
    """What a failed check blames the change for: the tests it broke (or, for the target's own tests, did not
    fix); never a failure the unchanged tree already had. Empty for a check that ran no tests."""
    return list(check.tests.caused) if check.tests is not None else []


T = TypeVar("T")


def model_call(task: Task[Any], stage: str, call: Callable[[], T]) -> T:
    """One model call for `stage`. A call that runs past its timeout (a busy machine) is tried once more while
    the task is not cancelled; a second timeout ends the task with a verdict of its own, naming the stage."""
    try:
        return call()
    except Timeout as first:
        limit = task.llm.route(stage).timeout_s
        if task.cancel.cancelled:
            raise _timed_out(task, stage, limit, tries=1) from first
        retry = f"the model call for {stage} took longer than {limit:g} s; trying it once more"
        task.note = f"{task.note}; {retry}" if task.note else retry
    try:
        return call()
    except Timeout as second:
        raise _timed_out(task, stage, limit, tries=2) from second


def _timed_out(task: Task[Any], stage: str, limit: float, *, tries: int) -> Timeout:
    message = f"the model call for {stage} took longer than {limit:g} s" + (" (tried twice)" if tries > 1 else "")
    # The verdict says what happened to the task, not what an earlier attempt's check said.
    task.result.verdict = Verdict(message=f"timeout: {message}")
    return Timeout(message)


# ---- A5 / A4 / A12 integration, shared by the flows -------------------------------------------------------------
class StageJudge:
    """The pipeline's context judge: one stage judge per scope tier and precision question, answering only for
    `stages` (the context package keeps its rules for the others; see `pipeline.context.judge.decides`)."""

    def __init__(self, by_stage: dict[str, Judge], stages: frozenset[str]) -> None:
        self.by_stage = by_stage
        self.stages = stages

    def __call__(self, stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        return self.by_stage[stage](stage, prefix, questions)


def context_judge(task: Task[Any]) -> Judge | None:
    """The model judge for scope (A11) and precision (A8) decisions, as `[decisions] mode` says: "auto" (the
    default) asks the model only for the stages with a trained adapter, since an untrained base decides worse
    than the context package's rules (the 0.5B base answers "no" to every "is this symbol needed?"), "always"
    for all of them; otherwise (or with no stage left) the deterministic rules decide."""
    from cra.pipeline.stages import precision as a8
    from cra.pipeline.stages import scope as a11

    by_stage = {**{s: a8.judge(task.llm) for s in a8.CASCADE}, **{s: a11.judge(task.llm) for s in a11.TIER_STAGES}}
    stages = frozenset(s for s in by_stage if task.config.decisions.use_model(task.config.adapter_for(s) is not None))
    return StageJudge(by_stage, stages) if stages else None


def assemble_for(task: Task[Any], target: Symbol, *, stage: str, include_target: bool = True,
                 exemplars: int = 0) -> ContextPack:
    """The target's context within the configured budget, steered by the task analysis' keywords, with the model
    judge when one is configured (see `pipeline.context.assemble` for the two options)."""
    index = workspace_index(task)
    query = task.shared.query
    task_text = task.request.instruction
    if query is not None:
        task_text = " ".join([task_text, query.intent, *query.keywords]).strip()

    def count(text: str) -> int:
        return task.llm.count_tokens(stage, text)

    return assemble(index, task.request.path, target.name, budget=task.config.context.budget_tokens,
                    count_tokens=count, task_text=task_text, judge=context_judge(task),
                    include_target=include_target, exemplars=exemplars)


def analyze_task(task: Task[Any], *, stubs: list[str]) -> TaskQuery:
    """A5 when routing includes it (a free-text instruction makes it worth a call), else derived from the request."""
    from cra.pipeline.flows.gating import decide_optional
    from cra.pipeline.stages import task_analysis as a5

    instruction = task.request.instruction.strip()
    decision = decide_optional(task.llm, task.config, {a5.SPEC.name: None if instruction else False},
                               action=task.request.action, task=instruction,
                               target=f"{relative(task, task.request.path)}:{task.request.symbol or '-'}")[a5.SPEC.name]
    if decision.include:
        files = sorted(workspace_index(task).files)
        messages = a5.build_messages(context=file_outline(task), task=instruction, files=files)
        query = a5.merge(model_call(task, a5.SPEC.name,
                                    lambda: task.llm.structured(a5.SPEC.name, messages, a5.TaskQuery)),
                         symbol=task.request.symbol)
    else:
        query = a5.derive(path=relative(task, task.request.path), symbol=task.request.symbol, stubs=stubs)
    task.shared.query = query
    task.note = f"{decision.note()}; {a5.describe(query)}"
    return query


def file_outline(task: Task[Any]) -> str:
    """The target file's declarations (signatures and docs, no bodies): a cheap context for whole-file stages."""
    parts = []
    for symbol in source_index(task).symbols:
        if symbol.kind == FUNCTION:
            parts.append(f"{symbol.doc}\n{symbol.signature};".strip())
        elif symbol.kind != "enumerator":
            parts.append(f"{symbol.doc}\n{symbol.text}".strip())
    return "\n\n".join(parts) or task.request.text[:4000]


def adjustment_round(task: Task[Any], *, goal: str, change: str, kind: str, remaining: Sequence[str] = ()) -> None:
    """One adjustment round after a failed attempt: count it, run A4 when routing includes it (a compile or test
    failure; not a syntax slip the failure text already explains), fold its revision into `task.failure`, and note
    the round on the transition log."""
    from cra.pipeline.engine import StructuredOutputError
    from cra.pipeline.flows.gating import decide_optional
    from cra.pipeline.stages import adjustment as a4

    task.rounds += 1
    hints = failure_name_hints(task, task.failure or "")
    failure = condense(task.failure or "the previous attempt failed", a4.FAILURE_CHARS - len(hints))
    if hints:  # after the condensing: the failure's own lines are cut, never the names that fix it
        failure += "\n\n" + hints
    rule = None if kind in ("compile", "test", "timeout") else False
    decision = decide_optional(task.llm, task.config, {a4.SPEC.name: rule}, action=task.request.action, task=goal,
                               target=task.result.symbol or relative(task, task.request.path))[a4.SPEC.name]
    revision = None
    note = f"round {task.rounds}: {kind} failure; {decision.note()}"
    if task.blamed:  # a test round names what the change broke: never a failure the unchanged tree had
        note += f"; blamed on the change: {', '.join(task.blamed[:4])}"
    if decision.include:
        pack = task.shared.context
        messages = a4.build_messages(context=pack.rendered if pack is not None else file_outline(task), goal=goal,
                                     failure=failure, change=change, remaining=remaining,
                                     round_number=task.rounds)
        try:
            revision = model_call(task, a4.SPEC.name,
                                  lambda: task.llm.structured(a4.SPEC.name, messages, a4.Adjustment))
            note += f"; focus: {revision.focus.strip()[:120]}"
        except StructuredOutputError as exc:  # the retry still gets the raw failure
            note += f"; A4 output unusable ({exc})"
    task.failure = a4.as_feedback(failure, revision)
    task.note = note


def failure_name_hints(task: Task[Any], failure: str) -> str:
    """For each name the failure says is not declared, the project's names that were probably meant (see
    `context.name_hints`), at most a4.HINT_CHARS; "" when there are none or the workspace cannot be indexed."""
    from cra.pipeline.context import ContextError
    from cra.pipeline.context.name_hints import name_hints
    from cra.pipeline.stages import adjustment as a4

    if not failure:
        return ""
    try:
        hints = name_hints(workspace_index(task), relative(task, task.request.path), failure)
    except ContextError:
        return ""
    return hints if len(hints) <= a4.HINT_CHARS else hints[: a4.HINT_CHARS - 4].rsplit("\n", 1)[0] + "\n..."


class FunctionShape(msgspec.Struct, frozen=True):
    params: list[str]  # parameter names in order ([] for `(void)` or `()`)
    returns_void: bool
    declaration: str  # `int add(int a, int b)`: the prototype text without `;`
    is_static: bool


def function_shape(source: bytes, symbol: Symbol) -> FunctionShape:
    """Parameter names, return type and prototype of a function definition, from its tree-sitter node."""
    from cra.pipeline.context.cparse import parser

    tree = parser().parse(source)
    node = tree.root_node.descendant_for_byte_range(symbol.start_byte, symbol.body_start_byte)
    while node is not None and node.type != "function_definition":
        node = node.parent
    if node is None:
        raise ActionFailed(f"{symbol.name}: cannot find its definition in the parsed file")
    declarator = node.child_by_field_name("declarator")
    pointer_return = False
    while declarator is not None and declarator.type != "function_declarator":
        pointer_return = pointer_return or declarator.type == "pointer_declarator"
        declarator = declarator.child_by_field_name("declarator")
    params: list[str] = []
    plist = declarator.child_by_field_name("parameters") if declarator is not None else None
    for param in (plist.named_children if plist is not None else []):
        if param.type != "parameter_declaration":
            continue
        inner = param.child_by_field_name("declarator")
        while inner is not None and inner.type != "identifier":
            inner = inner.child_by_field_name("declarator")
        if inner is not None:
            params.append(source[inner.start_byte:inner.end_byte].decode("utf-8", errors="replace"))
    type_node = node.child_by_field_name("type")
    type_text = source[type_node.start_byte:type_node.end_byte].decode() if type_node is not None else "int"
    head = source[node.start_byte:symbol.body_start_byte].decode("utf-8", errors="replace")
    storage = [c for c in node.children if c.type == "storage_class_specifier"]
    return FunctionShape(params=params, returns_void=type_text.strip() == "void" and not pointer_return,
                         declaration=" ".join(head.split()),
                         is_static=any(source[c.start_byte:c.end_byte] == b"static" for c in storage))


# ---- the retry loop ---------------------------------------------------------------------------------------------
S = TypeVar("S", bound=enum.Enum)


def retry_or_give_up(task: Task[Any], reason: str, *, kind: str, back_to: S, failure: str | None = None,
                     blamed: Sequence[str] = ()) -> S:
    """After a failed attempt: another round (through the flow's adjustment state, then back to `back_to`) while
    `validation.max_rounds` allows, else a clean failure with the reason. `kind` says what failed ("syntax",
    "compile", "test", "timeout", ...: it decides whether A4 runs); `failure`, when given, is the condensed
    failure the next attempt's prompt gets; `blamed`, the tests the change broke (see `blamed_on`). An output a
    rule made (not a model) fails at once: a model round cannot fix it."""
    if failure is not None:
        task.failure = failure
    task.failure_kind = kind
    task.blamed = list(blamed)
    task.retry_to = back_to
    what = task.result.symbol or relative(task, task.request.path)
    if task.shared.deterministic:
        raise ActionFailed(f"{what}: {reason} (made by a rule, without a model)")
    if task.flow.adjust is not None and task.rounds < task.config.validation.max_rounds:
        task.note = f"attempt {task.rounds + 1} failed: {reason}"[:500]
        return cast(S, task.flow.adjust)  # the flow's own state: `Flow` checks it is one of `states`
    raise ActionFailed(f"{what}: {reason} (gave up after {task.rounds + 1} attempts)")


def adjust_and_retry(task: Task[Any], *, goal: str, change: str) -> Any:
    """The flows' adjustment step: one adjustment round on the last failure, then back to the state that failed
    (as `retry_or_give_up` stored it)."""
    adjustment_round(task, goal=goal, change=change, kind=task.failure_kind or "compile")
    if task.retry_to is None:
        raise RuntimeError("an adjustment round ran without a failed attempt to go back to")
    return task.retry_to
