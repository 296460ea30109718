"""A3 scaffold: types, function signatures and Doxygen contracts for planned functions (grammar-constrained JSON).

The model designs the API; cra renders it deterministically: prototypes with their contracts for the header and
empty stub definitions (which `implement` later fills) for the source file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import msgspec

from cra.pipeline.stages.doxygen import render_block
from cra.pipeline.stages.fields import CType, Identifier, Line
from cra.pipeline.stages.prompt import stage_messages
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "Design the C declarations for the task: 1 to 6 functions, each with a return type, parameters (name, type, "
    "meaning), a one-sentence brief, what it returns, and its preconditions and error behaviour. Use only types "
    "from the context or the C standard library. Do not repeat functions that already exist. Answer with JSON "
    "only."
)


class ParamSpec(msgspec.Struct):
    name: Identifier
    type: CType
    description: Line


class FunctionSpec(msgspec.Struct):
    name: Identifier
    return_type: CType
    params: Annotated[list[ParamSpec], msgspec.Meta(max_length=6)]
    brief: Line
    returns: Line
    contract: Line  # preconditions and error behaviour


class Scaffold(msgspec.Struct):
    functions: Annotated[list[FunctionSpec], msgspec.Meta(min_length=1, max_length=6)]


def build_messages(*, context: str, task: str, plan: str = "", existing: Sequence[str] = ()) -> list[Message]:
    request = f"Task: {task.strip()}"
    if plan.strip():
        request += f"\nPlan:\n{plan.strip()}"
    if existing:
        request += "\nAlready declared (do not repeat): " + ", ".join(existing)
    return stage_messages(SYSTEM, context, request)


SPEC = StageSpec(
    name="scaffold", code="A3", mode="structured", description="scaffold: types, signatures, Doxygen contracts",
    input="plan + context", output="types, signatures, Doxygen contracts", output_type=Scaffold,
    prompt=build_messages, signal="compiled_and_tests_passed",
    question="did the implementations compile and their tests pass?")


def _param_list(spec: FunctionSpec) -> str:
    if not spec.params:
        return "void"
    return ", ".join(_declare(p.type, p.name) for p in spec.params)


def _declare(ctype: str, name: str) -> str:
    ctype = " ".join(ctype.split())
    return f"{ctype}{name}" if ctype.endswith("*") else f"{ctype} {name}"


def signature(spec: FunctionSpec) -> str:
    return f"{_declare(spec.return_type, spec.name)}({_param_list(spec)})"


def render_prototype(spec: FunctionSpec) -> str:
    returns = spec.returns if spec.return_type.strip() != "void" else ""
    doc = render_block(brief=spec.brief, params=[(p.name, p.description) for p in spec.params], returns=returns,
                       notes=spec.contract)
    return f"{doc}\n{signature(spec)};\n"


def render_stub(spec: FunctionSpec) -> str:
    """An empty definition that compiles without warnings: parameters marked used, a zero value returned."""
    lines = [f"    (void){p.name};" for p in spec.params]
    ret = " ".join(spec.return_type.split())
    if ret.endswith("*") or _is_scalar(ret):
        lines.append("    return 0;")
    elif ret != "void":  # a struct by value: trap, which needs no header and no return value
        lines.append("    __builtin_trap();")
    body = "\n".join(lines)
    return f"{signature(spec)}\n{{\n{body}\n}}\n" if body else f"{signature(spec)}\n{{\n}}\n"


_SCALARS = {"char", "short", "int", "long", "unsigned", "signed", "float", "double", "bool", "_Bool", "size_t",
            "ssize_t", "ptrdiff_t", "intptr_t", "uintptr_t", "off_t"}


def _is_scalar(ctype: str) -> bool:
    words = [w for w in ctype.replace("*", " ").split() if w not in ("const", "volatile", "static", "inline")]
    if words and words[0] == "enum":
        return True
    return bool(words) and all(w in _SCALARS or (w.endswith("_t") and w.lstrip("u").startswith("int"))
                               for w in words)
