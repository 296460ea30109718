"""Document: locate the function (or the file when no symbol is named) → MoMA stage 1 (a trivial accessor,
setter or constant function is documented from its code, no model) → context → A9 fills a FunctionDoc/FileDoc
(grammar-constrained) → the `/** ... */` block is rendered deterministically and inserted above the function
(replacing its old doc comment) → the file must still parse, keep the signature and compile; else retry."""

from __future__ import annotations

import re
from pathlib import Path

from cra.pipeline.actions import Verdict
from cra.pipeline.flows.common import (adjustment_round, assemble_for, edit_between, file_outline, function_shape,
                                   line_start, locate_function, relative, require_c_file, retry_or_give_up,
                                   sandbox_limits)
from cra.pipeline.orchestrator import ActionFailed, Flow, State, Task
from cra.pipeline.routing import check_edit, tier_for
from cra.pipeline.stages import documentation as a9

_FILE_DOC = re.compile(rb"\A\s*/\*\*.*?@file.*?\*/[ \t]*\n?", re.S)


def locate(task: Task) -> State:
    require_c_file(task.request.path)
    task.data["source"] = task.request.text.encode("utf-8", errors="surrogateescape")
    if task.request.symbol is None:
        task.data["target"] = None
        return State.ROUTE
    target = locate_function(task, want_stub=False)
    task.data["target"] = target
    task.data["shape"] = function_shape(task.data["source"], target)
    task.result.symbol = target.name
    return State.ROUTE


def route(task: Task) -> State:
    target = task.data["target"]
    if target is not None:
        source: bytes = task.data["source"]
        shape = task.data["shape"]
        doc = a9.trivial_doc(body=source[target.body_start_byte:target.body_end_byte].decode("utf-8", "replace"),
                             params=shape.params, returns_void=shape.returns_void)
        if doc is not None:
            task.data["doc"] = doc
            task.data["deterministic"] = True
            task.note = "MoMA stage 1: trivial function, documented from its code without a model"
            return State.RENDER
    choice = tier_for(task.config, a9.STAGE)
    task.note = f"MoMA stage 2: {choice.stage} on {choice.tier} ({choice.role}: {choice.model})"
    return State.CONTEXT


def context(task: Task) -> State:
    target = task.data["target"]
    task.data["context"] = assemble_for(task, target, stage=a9.STAGE) if target is not None else None
    return State.DOCUMENT


def document(task: Task) -> State:
    target = task.data["target"]
    if target is None:
        messages = a9.build_file_messages(context=file_outline(task), path=relative(task, task.request.path))
        task.data["doc"] = task.llm.structured(a9.STAGE, messages, a9.FileDoc)
    else:
        messages = a9.build_messages(context=task.data["context"].rendered, function=target.name,
                                     code=target.text, failure=task.failure)
        task.data["doc"] = task.llm.structured(a9.STAGE, messages, a9.FunctionDoc)
    return State.RENDER


def render(task: Task) -> State:
    source: bytes = task.data["source"]
    target = task.data["target"]
    if target is None:
        block = a9.render_file_doc(task.data["doc"], filename=Path(task.request.path).name) + "\n"
        old = _FILE_DOC.match(source)
        start, end = (0, old.end()) if old else (0, 0)
        new_text = block if old else block + "\n"
    else:
        at = line_start(source, target.start_byte)
        indent = source[at:target.start_byte].decode("utf-8", "replace")
        indent = indent if not indent.strip() else ""
        shape = task.data["shape"]
        block = a9.render_function_doc(task.data["doc"], params=shape.params, returns_void=shape.returns_void,
                                       indent=indent)
        start, end = at, at
        if target.doc:  # replace the comment directly above, not add a second one
            doc = target.doc.encode("utf-8", errors="surrogateescape")
            found = source.rfind(doc, 0, target.start_byte)
            if found >= 0:
                start, end = line_start(source, found), line_start(source, target.start_byte)
        new_text = block + "\n"
    task.data["edit"] = edit_between(source, start, end, new_text)
    task.data["new_source"] = source[:start] + new_text.encode() + source[end:]
    return State.VALIDATE


def validate(task: Task) -> State:
    target = task.data["target"]
    new_text = task.data["new_source"].decode("utf-8", errors="replace")
    check = check_edit(task.request.root, task.request.path, task.request.text, new_text, config=task.config,
                       limits=sandbox_limits(task), function=target.name if target is not None else None)
    task.result.verdict = Verdict(compiled=check.compiled, message=check.message)
    if not check.ok:
        task.failure = check.failure
        if task.data.get("deterministic"):  # a model cannot fix a rule's output: say what broke
            raise ActionFailed(f"{task.result.symbol or task.request.path}: {check.message}")
        return retry_or_give_up(task, check.message, kind="compile" if check.compiled is False else "syntax",
                                retry=State.DOCUMENT)
    task.result.edits = [task.data["edit"]]
    task.result.new_text = new_text
    task.result.anchor_text = target.text if target is not None else None
    return State.DONE


def adjust(task: Task) -> State:
    adjustment_round(task, goal="document the function with a Doxygen comment", change=str(task.data.get("doc")),
                     kind=task.data.get("failure_kind", "compile"))
    return task.data["retry_state"]


FLOW = Flow(
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.ROUTE: route, State.CONTEXT: context, State.DOCUMENT: document,
           State.RENDER: render, State.VALIDATE: validate, State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.ROUTE: 10, State.CONTEXT: 20, State.DOCUMENT: 40, State.RENDER: 70,
             State.VALIDATE: 80, State.ADJUST: 90},
)
