"""Implement function: locate the stub → assemble context → A6 generates the body → compile and test in the
sandbox → on failure retry with the condensed failure in the prompt, a bounded number of rounds."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cra.pipeline.actions import Verdict, diagnostics_out
from cra.pipeline.engine.types import Message
from cra.pipeline.flows.base import DONE, Flow, Task, Terminal
from cra.pipeline.flows.common import (
    adjust_and_retry,
    analyze_task,
    assemble_for,
    blamed_on,
    check_options,
    locate_function,
    model_call,
    parse_errors_in,
    require_c_file,
    retry_or_give_up,
    verdict_of,
)
from cra.pipeline.flows.edits import Splice, propose
from cra.pipeline.sandbox import check_change
from cra.pipeline.sandbox.project_std import project_c_standard
from cra.pipeline.stages import implement as a6


class State(enum.Enum):
    LOCATE = "locate"
    CONTEXT = "context"
    IMPLEMENT = "implement"
    VALIDATE = "validate"
    ADJUST = "adjust"


@dataclass(slots=True, kw_only=True)
class ImplementData:
    attempt: str = ""  # the last generated body, as the model wrote it
    body: Splice | None = None  # the last attempt: the new body in place of the old one
    # Why tree-sitter could not parse the last attempt; the compiler decides (tree-sitter expands no macros).
    syntax_reason: str = ""


Next = State | Terminal
ImplementTask = Task[ImplementData]


def locate(task: ImplementTask) -> Next:
    require_c_file(task.request.path)
    locate_function(task, want_stub=True)
    return State.CONTEXT


def context(task: ImplementTask) -> Next:
    target = task.shared.located()
    analyze_task(task, stubs=[target.name])
    # The prompt pre-fills the target's signature and doc: the context need not repeat them.
    task.shared.context = assemble_for(task, target, stage=a6.SPEC.name, include_target=False, exemplars=2)
    return State.IMPLEMENT


def implement_messages(task: ImplementTask) -> list[Message]:
    """The implement stage's prompt for the located target (self-supervised training pairs build the same one)."""
    target = task.shared.located()
    header = task.shared.source[target.start_byte:target.body_start_byte].decode("utf-8", errors="replace").rstrip()
    pack = task.shared.context
    return a6.build_messages(context=pack.rendered if pack is not None else "", doc=target.doc,
                             signature=header, name=target.name, failure=task.failure,
                             std=project_c_standard(task.request.root))


def implement(task: ImplementTask) -> Next:
    target = task.shared.located()
    source = task.shared.source
    messages = implement_messages(task)
    gen = model_call(task, a6.SPEC.name, lambda: task.llm.generate(a6.SPEC.name, messages, stop=["\n}", "```"]))
    body, complete = a6.extract_body(gen.text, stopped=gen.stats.finish_reason == "stop")
    task.data.attempt = body
    if not complete:
        return retry_or_give_up(task, "the generated body was incomplete (token budget exhausted)", kind="incomplete",
                                back_to=State.IMPLEMENT,
                                failure="The body was cut off before its closing brace: write a shorter body.")
    splice = Splice(target.body_start_byte, target.body_end_byte, "{\n" + body.rstrip("\n") + "\n}")
    new_source = splice.apply(source)
    # Only the new body is checked: a head tree-sitter cannot parse (e.g. behind an unknown `STATIC` macro) was
    # already there and compiles with the project's own flags.
    brace_line = source.count(b"\n", 0, target.body_start_byte)
    known = set(parse_errors_in(task.request.path, source, target.start_byte, target.body_end_byte))
    new_end = target.body_start_byte + len(splice.text.encode("utf-8", errors="surrogateescape"))
    errors = [line for line in parse_errors_in(task.request.path, new_source, target.body_start_byte, new_end)
              if not (line == brace_line and line in known)]
    task.data.syntax_reason = f"The function does not parse as C (syntax error on line {errors[0] + 1})." \
        if errors else ""
    task.data.body = splice
    return State.VALIDATE


def validate(task: ImplementTask) -> Next:
    splice = task.data.body
    assert splice is not None, "validate runs after an attempt"
    new_text = splice.apply(task.shared.source).decode("utf-8", errors="replace")
    # The tests are judged against the unchanged tree as the editor shows it (the stub, maybe unsaved): a test that
    # fails there is not this body's fault. When none can run there, the body is offered on its compile alone.
    check = check_change(task.request.root, task.request.path, new_text, check_options(task),
                         function=task.shared.located().name, allow_new_warnings=True, run_tests=True,
                         baseline={task.request.path: task.request.text})
    task.result.verdict = verdict_of(check)
    task.result.diagnostics = diagnostics_out(check.diagnostics, source=check.diagnostics_source)
    syntax = task.data.syntax_reason
    if syntax and (check.kind == "compile" or (check.ok and check.compiled is not True
                                                and not check.compile_unchecked)):
        # Not valid C by tree-sitter, and no compiler said otherwise. When gcc could not look at the unit (it fails
        # unchanged too), tree-sitter's word on a macro it cannot expand (`if UNLIKELY (x)`) is only a hint: the
        # tests judge, and the verdict says so.
        return retry_or_give_up(task, syntax, kind="syntax", back_to=State.IMPLEMENT,
                                failure="\n".join(x for x in (syntax, check.failure) if x))
    if not check.ok:
        return retry_or_give_up(task, check.message, kind=check.kind, back_to=State.IMPLEMENT, failure=check.failure,
                                blamed=blamed_on(check))
    if syntax and check.compile_unchecked:
        task.result.verdict.message += f"; tree-sitter reads a syntax error ({syntax}) that gcc could not check"
    propose(task.result, task.shared.source, splice, anchor=task.shared.located().text)
    if not task.result.verdict.message:
        task.result.verdict = Verdict(compiled=True, message="compiled")
    return DONE


def adjust(task: ImplementTask) -> Next:
    return adjust_and_retry(task, goal=f"implement `{task.shared.located().name}` to meet its doc comment",
                            change=task.data.attempt)


FLOW = Flow(
    action="implement",
    states=State,
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.CONTEXT: context, State.IMPLEMENT: implement, State.VALIDATE: validate,
           State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.CONTEXT: 15, State.IMPLEMENT: 35, State.VALIDATE: 75, State.ADJUST: 85},
    data=ImplementData,
    adjust=State.ADJUST,
)
