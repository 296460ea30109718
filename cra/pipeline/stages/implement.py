"""A6 implement: one function body from its signature, doc comment and assembled context.

Decoding mode: generation that *continues* the function's own text. The answer is pre-filled with the signature
and the opening brace, so the model can only write the body; the body ends where the braces balance. No prose is
parsed: anything after the closing brace is discarded, and a body that does not parse is a validation failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.pipeline.stages.prompt import message, stage_messages, with_failure
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "Implement exactly one C function so that it meets its documented contract. Use only the types, functions "
    "and macros shown in the context or the C standard library. Write plain C (C11 unless the request names "
    "another dialect); do not change the signature; answer with code only."
)

# What a model trained mostly on modern C gets wrong in an older dialect, said in the request: cJSON is C89, and
# a C99 `for (int i = 0; ...)` breaks its build.
_DIALECT_RULES = {
    "89": "The project is C89 (ANSI C): declare every variable at the start of a block, before any statement; "
          "no `for (int i = ...)`; only /* */ comments; no `inline`, no `bool` unless the project defines it.",
    "99": "The project is C99: no C11 features (`_Static_assert`, `_Generic`, anonymous structs).",
}
_DIALECT_YEAR = {"c89": "89", "c90": "89", "ansi": "89", "gnu89": "89", "gnu90": "89", "iso9899:1990": "89",
                 "iso9899:199409": "89", "c99": "99", "gnu99": "99", "c9x": "99", "gnu9x": "99", "iso9899:1999": "99"}


def dialect_rule(std: str | None) -> str:
    """The request's line about the project's C dialect (`std`: its `-std=` value); "" for C11 and later."""
    return _DIALECT_RULES.get(_DIALECT_YEAR.get((std or "").lower(), ""), "")


def build_messages(*, context: str, doc: str, signature: str, name: str,
                   failure: str | None = None, std: str | None = None) -> list[Message]:
    """The shared stage layout (preamble, context, then this request) so the other stages of the task (A4
    adjustment, A7 tests) reuse the evaluated context; the answer is pre-filled with the function's head.
    std: the project's `-std=` value, when its build files name one."""
    ask = f"Implement the C function `{name}`. Its contract is the doc comment above it."
    if rule := dialect_rule(std):
        ask += "\n" + rule
    request = with_failure(ask, failure)
    return [*stage_messages(SYSTEM, context, request),
            message("assistant", answer_prefix(doc, signature))]


SPEC = StageSpec(
    name="implement", code="A6", mode="generate", description="implement: one function body",
    input="scaffold + the function's doc comment + types", output="one function body", prompt=build_messages,
    signal="compiled_and_tests_passed", question="does it compile and pass the function's tests?")


def answer_prefix(doc: str, signature: str) -> str:
    lead = f"{doc.strip()}\n" if doc.strip() else ""
    return f"```c\n{lead}{signature.strip()}\n{{\n"


def extract_body(continuation: str, *, stopped: bool) -> tuple[str, bool]:
    """The body text up to the brace that closes the function. `stopped`: generation ended on a stop sequence
    that consumed that closing brace."""
    depth = 1
    i = 0
    n = len(continuation)
    while i < n:
        c = continuation[i]
        if continuation.startswith("//", i):
            j = continuation.find("\n", i)
            i = n if j < 0 else j
            continue
        if continuation.startswith("/*", i):
            j = continuation.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c in "\"'":
            j = i + 1
            while j < n and continuation[j] != c:
                j += 2 if continuation[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return continuation[:i].rstrip() + "\n", True
        i += 1
    text = continuation.split("```", 1)[0].rstrip()
    return text + "\n", stopped and depth == 1
