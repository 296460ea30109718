"""A7 test generation for one function: happy path, edge cases and error paths (grammar-constrained JSON).

The model writes only test-case bodies that use one neutral assertion, `CHECK(condition)`. cra renders the file
deterministically for the project's test framework (Unity, cmocka, or plain C with a main that counts failed
checks), so the model never has to know a framework's boilerplate and no prose is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from cra.pipeline.stages.doxygen import clean
from cra.pipeline.stages.fields import Code, Identifier, Line
from cra.pipeline.stages.prompt import stage_messages, with_failure
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

# One worked answer teaches small models the two things they get wrong most: declaring what a case uses, and
# passing an output variable by address.
EXAMPLE = (
    '{"cases": [{"name": "parses_decimal", "category": "happy_path", "description": "a decimal string is parsed", '
    '"body": "uint8_t out = 0;\\nint rc = parse_u8(\\"42\\", &out);\\nCHECK(rc == 0);\\nCHECK(out == 42);"}, '
    '{"name": "rejects_overflow", "category": "edge_case", "description": "256 does not fit", '
    '"body": "uint8_t out = 7;\\nCHECK(parse_u8(\\"256\\", &out) == -1);\\nCHECK(out == 7);"}]}'
)

SYSTEM = (
    "Write unit tests for one C function: at least one happy-path case, edge cases (boundary values, empty "
    "input) and error paths (invalid input, NULL pointers) only where the contract defines them. Each case has "
    "a C identifier as its name, a category, and a body of C statements that declares and initialises every "
    "variable it uses, calls the function under test, and checks results only with CHECK(condition); do not "
    "write main, includes or function headers. Answer with JSON only.\n\n"
    "Example, for `int parse_u8(const char *text, uint8_t *out)` (0 on success, -1 on bad input):\n"
    + EXAMPLE
)

Category = Literal["happy_path", "edge_case", "error_path"]
LIBRARIES = ("unity", "cmocka", "plain")


class TestCase(msgspec.Struct):
    name: Identifier
    category: Category
    description: Line
    body: Code


class TestSuite(msgspec.Struct):
    cases: Annotated[list[TestCase], msgspec.Meta(min_length=1, max_length=6)]


def build_messages(*, context: str, function: str, contract: str, declaration: str,
                   failure: str | None = None) -> list[Message]:
    request = (f"Function under test: `{function}` (every case calls it)\nDeclaration: {declaration.strip()}\n"
               f"Contract:\n{contract.strip() or '(no doc comment; infer it from the code)'}")
    return stage_messages(SYSTEM, context, with_failure(request, failure))


SPEC = StageSpec(
    name="test_generation", code="A7", mode="structured", description="test generation for one function",
    input="scaffold + the function's doc comment", output="test function(s)", output_type=TestSuite,
    prompt=build_messages, signal="tests_compiled", question="do the tests compile?")


_STORAGE_WORDS = {"static", "inline", "extern", "__inline", "__inline__"}


def plain_declaration(declaration: str) -> str:
    """A prototype the test program can declare: without storage classes and leading ALL-CAPS macros
    (`STATIC`, `FORCE_INLINE`, `API`), which are defined only inside the unit or its build."""
    words = declaration.strip().rstrip(";").split(" ")
    while words and (words[0] in _STORAGE_WORDS or (words[0].isupper() and "(" not in words[0]
                                                     and words[0] not in ("FILE",))):
        words = words[1:]
    return " ".join(words)


def unique_cases(suite: TestSuite) -> list[TestCase]:
    """Test names become C function names: make them unique (`name`, `name_2`, ...)."""
    seen: dict[str, int] = {}
    out: list[TestCase] = []
    for case in suite.cases:
        count = seen.get(case.name, 0) + 1
        seen[case.name] = count
        name = case.name if count == 1 else f"{case.name}_{count}"
        out.append(msgspec.structs.replace(case, name=name))
    return out


def balance_parentheses(body: str) -> str:
    """Close the parentheses a statement left open at its `;` (`CHECK(f(x) == (a == b);`), the slip small
    models make most after a missing `;`. String and character literals and `for (...;...;...)` headers are left
    alone; a body that is balanced comes back unchanged."""
    out: list[str] = []
    depth = 0
    statement_start = 0
    quote = ""
    i = 0
    while i < len(body):
        ch = body[i]
        if quote:
            if ch == "\\":
                out.append(body[i:i + 2])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch in ";{}":
            if ch == ";" and depth > 0 and not body[statement_start:i].lstrip().startswith("for"):
                out.append(")" * depth)
                depth = 0
            if depth == 0:
                statement_start = i + 1
        out.append(ch)
        i += 1
    if depth > 0 and not quote and not body[statement_start:].lstrip().startswith("for"):
        return "".join(out).rstrip() + ")" * depth  # the last statement, whose `;` is missing too
    return "".join(out)


def calls_function(body: str, function: str) -> bool:
    """The case mentions the function under test (as a whole identifier): a case that does not tests nothing."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(function)}(?![A-Za-z0-9_])", body) is not None


def repaired(suite: TestSuite, function: str) -> tuple[TestSuite | None, list[str]]:
    """MoMA stage 3 before any compiler run: balance each body's parentheses and drop the cases that never call
    `function`. Returns the suite (None when no case is left) and the names of the dropped cases."""
    kept: list[TestCase] = []
    dropped: list[str] = []
    for case in unique_cases(suite):
        if not calls_function(case.body, function):
            dropped.append(case.name)
            continue
        kept.append(msgspec.structs.replace(case, body=balance_parentheses(case.body)))
    return (TestSuite(cases=kept) if kept else None), dropped


def only_case(suite: TestSuite, name: str) -> TestSuite:
    """The suite reduced to the one case called `name` (as `unique_cases` names them)."""
    return TestSuite(cases=[c for c in unique_cases(suite) if c.name == name])


def _indent(body: str) -> str:
    body = body.strip()
    if body and body[-1] not in ";}":
        body += ";"  # `CHECK(x == 1)` as the last statement: the one slip models make most
    lines = body.splitlines() or [""]
    return "\n".join(("    " + line.rstrip()) if line.strip() else "" for line in lines)


_CHECK = {
    "unity": "#define CHECK(cond) TEST_ASSERT_TRUE(cond)",
    "cmocka": "#define CHECK(cond) assert_true(cond)",
    "plain": ("static int cra_failed_checks;\n"
              "#define CHECK(cond) do { if (!(cond)) { cra_failed_checks++; "
              "fprintf(stderr, \"%s:%d: FAIL: %s\\n\", __FILE__, __LINE__, #cond); } } while (0)"),
}


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def macros_used(bodies: list[str], unit_macros: dict[str, str]) -> list[str]:
    """The `#define`s of the unit under test (name -> its text) that the case bodies use, with the unit macros
    those use in turn, in definition order: a test program cannot see macros private to a .c file."""
    wanted: set[str] = set()
    pending = [name for body in bodies for name in _IDENTIFIER.findall(body) if name in unit_macros]
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(n for n in _IDENTIFIER.findall(unit_macros[name]) if n in unit_macros and n != name)
    return [text for name, text in unit_macros.items() if name in wanted]


def render_test_file(suite: TestSuite, *, library: str, function: str, includes: list[str],
                     declarations: Sequence[str] = (), macros: Sequence[str] = ()) -> str:
    """The complete test program for `library` ("unity" | "cmocka" | "plain"). `includes` are the project
    headers to include (as written inside quotes); `declarations` are prototypes for functions no header
    declares; `macros` are `#define`s from the unit under test that the cases use (see `macros_used`)."""
    if library not in LIBRARIES:
        raise ValueError(f"unknown test library {library!r} (known: {', '.join(LIBRARIES)})")
    cases = unique_cases(suite)
    # The fixed-width and bool types are in most signatures; a unit without a header declares nothing else.
    # assert.h too: models write assert() however often they are told CHECK().
    head = [f"/* Tests for {function}, generated by cra. */", "#include <assert.h>", "#include <stdbool.h>",
            "#include <stddef.h>", "#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>",
            "#include <string.h>", "#include <limits.h>"]
    if library == "unity":
        head.append('#include "unity.h"')
    elif library == "cmocka":
        head += ["#include <stdarg.h>", "#include <stddef.h>", "#include <setjmp.h>", "#include <stdint.h>",
                 "#include <cmocka.h>"]
    head += [f'#include "{h}"' for h in includes]
    head += [f"{plain_declaration(d)};" for d in declarations]
    for text in macros:  # guarded: a header included above may define the same macro
        name = text.split(None, 2)[1].split("(", 1)[0] if len(text.split()) > 1 else ""
        head += [f"#ifndef {name}", text.rstrip(), "#endif"] if name else []
    head.append(_CHECK[library])
    parts = ["\n".join(head), ""]
    if library == "unity":
        parts.append("void setUp(void) {}\nvoid tearDown(void) {}\n")
    params = "void **state" if library == "cmocka" else "void"
    for case in cases:
        first = "    (void)state;\n" if library == "cmocka" else ""
        parts.append(f"/* {case.category}: {clean(case.description)} */\n"
                     f"static void test_{case.name}({params})\n{{\n{first}{_indent(case.body)}\n}}\n")
    parts.append(_main(library, [c.name for c in cases]))
    return "\n".join(parts)


def without_cases(suite: TestSuite, names: set[str]) -> TestSuite | None:
    """The suite minus the named cases (as `unique_cases` names them); None when nothing would be left."""
    kept = [c for c in unique_cases(suite) if c.name not in names]
    return TestSuite(cases=kept) if kept else None


def _main(library: str, names: list[str]) -> str:
    if library == "unity":
        runs = "\n".join(f"    RUN_TEST(test_{n});" for n in names)
        return f"int main(void)\n{{\n    UNITY_BEGIN();\n{runs}\n    return UNITY_END();\n}}\n"
    if library == "cmocka":
        entries = "\n".join(f"        cmocka_unit_test(test_{n})," for n in names)
        return (f"int main(void)\n{{\n    const struct CMUnitTest tests[] = {{\n{entries}\n    }};\n"
                f"    return cmocka_run_group_tests(tests, NULL, NULL);\n}}\n")
    runs = "\n".join(f"    test_{n}();" for n in names)
    return (f"int main(void)\n{{\n{runs}\n"
            f"    if (cra_failed_checks) {{\n        fprintf(stderr, \"%d checks FAILED\\n\", cra_failed_checks);\n"
            f"        return 1;\n    }}\n    printf(\"{len(names)} tests passed\\n\");\n    return 0;\n}}\n")
