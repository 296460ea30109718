"""Implement function: locate the stub → assemble context → A6 generates the body → compile and test in the
sandbox → on failure retry with the condensed failure in the prompt, a bounded number of rounds."""

from __future__ import annotations

from cra.pipeline.actions import TextEditOut, Verdict
from cra.pipeline.flows.common import (adjustment_round, analyze_task, assemble_for, locate_function,
                                   parse_errors_in, require_c_file, validate_change)
from cra.pipeline.orchestrator import ActionFailed, Flow, State, Task
from cra.pipeline.stages import implement as a6
from cra.pipeline.textpos import byte_to_position


def locate(task: Task) -> State:
    require_c_file(task.request.path)
    symbol = locate_function(task, want_stub=True)
    task.data["target"] = symbol
    task.result.symbol = symbol.name
    return State.CONTEXT


def context(task: Task) -> State:
    analyze_task(task, stubs=[task.data["target"].name])
    # The prompt pre-fills the target's signature and doc: the context need not repeat them.
    task.data["context"] = assemble_for(task, task.data["target"], stage=a6.STAGE, include_target=False,
                                        exemplars=2)
    return State.IMPLEMENT


def implement(task: Task) -> State:
    target = task.data["target"]
    source: bytes = task.data["source"]
    header = source[target.start_byte:target.body_start_byte].decode("utf-8", errors="replace").rstrip()
    messages = a6.build_messages(context=task.data["context"].rendered, doc=target.doc, signature=header,
                                 name=target.name, failure=task.failure)
    gen = task.llm.generate(a6.STAGE, messages, stop=["\n}", "```"])
    body, complete = a6.extract_body(gen.text, stopped=gen.stats.finish_reason == "stop")
    task.data["attempt"] = body
    if not complete:
        task.failure = "The body was cut off before its closing brace: write a shorter body."
        return _retry_or_fail(task, "the generated body was incomplete (token budget exhausted)", kind="incomplete")
    replacement = "{\n" + body.rstrip("\n") + "\n}"
    new_source = source[:target.body_start_byte] + replacement.encode() + source[target.body_end_byte:]
    # Only the new body is checked: a head tree-sitter cannot parse (e.g. behind an unknown `STATIC` macro) was
    # already there and compiles with the project's own flags.
    brace_line = source.count(b"\n", 0, target.body_start_byte)
    known = set(parse_errors_in(task.request.path, source, target.start_byte, target.body_end_byte))
    errors = [line for line in parse_errors_in(task.request.path, new_source, target.body_start_byte,
                                               target.body_start_byte + len(replacement.encode()))
              if not (line == brace_line and line in known)]
    if errors:
        task.failure = f"The function does not parse as C (syntax error on line {errors[0] + 1})."
        return _retry_or_fail(task, task.failure, kind="syntax")
    task.data["replacement"] = replacement
    task.data["new_source"] = new_source
    return State.VALIDATE


def validate(task: Task) -> State:
    new_text = task.data["new_source"].decode("utf-8", errors="replace")
    verdict, failure = validate_change(task, {task.request.path: new_text})
    task.result.verdict = verdict
    if failure is not None:
        task.failure = failure
        return _retry_or_fail(task, verdict.message, kind="compile" if verdict.compiled is False else "test")
    _emit_edit(task)
    return State.DONE


def adjust(task: Task) -> State:
    target = task.data["target"]
    adjustment_round(task, goal=f"implement `{target.name}` to meet its doc comment",
                     change=task.data.get("attempt", ""), kind=task.data.get("failure_kind", "compile"))
    return State.IMPLEMENT


def _retry_or_fail(task: Task, reason: str, *, kind: str = "compile") -> State:
    task.data["failure_kind"] = kind
    if task.rounds < task.config.validation.max_rounds:
        task.note = f"attempt {task.rounds + 1} failed: {reason}"[:500]
        return State.ADJUST
    raise ActionFailed(f"{task.data['target'].name}: {reason} (after {task.rounds + 1} attempts)")


def _emit_edit(task: Task) -> None:
    target = task.data["target"]
    source: bytes = task.data["source"]
    start = byte_to_position(source, target.body_start_byte)
    end = byte_to_position(source, target.body_end_byte)
    task.result.edits = [TextEditOut(start_line=start[0], start_char=start[1], end_line=end[0], end_char=end[1],
                                     new_text=task.data["replacement"])]
    task.result.new_text = task.data["new_source"].decode("utf-8", errors="replace")
    task.result.anchor_text = target.text
    if not task.result.verdict.message:
        task.result.verdict = Verdict(compiled=True, message="compiled")


FLOW = Flow(
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.CONTEXT: context, State.IMPLEMENT: implement, State.VALIDATE: validate,
           State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.CONTEXT: 15, State.IMPLEMENT: 35, State.VALIDATE: 75, State.ADJUST: 85},
)
