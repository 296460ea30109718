"""Scaffold: find the header/source pair → MoMA stage 1 (a function already defined in the source gets its
prototype from its own definition, no model; a prototype the header already has is not added again) → otherwise
A3 designs the functions (grammar-constrained) → prototypes with Doxygen contracts go into the header, empty stub
definitions into the source → the source must compile with the new header, without new warnings; else retry.

The request's file is changed through `edits`; the other file of the pair comes back in `files` (whole text)."""

from __future__ import annotations

import re
from pathlib import Path

from cra.pipeline.actions import FileOut, Verdict
from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import FUNCTION, PROTOTYPE
from cra.pipeline.flows.common import (adjustment_round, diff_edits, file_outline, function_shape, relative,
                                   require_c_file, retry_or_give_up, sandbox_limits)
from cra.pipeline.orchestrator import ActionFailed, Flow, State, Task
from cra.pipeline.routing import check_edit, prototype_exists, tier_for
from cra.pipeline.stages import documentation as a9
from cra.pipeline.stages import scaffold as a3
from cra.pipeline.stages.doxygen import render_block, words_of
from cra.pipeline.flows.plan import latest_plan_text

_ENDIF = re.compile(r"^[ \t]*#[ \t]*endif\b[^\n]*\n?\s*\Z", re.M)
_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include\b[^\n]*\n", re.M)


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


def _read(task: Task, rel: str) -> str | None:
    if rel == relative(task, task.request.path):
        return task.request.text
    path = Path(task.request.root) / rel
    return path.read_text(errors="replace") if path.is_file() else None


def locate(task: Task) -> State:
    require_c_file(task.request.path)
    root = Path(task.request.root).resolve()
    source_rel, header_rel = _pair(root, relative(task, task.request.path))
    task.data.update(source_rel=source_rel, header_rel=header_rel, source_text=_read(task, source_rel),
                     header_text=_read(task, header_rel))
    return State.ROUTE


def _declared(task: Task) -> set[str]:
    names: set[str] = set()
    for rel, text in ((task.data["header_rel"], task.data["header_text"]),
                      (task.data["source_rel"], task.data["source_text"])):
        kinds = (PROTOTYPE, FUNCTION)
        if text:
            names |= {s.name for s in parse_source(rel, text.encode("utf-8", "surrogateescape")).symbols
                      if s.kind in kinds}
    return names


def route(task: Task) -> State:
    name = task.request.symbol
    header_text = task.data["header_text"] or ""
    source_text = task.data["source_text"]
    if name and source_text:
        source = source_text.encode("utf-8", "surrogateescape")
        defined = [s for s in parse_source(task.data["source_rel"], source).symbols
                   if s.kind == FUNCTION and s.name == name]
        if defined:
            if prototype_exists(header_text, task.data["header_rel"], name):
                return _nothing_to_do(task, f"{name} is already declared in {task.data['header_rel']}")
            task.data["prototypes"] = [_prototype_from_definition(source, defined[0])]
            task.data["stubs"] = []
            task.data["deterministic"] = True
            task.note = f"MoMA stage 1: prototype of {name} taken from its definition, no model"
            return State.RENDER
    choice = tier_for(task.config, a3.STAGE)
    task.note = f"MoMA stage 2: {choice.stage} on {choice.tier} ({choice.role}: {choice.model})"
    return State.CONTEXT


def _prototype_from_definition(source: bytes, symbol) -> str:  # type: ignore[no-untyped-def]
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


def _nothing_to_do(task: Task, why: str) -> State:
    task.result.verdict = Verdict(message=f"nothing to scaffold: {why}")
    task.note = f"MoMA stage 1: no-op ({why})"
    return State.DONE


def context(task: Task) -> State:
    parts = [file_outline(task)]
    other = task.data["header_text"] if task.request.path.endswith(".c") else task.data["source_text"]
    if other:
        parts.append(other[:4000])
    task.data["context_text"] = "\n\n".join(parts)
    return State.SCAFFOLD


def scaffold(task: Task) -> State:
    existing = sorted(_declared(task))
    instruction = task.request.instruction.strip() or \
        f"Declare the functions that {task.data['header_rel']} should provide"
    messages = a3.build_messages(context=task.data["context_text"], task=instruction,
                                 plan=latest_plan_text(task.request.root, Path(task.request.path).stem),
                                 existing=existing)
    if task.failure:
        messages[-1].content += f"\n\nThe previous attempt failed:\n{task.failure}"
    design = task.llm.structured(a3.STAGE, messages, a3.Scaffold)
    fresh, seen = [], set(existing)
    for spec in design.functions:  # stage 1 per function: skip what exists or repeats
        if spec.name not in seen:
            seen.add(spec.name)
            fresh.append(spec)
    if not fresh:
        return _nothing_to_do(task, "every proposed function is already declared")
    task.data["design"] = fresh
    task.data["prototypes"] = [a3.render_prototype(s) for s in fresh]
    task.data["stubs"] = [a3.render_stub(s) for s in fresh]
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


def render(task: Task) -> State:
    header_rel, source_rel = task.data["header_rel"], task.data["source_rel"]
    new_header = add_prototypes(task.data["header_text"], header_rel, task.data["prototypes"])
    new_source = add_stubs(task.data["source_text"], Path(header_rel).name, task.data["stubs"]) \
        if task.data["stubs"] or task.data["source_text"] is not None else None
    task.data["new"] = {header_rel: new_header, **({source_rel: new_source} if new_source is not None else {})}
    return State.VALIDATE


def validate(task: Task) -> State:
    request_rel = relative(task, task.request.path)
    new = task.data["new"]
    extra = {rel: text for rel, text in new.items() if rel != request_rel}
    check = check_edit(task.request.root, request_rel, task.request.text, new.get(request_rel, task.request.text),
                       config=task.config, limits=sandbox_limits(task), extra=extra)
    task.result.verdict = Verdict(compiled=check.compiled, message=check.message)
    if not check.ok:
        if task.data.get("deterministic"):
            raise ActionFailed(f"the scaffolded declarations break the build: {check.message}")
        task.failure = check.failure
        return retry_or_give_up(task, check.message, kind="compile" if check.compiled is False else "syntax",
                                retry=State.SCAFFOLD)
    old = task.request.text.encode("utf-8", "surrogateescape")
    task.result.edits = diff_edits(old, new.get(request_rel, task.request.text).encode("utf-8", "surrogateescape"))
    task.result.new_text = new.get(request_rel, task.request.text)
    root = Path(task.request.root)
    task.result.files = [FileOut(path=str(root / rel), text=text) for rel, text in extra.items()]
    names = ", ".join(s.name for s in task.data.get("design", [])) or task.request.symbol or ""
    task.result.verdict = Verdict(compiled=True, message=f"scaffolded {names}; {check.message}")
    return State.DONE


def adjust(task: Task) -> State:
    adjustment_round(task, goal="declare compilable C prototypes with contracts",
                     change="\n".join(task.data.get("prototypes", [])), kind=task.data.get("failure_kind", "compile"))
    return task.data["retry_state"]


FLOW = Flow(
    start=State.LOCATE,
    steps={State.LOCATE: locate, State.ROUTE: route, State.CONTEXT: context, State.SCAFFOLD: scaffold,
           State.RENDER: render, State.VALIDATE: validate, State.ADJUST: adjust},
    percent={State.LOCATE: 5, State.ROUTE: 10, State.CONTEXT: 20, State.SCAFFOLD: 40, State.RENDER: 70,
             State.VALIDATE: 80, State.ADJUST: 90},
)
