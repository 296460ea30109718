"""The naive baseline of `cra bench quality`: one chat prompt (the whole file, cut to fit the context window, plus
"implement X" or "write tests for X"), one generate call on the same model through the same engine, the answer's
code block parsed and used as is. No retrieval, no validation, no retries."""

from __future__ import annotations

import re

import msgspec

from cra.bench.quality_tasks import QualityError, find_function, splice_function
from cra.pipeline.engine import Generation, GenParams, Message, ModelSpec

SYSTEM = "You are an expert C programmer."
_BLOCK = re.compile(r"```[A-Za-z0-9_+-]*\n(.*?)(?:```|\Z)", re.DOTALL)


class NaiveAnswer(msgspec.Struct):
    text: str  # the unit (implement) or the test program (tests) to judge; "" when nothing usable came back
    generation: Generation
    truncated_file: bool  # the file did not fit the window and was cut around the target
    error: str = ""


def fit_file(text: str, function: str, budget: int, count_tokens) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """The whole file if it fits `budget` tokens, else the lines closest to the function (its own lines
    always included), kept in file order."""
    if count_tokens(text) <= budget:
        return text, False
    symbol = find_function(text, function)
    lines = text.split("\n")
    first, last = symbol.start_line, symbol.end_line
    used = count_tokens("\n".join(lines[first:last + 1]))
    lo, hi = first, last
    while True:
        grew = False
        for candidate in (lo - 1, hi + 1):
            if 0 <= candidate < len(lines):
                cost = count_tokens(lines[candidate] + "\n")
                if used + cost > budget:
                    continue
                used += cost
                lo, hi = (candidate, hi) if candidate < lo else (lo, candidate)
                grew = True
        if not grew:
            break
    return "\n".join(lines[lo:hi + 1]), True


def implement_messages(file_text: str, function: str, filename: str) -> list[Message]:
    prompt = (f"Here is the C file `{filename}`:\n```c\n{file_text.strip()}\n```\n\n"
              f"The function `{function}` has a placeholder body. Implement `{function}`. Answer with the complete "
              f"function definition in one ```c code block.")
    return [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)]


def tests_messages(file_text: str, function: str, filename: str) -> list[Message]:
    prompt = (f"Here is the C file `{filename}`:\n```c\n{file_text.strip()}\n```\n\n"
              f"Write a C test program for the function `{function}`: declare the function, call it on several "
              f"inputs and check the results with assert() from <assert.h>, in a main function that returns 0. "
              f"Do not include `{filename}`. Answer with the whole program in one ```c code block.")
    return [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)]


def code_blocks(answer: str) -> list[str]:
    blocks = [m.group(1) for m in _BLOCK.finditer(answer)]
    return blocks or [answer]


def extract_definition(answer: str, function: str) -> str | None:
    """The text of the first definition of `function` found in the answer's code blocks."""
    for block in code_blocks(answer):
        try:
            symbol = find_function(block, function)
        except QualityError:
            continue
        data = block.encode("utf-8", errors="surrogateescape")
        return data[symbol.start_byte:symbol.end_byte].decode("utf-8", errors="surrogateescape")
    return None


def splice_answer(blanked_unit: str, function: str, answer: str) -> tuple[str, str]:
    """(new unit text, error): the answer's definition of `function` put in place of the blanked one."""
    definition = extract_definition(answer, function)
    if definition is None:
        return "", f"the answer has no definition of {function}"
    return splice_function(blanked_unit, function, definition), ""


def _counter(engine, model: ModelSpec):  # type: ignore[no-untyped-def]
    return lambda text: int(engine.count_tokens(model, text))


def run_naive(engine, model: ModelSpec, messages: list[Message], max_tokens: int) -> Generation:  # type: ignore[no-untyped-def]
    return engine.generate(model, (), messages, GenParams(max_tokens=max_tokens, temperature=0.0))


def naive_implement(engine, model: ModelSpec, *, blanked: str, function: str, filename: str,  # type: ignore[no-untyped-def]
                    budget: int, max_tokens: int) -> NaiveAnswer:
    count = _counter(engine, model)
    budget -= sum(count(m.content) for m in implement_messages("", function, filename))
    shown, cut = fit_file(blanked, function, budget, count)
    gen = run_naive(engine, model, implement_messages(shown, function, filename), max_tokens)
    text, error = splice_answer(blanked, function, gen.text)
    return NaiveAnswer(text=text, generation=gen, truncated_file=cut, error=error)


def naive_tests(engine, model: ModelSpec, *, original: str, function: str, filename: str, budget: int,  # type: ignore[no-untyped-def]
                max_tokens: int) -> NaiveAnswer:
    count = _counter(engine, model)
    budget -= sum(count(m.content) for m in tests_messages("", function, filename))
    shown, cut = fit_file(original, function, budget, count)
    gen = run_naive(engine, model, tests_messages(shown, function, filename), max_tokens)
    program = next((b for b in code_blocks(gen.text) if re.search(r"\bmain\s*\(", b)), "")
    return NaiveAnswer(text=program, generation=gen, truncated_file=cut,
                       error="" if program else "the answer has no program with a main function")
