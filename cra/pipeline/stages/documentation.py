"""A9 documentation: a Doxygen comment for one function, or a file-level `@file` comment.

The model fills a small Struct (grammar-constrained JSON); cra renders the `/** ... */` block deterministically,
with the function's real parameter names in their real order. Trivial functions (one-line accessors and setters)
get their comment from the code alone (`trivial_doc`): no model call at all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import msgspec

from cra.pipeline.stages.doxygen import render_block
from cra.pipeline.stages.fields import Identifier, Line
from cra.pipeline.stages.prompt import stage_messages, with_failure
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "Write the documentation of the C function marked as the target: a one-sentence brief, one description per "
    "parameter, what it returns (empty for void), and notes on preconditions, ownership or errors (may be "
    "empty). Answer with JSON only."
)
FILE_SYSTEM = (
    "Write the file-level documentation of this C file: a one-sentence brief of what the file provides and "
    "optional details. Answer with JSON only."
)


class ParamDoc(msgspec.Struct):
    name: Identifier
    description: Line


class FunctionDoc(msgspec.Struct):
    brief: Line
    params: Annotated[list[ParamDoc], msgspec.Meta(max_length=8)]
    returns: Line
    notes: Line


class FileDoc(msgspec.Struct):
    brief: Line
    details: Line


def build_messages(*, context: str, function: str, code: str, failure: str | None = None) -> list[Message]:
    request = f"Target function `{function}`:\n```c\n{code.strip()}\n```"
    return stage_messages(SYSTEM, context, with_failure(request, failure))


def build_file_messages(*, context: str, path: str) -> list[Message]:
    return stage_messages(FILE_SYSTEM, context, f"File: {path}")


# A file-level comment is the same stage (and adapter): `build_file_messages`, decoded into `FileDoc`.
SPEC = StageSpec(
    name="documentation", code="A9", mode="structured",
    description="documentation: Doxygen for a function or a file", input="source + task context",
    output="Doxygen comment edits", output_type=FunctionDoc, prompt=build_messages, signal="edit_applied",
    question="was the documentation edit applied?")


def render_function_doc(doc: FunctionDoc, *, params: list[str], returns_void: bool, indent: str = "") -> str:
    """The block for a function whose parameters are `params` (in order); descriptions the model gave for names
    the function does not have are dropped, parameters it skipped are still listed."""
    described = {p.name: p.description for p in doc.params}
    return render_block(brief=doc.brief, params=[(name, described.get(name, "")) for name in params],
                        returns="" if returns_void else doc.returns, notes=doc.notes, indent=indent)


def render_file_doc(doc: FileDoc, *, filename: str) -> str:
    return render_block(brief=doc.brief, notes=doc.details, file=filename)


# --- trivial functions: documented from their code ---------------------------------------------------------------
_GETTER = re.compile(r"^\{\s*return\s+(?:\(\s*)?(\w+)\s*(->|\.)\s*(\w+)\s*\)?\s*;\s*\}$", re.S)
_SETTER = re.compile(r"^\{\s*(\w+)\s*(->|\.)\s*(\w+)\s*=\s*(\w+)\s*;\s*\}$", re.S)
_CONSTANT = re.compile(r"^\{\s*return\s+([A-Za-z_]\w*|-?\d+[uUlL]*)\s*;\s*\}$", re.S)


def trivial_doc(*, body: str, params: list[str], returns_void: bool) -> FunctionDoc | None:
    """A FunctionDoc for a one-statement accessor, setter or constant function, or None when it needs a model."""
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", body).strip()
    if (m := _GETTER.match(body)) and not returns_void and params == [m.group(1)]:
        obj, field = m.group(1), m.group(3)
        return FunctionDoc(brief=f"Returns the `{field}` field of `{obj}`.",
                           params=[ParamDoc(name=obj, description=f"the object whose `{field}` is read")],
                           returns=f"the value of `{obj}{m.group(2)}{field}`.", notes="")
    if (m := _SETTER.match(body)) and returns_void and sorted(params) == sorted({m.group(1), m.group(4)}):
        obj, field, value = m.group(1), m.group(3), m.group(4)
        return FunctionDoc(brief=f"Sets the `{field}` field of `{obj}` to `{value}`.",
                           params=[ParamDoc(name=obj, description=f"the object whose `{field}` is set"),
                                   ParamDoc(name=value, description=f"the new value of `{field}`")],
                           returns="", notes="")
    if (m := _CONSTANT.match(body)) and not returns_void and not params:
        value = m.group(1)
        return FunctionDoc(brief=f"Returns `{value}`.", params=[], returns=f"always `{value}`.", notes="")
    return None
