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
    "and macros shown in the context or the C standard library. Write plain C11; do not change the signature; "
    "answer with code only."
)


def build_messages(*, context: str, doc: str, signature: str, name: str,
                   failure: str | None = None) -> list[Message]:
    """The shared stage layout (preamble, context, then this request) so the other stages of the task (A4
    adjustment, A7 tests) reuse the evaluated context; the answer is pre-filled with the function's head."""
    request = with_failure(f"Implement the C function `{name}`. Its contract is the doc comment above it.", failure)
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
