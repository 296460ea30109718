"""Document: locate the function (or the file when no symbol is named) → MoMA stage 1 (a trivial accessor,
setter or constant function is documented from its code, no model) → context → A9 fills a FunctionDoc/FileDoc
(grammar-constrained) → the `/** ... */` block is rendered deterministically and inserted above the function
(replacing its old doc comment) → the file must still parse, keep the signature and compile; else retry."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from cra.pipeline.flows.base import DONE, Flow, Task, Terminal
from cra.pipeline.flows.common import (
    adjust_and_retry,
    assemble_for,
    check_options,
    file_outline,
    function_shape,
    locate_function,
    model_call,
    relative,
    require_c_file,
    retry_or_give_up,
    verdict_of,
)
from cra.pipeline.flows.edits import Splice, line_start, propose
from cra.pipeline.flows.gating import tier_for
from cra.pipeline.sandbox import check_change
from cra.pipeline.stages import documentation as a9

_FILE_DOC = re.compile(rb"\A\s*/\*\*.*?@file.*?\*/[ \t]*\n?", re.S)


class State(enum.Enum):
    LOCATE = "locate"
    ROUTE = "route"  # MoMA stage 1: does this function need a model at all?
    CONTEXT = "context"
    DOCUMENT = "document"  # A9
    RENDER = "render"  # the doc comment rendered deterministically into an edit
    VALIDATE = "validate"
    ADJUST = "adjust"


@dataclass(slots=True, kw_only=True)
class DocumentData:
    doc: a9.FunctionDoc | a9.FileDoc | None = None  # A9's answer, or the rule's for a trivial function
    comment: Splice | None = None  # the rendered comment block in place of the old one (or inserted)


Next = State | Terminal
DocumentTask = Task[DocumentData]


def locate(task: DocumentTask) -> Next:
    require_c_file(task.request.path)
    if task.request.symbol is None:
        return State.ROUTE  # the whole file: a file comment
    target = locate_function(task, want_stub=False)
    task.shared.shape = function_shape(task.shared.source, target)
    return State.ROUTE


def route(task: DocumentTask) -> Next:
    target = task.shared.target
    if target is not None:
        shape = task.shared.function_shape()
        body = task.shared.source[target.body_start_byte:target.body_end_byte].decode("utf-8", "replace")
        doc = a9.trivial_doc(body=body, params=shape.params, returns_void=shape.returns_void)
        if doc is not None:
            task.data.doc = doc
            task.shared.deterministic = True
            task.note = "MoMA stage 1: trivial function, documented from its code without a model"
            return State.RENDER
    choice = tier_for(task.config, a9.SPEC.name)
    task.note = f"MoMA stage 2: {choice.stage} on {choice.tier} ({choice.role}: {choice.model})"
    return State.CONTEXT


def context(task: DocumentTask) -> Next:
    target = task.shared.target
    task.shared.context = assemble_for(task, target, stage=a9.SPEC.name) if target is not None else None
    return State.DOCUMENT


def document(task: DocumentTask) -> Next:
    target = task.shared.target
    if target is None:
        messages = a9.build_file_messages(context=file_outline(task), path=relative(task, task.request.path))
        task.data.doc = model_call(task, a9.SPEC.name, lambda: task.llm.structured(a9.SPEC.name, messages, a9.FileDoc))
    else:
        pack = task.shared.context
        messages = a9.build_messages(context=pack.rendered if pack is not None else "", function=target.name,
                                     code=target.text, failure=task.failure)
        task.data.doc = model_call(task, a9.SPEC.name,
                                   lambda: task.llm.structured(a9.SPEC.name, messages, a9.FunctionDoc))
    return State.RENDER


def render(task: DocumentTask) -> Next:
    source = task.shared.source
    target = task.shared.target
    doc = task.data.doc
    if target is None:
        assert isinstance(doc, a9.FileDoc)
        block = a9.render_file_doc(doc, filename=Path(task.request.path).name) + "\n"
        old = _FILE_DOC.match(source)
        start, end = (0, old.end()) if old else (0, 0)
        new_text = block if old else block + "\n"
    else:
        assert isinstance(doc, a9.FunctionDoc)
        at = line_start(source, target.start_byte)
        indent = source[at:target.start_byte].decode("utf-8", "replace")
        indent = indent if not indent.strip() else ""
        shape = task.shared.function_shape()
        block = a9.render_function_doc(doc, params=shape.params, returns_void=shape.returns_void, indent=indent)
        start, end = at, at
        if target.doc:  # replace the comment directly above, not add a second one
            found = source.rfind(target.doc.encode("utf-8", errors="surrogateescape"), 0, target.start_byte)
            if found >= 0:
                start, end = line_start(source, found), line_start(source, target.start_byte)
        new_text = block + "\n"
    task.data.comment = Splice(start, end, new_text)
    return State.VALIDATE


def validate(task: DocumentTask) -> Next:
    target = task.shared.target
    comment = task.data.comment
    assert comment is not None, "validate runs after render"
    new_text = comment.apply(task.shared.source).decode("utf-8", errors="replace")
    check = check_change(task.request.root, task.request.path, new_text, check_options(task),
                         old_text=task.request.text, function=target.name if target is not None else None)
    task.result.verdict = verdict_of(check)
    if not check.ok:
        return retry_or_give_up(task, check.message, kind=check.kind, back_to=State.DOCUMENT, failure=check.failure)
    propose(task.result, task.shared.source, comment, anchor=target.text if target is not None else None)
    return DONE


def adjust(task: DocumentTask) -> Next:
    return adjust_and_retry(task, goal="document the function with a Doxygen comment", change=str(task.data.doc))


FLOW = Flow(
    action="document",
    states=State,
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.ROUTE: route, State.CONTEXT: context, State.DOCUMENT: document,
           State.RENDER: render, State.VALIDATE: validate, State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.ROUTE: 10, State.CONTEXT: 20, State.DOCUMENT: 40, State.RENDER: 70,
             State.VALIDATE: 80, State.ADJUST: 90},
    data=DocumentData,
    adjust=State.ADJUST,
)
