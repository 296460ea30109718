"""Steps shared by several actions: find the target, assemble its context, validate a change in the sandbox."""

from __future__ import annotations

from pathlib import Path

import msgspec

from cra.pipeline.actions import TextEditOut, Verdict, diagnostics_out
from cra.pipeline.context import ContextPack, Judge, WorkspaceIndex, assemble, parse_source
from cra.pipeline.context.symbols import FUNCTION, Symbol
from cra.pipeline.orchestrator import ActionFailed, State, Task
from cra.pipeline.sandbox import Limits, compile_unit, condense, flags_for, run_project_tests
from cra.pipeline.stages.task_analysis import TaskQuery
from cra.pipeline.textpos import byte_to_position

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
    task.data["source_index"] = index  # later steps reuse the parse (macros, neighbours)
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
        flags = flags_for(root, path, cfg.flags).flags  # compile_commands.json wins; else config flags + include dirs
        compiled = compile_unit(root, path, text, compiler=cfg.compiler, flags=flags, limits=limits)
        if not compiled.ok:
            errors = [d for d in compiled.diagnostics if d.severity == "error"] or compiled.diagnostics
            summary = "; ".join(f"line {d.line}: {d.message}" for d in errors[:3]) or condense(compiled.stderr, 400)
            task.result.diagnostics = diagnostics_out(compiled.diagnostics)
            return (Verdict(compiled=False, message=f"does not compile: {summary}"),
                    condense(compiled.stderr, 1200))
    unit = next((p for p in changed if p.endswith(".c")), next(iter(changed)))
    tests = run_project_tests(root, changed, limits=limits, test_command=cfg.test_command or None,
                              trusted=task.trusted, compiler=cfg.compiler,
                              flags=flags_for(root, unit, cfg.flags).flags)
    if tests.framework is None or tests.ok is None:  # None: no test programs to run
        task.result.diagnostics = []
        return Verdict(compiled=True, tests_passed=None, message="compiled; no tests found"), None
    if not tests.ok:
        task.result.diagnostics = diagnostics_out(tests.diagnostics, source="tests")
        return (Verdict(compiled=True, tests_passed=False,
                        message=f"compiled; tests failed ({tests.framework} via {tests.command}): "
                                f"{condense(tests.output, 300)}"),
                condense(tests.output, 1200))
    task.result.diagnostics = []
    # How the tests ran is part of the verdict: a direct gcc build, or (trusted workspaces only) the project's own.
    return (Verdict(compiled=True, tests_passed=True,
                    message=f"compiled; tests passed ({tests.framework} via {tests.command})"), None)



# ---- A5 / A4 / A12 integration, shared by the flows -------------------------------------------------------------
def context_judge(task: Task) -> Judge | None:
    """The model judge for scope (A11) and precision (A8) decisions, as `[decisions] mode` says (by default: when
    one of their stages has a trained adapter); otherwise the context package's deterministic rules decide."""
    from cra.pipeline.stages import precision as a8
    from cra.pipeline.stages import scope as a11

    stages = (*a8.CASCADE, *a11.TIER_STAGES.values())
    if not task.config.decisions.use_model(any(task.config.adapter_for(s) for s in stages)):
        return None
    by_stage = {**{s: a8.judge(task.llm) for s in a8.CASCADE}, **{s: a11.judge(task.llm) for s in a11.TIER_STAGES.values()}}
    default = a11.judge(task.llm)

    def judge(stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        return by_stage.get(stage, default)(stage, prefix, questions)

    return judge


def assemble_for(task: Task, target: Symbol, *, stage: str, include_target: bool = True,
                 exemplars: int = 0) -> ContextPack:
    """The target's context within the configured budget, steered by the task analysis' keywords, with the model
    judge when one is configured (see `pipeline.context.assemble` for the two options)."""
    index = workspace_index(task)
    query = task.data.get("query")
    task_text = task.request.instruction
    if query is not None:
        task_text = " ".join([task_text, query.intent, *query.keywords]).strip()

    def count(text: str) -> int:
        return task.llm.count_tokens(stage, text)

    return assemble(index, task.request.path, target.name, budget=task.config.context.budget_tokens,
                    count_tokens=count, task_text=task_text, judge=context_judge(task),
                    include_target=include_target, exemplars=exemplars)


def analyze_task(task: Task, *, stubs: list[str]) -> TaskQuery:
    """A5 when routing includes it (a free-text instruction makes it worth a call), else derived from the request."""
    from cra.pipeline.routing import decide_optional
    from cra.pipeline.stages import task_analysis as a5

    instruction = task.request.instruction.strip()
    decision = decide_optional(task.llm, task.config, {a5.STAGE: None if instruction else False},
                               action=task.request.action, task=instruction,
                               target=f"{relative(task, task.request.path)}:{task.request.symbol or '-'}")[a5.STAGE]
    if decision.include:
        files = sorted(workspace_index(task).files)
        messages = a5.build_messages(context=file_outline(task), task=instruction, files=files)
        query = a5.merge(task.llm.structured(a5.STAGE, messages, a5.TaskQuery), symbol=task.request.symbol)
    else:
        query = a5.derive(path=relative(task, task.request.path), symbol=task.request.symbol, stubs=stubs)
    task.data["query"] = query
    task.note = f"{decision.note()}; {a5.describe(query)}"
    return query


def file_outline(task: Task) -> str:
    """The target file's declarations (signatures and docs, no bodies): a cheap context for whole-file stages."""
    source = task.request.text.encode("utf-8", errors="surrogateescape")
    index = parse_source(relative(task, task.request.path), source)
    parts = []
    for symbol in index.symbols:
        if symbol.kind == FUNCTION:
            parts.append(f"{symbol.doc}\n{symbol.signature};".strip())
        elif symbol.kind != "enumerator":
            parts.append(f"{symbol.doc}\n{symbol.text}".strip())
    return "\n\n".join(parts) or task.request.text[:4000]


def adjustment_round(task: Task, *, goal: str, change: str, kind: str, remaining: list[str] = []) -> None:
    """One adjustment round after a failed attempt: count it, run A4 when routing includes it (a compile or test
    failure; not a syntax slip the failure text already explains), fold its revision into `task.failure`, and note
    the round on the transition log."""
    from cra.pipeline.engine import StructuredOutputError
    from cra.pipeline.routing import decide_optional
    from cra.pipeline.stages import adjustment as a4

    task.rounds += 1
    failure = condense(task.failure or "the previous attempt failed", a4.FAILURE_CHARS)
    rule = None if kind in ("compile", "test") else False
    decision = decide_optional(task.llm, task.config, {a4.STAGE: rule}, action=task.request.action, task=goal,
                               target=task.result.symbol or relative(task, task.request.path))[a4.STAGE]
    revision = None
    note = f"round {task.rounds}: {kind} failure; {decision.note()}"
    if decision.include:
        pack = task.data.get("context")
        messages = a4.build_messages(context=pack.rendered if pack is not None else file_outline(task), goal=goal,
                                     failure=failure, change=change, remaining=remaining,
                                     round_number=task.rounds)
        try:
            revision = task.llm.structured(a4.STAGE, messages, a4.Adjustment)
            note += f"; focus: {revision.focus.strip()[:120]}"
        except StructuredOutputError as exc:  # the retry still gets the raw failure
            note += f"; A4 output unusable ({exc})"
    task.failure = a4.as_feedback(failure, revision)
    task.note = note


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


def line_start(source: bytes, offset: int) -> int:
    return source.rfind(b"\n", 0, offset) + 1


def edit_between(source: bytes, start: int, end: int, new_text: str) -> TextEditOut:
    """The LSP edit replacing source[start:end] (byte offsets) by `new_text`."""
    a = byte_to_position(source, start)
    b = byte_to_position(source, end)
    return TextEditOut(start_line=a[0], start_char=a[1], end_line=b[0], end_char=b[1], new_text=new_text)


def retry_or_give_up(task: Task, reason: str, *, kind: str, retry: State) -> State:
    """Another round (through ADJUST) while `validation.max_rounds` allows, else a clean failure with the reason.
    `retry` is stored so the flow's ADJUST step knows where to go back to."""
    task.data["failure_kind"] = kind
    task.data["retry_state"] = retry
    if task.rounds < task.config.validation.max_rounds:
        task.note = f"attempt {task.rounds + 1} failed: {reason}"[:500]
        return State.ADJUST
    what = task.result.symbol or relative(task, task.request.path)
    raise ActionFailed(f"{what}: {reason} (gave up after {task.rounds + 1} attempts)")


def diff_edits(old: bytes, new: bytes) -> list[TextEditOut]:
    """Line-level LSP edits turning `old` into `new` (so an insertion stays an insertion in the editor)."""
    import difflib

    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    offsets = [0]
    for line in a:
        offsets.append(offsets[-1] + len(line))
    edits: list[TextEditOut] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        text = b"".join(b[j1:j2]).decode("utf-8", errors="surrogateescape")
        edits.append(edit_between(old, offsets[i1], offsets[i2], text))
    return edits
