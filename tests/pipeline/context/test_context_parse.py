"""Definitions, references and stubs extracted from real C snippets by tree-sitter-c."""

from __future__ import annotations

from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import Symbol

KINDS_SOURCE = b"""#include "util.h"
#include <stdio.h>

/** Maximum number of items. */
#define MAX_ITEMS 16
#define SQUARE(x) ((x) * (x))

/* A point on the plane. */
struct point { int x; int y; };

union number { int i; float f; };

enum color { RED, GREEN = 2, BLUE };

typedef struct { int w, h; } size_t2;
typedef unsigned long ulong_t;

int counter = 0;
static const char *names[MAX_ITEMS];
int (*handler)(int);

/// Adds two numbers.
int add(int a, int b);

// Computes the area.
int area(struct point p, size_t2 s)
{
    return SQUARE(p.x) + add(s.w, s.h) + RED;
}
"""


def by_name(symbols: list[Symbol]) -> dict[str, Symbol]:
    return {s.name: s for s in symbols}


def test_every_definition_kind_is_indexed() -> None:
    index = parse_source("src/shapes.c", KINDS_SOURCE)
    found = {(s.name, s.kind) for s in index.symbols}
    assert {
        ("MAX_ITEMS", "macro"),
        ("SQUARE", "macro_function"),
        ("point", "struct"),
        ("number", "union"),
        ("color", "enum"),
        ("RED", "enumerator"),
        ("GREEN", "enumerator"),
        ("BLUE", "enumerator"),
        ("size_t2", "typedef"),
        ("ulong_t", "typedef"),
        ("counter", "variable"),
        ("names", "variable"),
        ("handler", "variable"),  # a function pointer is a variable, not a prototype
        ("add", "prototype"),
        ("area", "function"),
    } <= found
    symbols = by_name(index.symbols)
    assert symbols["GREEN"].parent == "color"
    assert symbols["area"].file == "src/shapes.c"
    assert [i.target for i in index.includes] == ["util.h", "stdio.h"]
    assert [i.system for i in index.includes] == [False, True]


def test_ranges_signature_doc_and_text() -> None:
    index = parse_source("a.c", KINDS_SOURCE)
    symbols = by_name(index.symbols)
    area = symbols["area"]
    assert KINDS_SOURCE[area.start_byte : area.end_byte].decode() == area.text
    assert area.text.startswith("int area(") and area.text.endswith("}")
    assert area.signature == "int area(struct point p, size_t2 s)"
    assert area.doc == "// Computes the area."
    assert KINDS_SOURCE[area.body_start_byte : area.body_end_byte].startswith(b"{")
    assert area.start_line == KINDS_SOURCE.decode().splitlines().index("int area(struct point p, size_t2 s)")
    assert symbols["add"].doc == "/// Adds two numbers."
    assert symbols["add"].signature == "int add(int a, int b)"
    assert symbols["MAX_ITEMS"].doc == "/** Maximum number of items. */"
    assert symbols["point"].doc == "/* A point on the plane. */"
    assert symbols["SQUARE"].signature == "#define SQUARE(x)"
    assert symbols["counter"].doc == ""


def test_references_calls_types_macros_with_enclosing_symbol() -> None:
    index = parse_source("a.c", KINDS_SOURCE)
    in_area = {(r.name, r.kind) for r in index.references if r.enclosing == "area"}
    assert ("SQUARE", "call") in in_area
    assert ("add", "call") in in_area
    assert ("point", "type") in in_area
    assert ("size_t2", "type") in in_area
    assert ("RED", "ident") in in_area
    # The macro body's identifiers are references of the macro (here: its parameter).
    assert any(r.enclosing == "names" and r.name == "MAX_ITEMS" for r in index.references)
    # The defining occurrence of a name is not a reference to it.
    assert not any(r.name == "area" for r in index.references)
    line = next(r.line for r in index.references if r.name == "add" and r.kind == "call")
    assert "add(s.w" in KINDS_SOURCE.decode().splitlines()[line]


def test_k_and_r_and_modern_definitions() -> None:
    source = b"int old_style(a, b)\n    int a;\n    char *b;\n{\n    return a + *b;\n}\n\nint modern(int a, char *b) { return a + *b; }\n"
    symbols = by_name(parse_source("kr.c", source).symbols)
    assert symbols["old_style"].kind == "function"
    assert "int a;" in symbols["old_style"].signature
    assert not symbols["old_style"].is_stub
    assert symbols["modern"].kind == "function"


def test_macros_that_hide_definitions() -> None:
    source = b"""#define MYAPI __attribute__((visibility("default")))
MYAPI int exported(int x) { return x + 1; }
GGML_API struct tensor * make_tensor(struct context * ctx, int n);
DEFINE_HANDLER(on_click) { handle(1); }
"""
    symbols = by_name(parse_source("m.c", source).symbols)
    assert symbols["exported"].kind == "function"
    assert symbols["make_tensor"].kind == "prototype"
    assert symbols["make_tensor"].text.startswith("GGML_API struct tensor")  # text keeps the macro
    assert symbols["on_click"].kind == "function"


def test_both_ifdef_branches_are_indexed() -> None:
    source = b"""#ifdef _WIN32
static int platform_init(void) { return win_init(); }
#elif defined(__APPLE__)
static int platform_init(void) { return mac_init(); }
#else
static int platform_init(void) { return posix_init(); }
#endif
"""
    index = parse_source("p.c", source)
    assert [s.name for s in index.symbols] == ["platform_init"] * 3
    calls = {r.name for r in index.references if r.kind == "call"}
    assert calls == {"win_init", "mac_init", "posix_init"}


def test_broken_code_is_indexed_around_the_error() -> None:
    source = b"int before(void) { return 1; }\n\nint broken( { x = ;\n\nint after(void) { return 2; }\n\n#define LIMIT 3\n"
    index = parse_source("b.c", source)
    names = {s.name for s in index.symbols}
    assert {"before", "after", "LIMIT"} <= names
    assert 2 in index.error_lines


def test_non_utf8_bytes_keep_byte_ranges() -> None:
    source = "/* caf\xe9 */\nint f(void) { return 0; }\nconst char *s = \"\xff\xfe\";\nint g(void) { return 1; }\n".encode("latin-1")
    symbols = by_name(parse_source("l.c", source).symbols)
    g = symbols["g"]
    assert source[g.start_byte : g.end_byte] == b"int g(void) { return 1; }"
    assert "\ufffd" in symbols["f"].doc  # undecodable byte replaced in text fields
    assert symbols["s"].kind == "variable"


def test_stub_body_detection() -> None:
    source = b"""int empty(void) {}
int only_comment(void) { /* later */ }
int zero(void) { return 0; }
void *null(void) { return NULL; }
void nothing(int x) { (void)x; return; }
int todo(void) { /* TODO: implement */ return 0; }
void crash(void) { abort(); }
int asserted(void) { assert(0 && "not implemented"); return -1; }
int real(int x) { return x * 2; }
int calls(void) { return helper(); }
int minus(void) { return -1; }
int answer(void) { return 42; }
int two_steps(int x) { x += 1; return 0; }
"""
    symbols = by_name(parse_source("s.c", source).symbols)
    assert symbols["empty"].body_empty and symbols["empty"].is_stub
    assert symbols["only_comment"].body_empty and symbols["only_comment"].is_stub
    # Placeholder values a scaffold writes (`return -1;` error codes) count as stubs too.
    for name in ("zero", "null", "nothing", "todo", "crash", "asserted", "minus"):
        assert symbols[name].is_stub and not symbols[name].body_empty, name
    for name in ("real", "calls", "answer", "two_steps"):
        assert not symbols[name].is_stub, name
