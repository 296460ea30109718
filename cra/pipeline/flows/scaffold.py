"""Scaffold: find the header/source pair → MoMA stage 1 (a function already defined in the source gets its
prototype from its own definition, no model; a prototype the header already has is not added again) → otherwise
A3 designs the functions (grammar-constrained) → prototypes with Doxygen contracts go into the header, empty stub
definitions into the source → the source must compile with the new header, without new warnings; else retry.

The request's file is changed through `edits`; the other file of the pair comes back in `files` (whole text)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cra.pipeline.actions import FileOut, Verdict
from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import FUNCTION, PROTOTYPE, Symbol
from cra.pipeline.flows.base import DONE, Flow, Task, Terminal
from cra.pipeline.flows.common import (
    adjust_and_retry,
    check_options,
    file_outline,
    function_shape,
    model_call,
    relative,
    require_c_file,
    retry_or_give_up,
    verdict_of,
)
from cra.pipeline.flows.edits import propose
from cra.pipeline.flows.gating import prototype_exists, tier_for
from cra.pipeline.flows.plan import latest_plan_text
from cra.pipeline.sandbox import check_change
from cra.pipeline.stages import documentation as a9
from cra.pipeline.stages import scaffold as a3
from cra.pipeline.stages.doxygen import render_block, words_of

_ENDIF = re.compile(r"^[ \t]*#[ \t]*endif\b[^\n]*\n?\s*\Z", re.M)
_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include\b[^\n]*\n", re.M)


class State(enum.Enum):
    LOCATE = "locate"
    ROUTE = "route"  # MoMA stage 1: does this need a model at all?
    CONTEXT = "context"
    SCAFFOLD = "scaffold"  # A3
    RENDER = "render"  # prototypes into the header, stubs into the source
    VALIDATE = "validate"
    ADJUST = "adjust"


@dataclass(slots=True, kw_only=True)
class ScaffoldData:
    source_rel: str = ""  # the pair, workspace-relative; either may not exist yet
    header_rel: str = ""
    source_text: str | None = None  # None: the file does not exist
    header_text: str | None = None
    context_text: str = ""
    design: list[a3.FunctionSpec] = field(default_factory=list)  # A3's new functions
    prototypes: list[str] = field(default_factory=list)  # rendered, with their doc comments
    stubs: list[str] = field(default_factory=list)  # empty definitions for the source
    new: dict[str, str] = field(default_factory=dict)  # workspace-relative path → the file's new text


Next = State | Terminal
ScaffoldTask = Task[ScaffoldData]


def _pair(root: Path, rel: str) -> tuple[str, str]:
    """(source, header) workspace-relative paths for a .c or .h file; the partner may not exist yet."""
    path = Path(rel)
    if path.suffix == ".h":
        candidates = [path.with_suffix(".c"), path.parent.parent / "src" / path.with_suffix(".c").name]
        source = next((c for c in candidates if (root / c).is_file()), candidates[0])
        return source.as_posix(), rel
    candidates = [path.with_suffix(".h"), path.parent.parent / "include" / path.with_suffix(".h").name,
                  Path("include") / path.with_suffix(".h").name]
    header = next((c for c in candidates if (root / c).is_file()), candidates[0])
    return rel, header.as_posix()


def _read(task: Task[Any], rel: str) -> str | None:
    if rel == relative(task, task.request.path):
        return task.request.text
    path = Path(task.request.root) / rel
    return path.read_text(errors="replace") if path.is_file() else None


def locate(task: ScaffoldTask) -> Next:
    require_c_file(task.request.path)
    root = Path(task.request.root).resolve()
    data = task.data
    data.source_rel, data.header_rel = _pair(root, relative(task, task.request.path))
    data.source_text, data.header_text = _read(task, data.source_rel), _read(task, data.header_rel)
    return State.ROUTE


def _declared(task: ScaffoldTask) -> set[str]:
    names: set[str] = set()
    for rel, text in ((task.data.header_rel, task.data.header_text),
                      (task.data.source_rel, task.data.source_text)):
        kinds = (PROTOTYPE, FUNCTION)
        if text:
            names |= {s.name for s in parse_source(rel, text.encode("utf-8", "surrogateescape")).symbols
                      if s.kind in kinds}
    return names


def route(task: ScaffoldTask) -> Next:
    name = task.request.symbol
    data = task.data
    header_text = data.header_text or ""
    if name and data.source_text:
        source = data.source_text.encode("utf-8", "surrogateescape")
        defined = [s for s in parse_source(data.source_rel, source).symbols if s.kind == FUNCTION and s.name == name]
        if defined:
            if prototype_exists(header_text, data.header_rel, name):
                return _nothing_to_do(task, f"{name} is already declared in {data.header_rel}")
            data.prototypes = [_prototype_from_definition(source, defined[0])]
            data.stubs = []
            task.shared.deterministic = True
            task.note = f"MoMA stage 1: prototype of {name} taken from its definition, no model"
            return State.RENDER
    choice = tier_for(task.config, a3.SPEC.name)
    task.note = f"MoMA stage 2: {choice.stage} on {choice.tier} ({choice.role}: {choice.model})"
    return State.CONTEXT


def _prototype_from_definition(source: bytes, symbol: Symbol) -> str:
    shape = function_shape(source, symbol)
    declaration = re.sub(r"^\s*(static\s+|inline\s+)+", "", shape.declaration)
    if symbol.doc:
        return f"{symbol.doc.strip()}\n{declaration};\n"
    body = source[symbol.body_start_byte:symbol.body_end_byte].decode("utf-8", "replace")
    doc = a9.trivial_doc(body=body, params=shape.params, returns_void=shape.returns_void)
    if doc is not None:
        block = a9.render_function_doc(doc, params=shape.params, returns_void=shape.returns_void)
    else:
        block = render_block(brief=" ".join(words_of(symbol.name)).capitalize() + ".",
                             params=[(p, "") for p in shape.params])
    return f"{block}\n{declaration};\n"


def _nothing_to_do(task: ScaffoldTask, why: str) -> Next:
    task.result.verdict = Verdict(message=f"nothing to scaffold: {why}")
    task.note = f"MoMA stage 1: no-op ({why})"
    return DONE


def context(task: ScaffoldTask) -> Next:
    parts = [file_outline(task)]
    other = task.data.header_text if task.request.path.endswith(".c") else task.data.source_text
    if other:
        parts.append(other[:4000])
    task.data.context_text = "\n\n".join(parts)
    return State.SCAFFOLD


def scaffold(task: ScaffoldTask) -> Next:
    existing = sorted(_declared(task))
    instruction = task.request.instruction.strip() or \
        f"Declare the functions that {task.data.header_rel} should provide"
    messages = a3.build_messages(context=task.data.context_text, task=instruction,
                                 plan=latest_plan_text(task.request.root, Path(task.request.path).stem),
                                 existing=existing)
    if task.failure:
        messages[-1].content += f"\n\nThe previous attempt failed:\n{task.failure}"
    design = model_call(task, a3.SPEC.name, lambda: task.llm.structured(a3.SPEC.name, messages, a3.Scaffold))
    fresh, seen = [], set(existing)
    for spec in design.functions:  # stage 1 per function: skip what exists or repeats
        if spec.name not in seen:
            seen.add(spec.name)
            fresh.append(spec)
    if not fresh:
        return _nothing_to_do(task, "every proposed function is already declared")
    task.data.design = fresh
    task.data.prototypes = [a3.render_prototype(s) for s in fresh]
    task.data.stubs = [a3.render_stub(s) for s in fresh]
    task.note = f"A3 designed {len(fresh)} functions: {', '.join(s.name for s in fresh)}"
    return State.RENDER


def _guard(header_rel: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", Path(header_rel).name.upper()).strip("_")


def add_prototypes(header_text: str | None, header_rel: str, prototypes: list[str]) -> str:
    block = "\n".join(prototypes)
    if header_text is None:
        guard = _guard(header_rel)
        return f"#ifndef {guard}\n#define {guard}\n\n{block}\n#endif /* {guard} */\n"
    endif = _ENDIF.search(header_text)
    if endif is not None and "#ifndef" in header_text:
        head = header_text[:endif.start()].rstrip("\n")
        return f"{head}\n\n{block}\n{header_text[endif.start():]}"
    return f"{header_text.rstrip()}\n\n{block}" if header_text.strip() else block


def add_stubs(source_text: str | None, header_name: str, stubs: list[str]) -> str:
    include = f'#include "{header_name}"\n'
    text = source_text or ""
    if not re.search(rf'#\s*include\s*"(?:[^"]*/)?{re.escape(header_name)}"', text):
        includes = list(_INCLUDE.finditer(text))
        at = includes[-1].end() if includes else 0
        text = text[:at] + include + ("\n" if not includes and text else "") + text[at:]
    if stubs:
        text = f"{text.rstrip()}\n\n" + "\n".join(stubs)
    return text


def render(task: ScaffoldTask) -> Next:
    data = task.data
    new_header = add_prototypes(data.header_text, data.header_rel, data.prototypes)
    new_source = add_stubs(data.source_text, Path(data.header_rel).name, data.stubs) \
        if data.stubs or data.source_text is not None else None
    data.new = {data.header_rel: new_header, **({data.source_rel: new_source} if new_source is not None else {})}
    return State.VALIDATE


def validate(task: ScaffoldTask) -> Next:
    request_rel = relative(task, task.request.path)
    new = task.data.new
    new_text = new.get(request_rel, task.request.text)
    extra = {rel: text for rel, text in new.items() if rel != request_rel}
    check = check_change(task.request.root, request_rel, new_text, check_options(task), old_text=task.request.text,
                         extra=extra)
    task.result.verdict = verdict_of(check)
    if not check.ok:
        return retry_or_give_up(task, check.message, kind=check.kind, back_to=State.SCAFFOLD, failure=check.failure)
    propose(task.result, task.shared.source, new_text.encode("utf-8", "surrogateescape"))
    root = Path(task.request.root)
    task.result.files = [FileOut(path=str(root / rel), text=text) for rel, text in extra.items()]
    names = ", ".join(s.name for s in task.data.design) or task.request.symbol or ""
    task.result.verdict = Verdict(compiled=True, message=f"scaffolded {names}; {check.message}")
    return DONE


def adjust(task: ScaffoldTask) -> Next:
    return adjust_and_retry(task, goal="declare compilable C prototypes with contracts",
                            change="\n".join(task.data.prototypes))


FLOW = Flow(
    action="scaffold",
    states=State,
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.ROUTE: route, State.CONTEXT: context, State.SCAFFOLD: scaffold,
           State.RENDER: render, State.VALIDATE: validate, State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.ROUTE: 10, State.CONTEXT: 20, State.SCAFFOLD: 40, State.RENDER: 70,
             State.VALIDATE: 80, State.ADJUST: 90},
    data=ScaffoldData,
    adjust=State.ADJUST,
)
