"""`name_hints`: the names gcc and ld reject, and the declared names (real tree-sitter index) that were meant."""

from __future__ import annotations

from pathlib import Path

from cra.pipeline.context.index import WorkspaceIndex
from cra.pipeline.context.name_hints import name_hints, similarity, unknown_names

PARSER_H = """#ifndef PARSER_H
#define PARSER_H
enum flags { F_CHUNKED = 1 << 0, F_CONNECTION_KEEP_ALIVE = 1 << 1, F_CONNECTION_CLOSE = 1 << 2 };
typedef struct parser {
  unsigned int flags : 8;  /* F_* values from 'flags' enum */
  unsigned short http_major;
  unsigned short http_minor;
  void *data;
} parser;
typedef unsigned long size_type;
int parser_execute(parser *p, const char *data, size_type len);
#endif
"""
PARSER_C = """#include "parser.h"
#define KEEP_ALIVE "keep-alive"
static const char *method_names[] = { "GET", "PUT" };
int should_keep_alive(const parser *p) { return 0; }
"""
OTHER_C = "int checksum_update(int crc, int byte) { return crc ^ byte; }\n"


def index(tmp_path: Path) -> WorkspaceIndex:
    (tmp_path / "parser.h").write_text(PARSER_H)
    (tmp_path / "parser.c").write_text(PARSER_C)
    (tmp_path / "other.c").write_text(OTHER_C)
    return WorkspaceIndex.build(str(tmp_path), use_cache=False, workers=1)


def test_the_failures_unknown_names_in_order_with_the_kinds_that_fit() -> None:
    failure = ("parser.c:4:40: error: \u2018F_KEEPALIVE\u2019 undeclared (first use in this function)\n"
               "parser.c:5:3: warning: implicit declaration of function 'parser_exec'\n"
               "tests/t.o: in function `main': undefined reference to `parser_run'\n"
               "parser.c:6:3: error: unknown type name 'sizetype'\n"
               "parser.c:7:3: error: 'F_KEEPALIVE' undeclared here")
    names = unknown_names(failure)
    assert [n for n, _ in names] == ["F_KEEPALIVE", "parser_exec", "parser_run", "sizetype"]
    assert "enumerator" in names[0][1] and "typedef" in names[3][1] and "enumerator" not in names[1][1]
    assert unknown_names("tests failed: Assertion `x == 1' failed") == []


def test_similarity_favours_a_name_that_contains_the_invented_one() -> None:
    assert similarity("F_KEEPALIVE", "F_CONNECTION_KEEP_ALIVE") > 0.9
    assert similarity("F_KEEPALIVE", "F_CONNECTION_KEEP_ALIVE") > similarity("F_KEEPALIVE", "h_keep_alive")
    assert similarity("F_KEEPALIVE", "method_names") < 0.6
    assert similarity("x", "x") == 0.0  # the same name is never its own suggestion


def test_an_undeclared_constant_gets_the_enumerator_meant_with_its_definition(tmp_path: Path) -> None:
    hints = name_hints(index(tmp_path), "parser.c",
                       "parser.c:4:40: error: 'F_KEEPALIVE' undeclared (first use in this function); "
                       "did you mean 'KEEP_ALIVE'?")
    assert hints.startswith("Names the compiler does not know")
    lines = hints.splitlines()
    assert lines[1] == "- `F_KEEPALIVE` is not declared. Names this project declares that may be meant:"
    # the one meant and gcc's own guess, each with its definition, ahead of any weaker match
    assert set(lines[2:4]) == {"  - `F_CONNECTION_KEEP_ALIVE` (enumerator of `flags`, parser.h): "
                               "F_CONNECTION_KEEP_ALIVE = 1 << 1",
                               '  - `KEEP_ALIVE` (macro, parser.c): #define KEEP_ALIVE "keep-alive"'}
    assert "checksum_update" not in hints and "method_names" not in hints


def test_a_missing_member_lists_the_records_members_without_comment_words(tmp_path: Path) -> None:
    hints = name_hints(index(tmp_path), "parser.c",
                       "parser.c:4:50: error: 'const parser' {aka 'const struct parser'} has no member named "
                       "'http_majr'")
    assert "- `parser` (parser.h) has no member `http_majr`; its closest members: `http_major`, `http_minor`" in hints
    assert "all of them: flags, http_major, http_minor, data" in hints  # not "enum" from the comment


def test_types_functions_and_names_from_files_not_included(tmp_path: Path) -> None:
    idx = index(tmp_path)
    hints = name_hints(idx, "parser.c", "error: unknown type name 'sizetype'\n"
                                        "undefined reference to `parser_exec'")
    assert "`size_type` (typedef, parser.h)" in hints
    assert "`parser_execute` (function, parser.h): int parser_execute(parser *p" in hints
    elsewhere = name_hints(idx, "parser.c", "error: implicit declaration of function 'checksum_updat'")
    assert "declared in files parser.c does not include" in elsewhere and "`checksum_update`" in elsewhere


def test_nothing_close_says_so_and_no_unknown_name_says_nothing(tmp_path: Path) -> None:
    idx = index(tmp_path)
    assert "`zzq_frobnicate` is not declared, and this project declares nothing like it" in \
        name_hints(idx, "parser.c", "error: 'zzq_frobnicate' undeclared")
    assert name_hints(idx, "parser.c", "error: expected ';' before '}' token") == ""


def test_a_const_parameter_the_attempt_changed_gets_how_to_do_without(tmp_path: Path) -> None:
    failure = ("cJSON.c:645:30: error: increment of read-only parameter 'input'\n"
               "cJSON.c:646:30: error: increment of read-only parameter 'input'\n"
               "cJSON.c:650:9: error: assignment of read-only variable 'limit'")
    hints = name_hints(index(tmp_path), "parser.c", failure)
    assert hints == ("`input`, `limit` cannot change (declared `const`): do not assign, increment or decrement it; "
                     "read through it with an index (`p[i]`), or copy it into a local variable and change that.")
