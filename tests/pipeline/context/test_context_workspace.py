"""WorkspaceIndex over real files: discovery rules, include resolution, incremental updates, the persisted cache."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cra.pipeline.context import ContextError, FileIndex, WorkspaceIndex, cparse, parse_source

HEADER = b"""#ifndef LIST_H
#define LIST_H
#include "node.h"
/** A singly linked list. */
struct list { struct node *head; int size; };
/** Appends a value. */
int list_push(struct list *l, int value);
#endif
"""
NODE = b"""#ifndef NODE_H
#define NODE_H
#include "list.h"
struct node { int value; struct node *next; };
#endif
"""
SOURCE = b"""#include "list.h"
#include <stdlib.h>

static struct node *node_new(int value) {
    struct node *n = malloc(sizeof *n);
    n->value = value;
    n->next = NULL;
    return n;
}

int list_push(struct list *l, int value) {
    struct node *n = node_new(value);
    n->next = l->head;
    l->head = n;
    return ++l->size;
}
"""


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def same_index(a: FileIndex, b: FileIndex) -> bool:
    """Equal extraction (include resolution is the workspace's job and differs by design)."""
    return (a.symbols, a.references, a.error_lines, [i.target for i in a.includes]) == (
        b.symbols, b.references, b.error_lines, [i.target for i in b.includes]
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, "include/list.h", HEADER)
    write(tmp_path, "include/node.h", NODE)
    write(tmp_path, "src/list.c", SOURCE)
    return tmp_path


def test_build_indexes_files_and_resolves_include_cycle(project: Path) -> None:
    (project / "compile_commands.json").write_text(
        json.dumps([{"directory": str(project), "file": "src/list.c", "arguments": ["cc", "-Iinclude", "-c", "src/list.c"]}])
    )
    index = WorkspaceIndex.build(str(project), use_cache=False)
    assert sorted(index.files) == ["include/list.h", "include/node.h", "src/list.c"]
    assert index.include_dirs == ["include"]
    assert index.includes("src/list.c") == ["include/list.h"]  # <stdlib.h> is outside the workspace
    # list.h and node.h include each other: the closure terminates and holds both.
    assert index.include_closure("src/list.c") == {"src/list.c": 0, "include/list.h": 1, "include/node.h": 2}
    assert {s.kind for s in index.definitions("list_push")} == {"prototype", "function"}
    prototype = index.paired(index.function("src/list.c", "list_push"))
    assert prototype is not None and prototype.file == "include/list.h" and prototype.doc == "/** Appends a value. */"
    assert index.paired(prototype) == index.function("src/list.c", "list_push")
    assert index.paired(index.function("src/list.c", "node_new")) is None  # static helper: no prototype
    push = index.function("src/list.c", "list_push")
    assert push is not None and push.kind == "function"
    assert [c.name for c in index.callees(push)] == ["node_new"]
    assert {t.name for t in index.types_used(push)} == {"list", "node"}
    assert index.symbol_at("src/list.c", push.start_line + 2) == push
    assert {f for f, _ in index.references_to("node_new")} == {"src/list.c"}
    assert index.stats.files == 3 and index.stats.symbols > 5 and index.stats.references > 10


def test_skips_huge_binary_and_survives_symlink_loop(tmp_path: Path) -> None:
    write(tmp_path, "ok.c", b"int ok(void) { return 1; }\n")
    write(tmp_path, "huge.c", b"/* filler */\n" * (10 * 1024 * 1024 // 13 + 1))
    write(tmp_path, "blob.c", b"\x7fELF\x02\x01\x01\x00\x00\x00int")
    (tmp_path / "sub").mkdir()
    write(tmp_path, "sub/inner.h", b"#define INNER 1\n")
    os.symlink("..", tmp_path / "sub" / "loop")  # sub/loop -> the root: a directory cycle
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    assert sorted(index.files) == ["ok.c", "sub/inner.h"]
    reasons = {s.path: s.reason for s in index.stats.skipped}
    assert "larger than" in reasons["huge.c"]
    assert "binary" in reasons["blob.c"]


def test_gitignore_is_honoured_without_git(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", b"build/\n*.gen.c\n")
    write(tmp_path, "main.c", b"int main(void) { return 0; }\n")
    write(tmp_path, "build/out.c", b"int out;\n")
    write(tmp_path, "x.gen.c", b"int gen;\n")
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    assert sorted(index.files) == ["main.c"]


def test_gitignore_is_honoured_in_a_git_repository(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, ".gitignore", b"vendor/\n")
    write(tmp_path, "a.c", b"int a;\n")
    write(tmp_path, "vendor/v.c", b"int v;\n")
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    assert sorted(index.files) == ["a.c"]


@pytest.mark.parametrize("git", [False, True])
def test_hidden_folders_such_as_quilts_copies_of_patched_files_are_not_indexed(tmp_path: Path, git: bool) -> None:
    if git:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, "http_parser.c", b"int http_should_keep_alive(void) { return 1; }\n")
    write(tmp_path, ".pc/CVE-2020-8287.patch/http_parser.c", b"int http_should_keep_alive(void) { return 0; }\n")
    write(tmp_path, "src/.cache/gen.c", b"int gen;\n")
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    assert sorted(index.files) == ["http_parser.c"]
    assert [s.file for s in index.definitions("http_should_keep_alive")] == ["http_parser.c"]


def test_incremental_update_equals_a_fresh_parse(project: Path) -> None:
    index = WorkspaceIndex.build(str(project), use_cache=False)
    index.remember_tree("src/list.c", SOURCE)
    edited = SOURCE.replace(b"return ++l->size;", b"l->size += 1;\n    list_touch(l);\n    return l->size;")
    updated = index.update("src/list.c", edited.decode())
    assert same_index(updated, parse_source("src/list.c", edited))
    assert any(r.name == "list_touch" and r.kind == "call" and r.enclosing == "list_push" for r in updated.references)
    # A second edit goes through tree.edit + parse(new, old_tree) again and still matches.
    again = edited.replace(b"static struct node *node_new", b"/** New node. */\nstatic struct node *node_new")
    assert same_index(index.update(str(project / "src/list.c"), again), parse_source("src/list.c", again))
    assert index.function("src/list.c", "node_new").doc == "/** New node. */"
    assert [s.kind for s in index.definitions("list_push")].count("function") == 1


def test_update_adds_new_file_and_rejects_outside_paths(project: Path) -> None:
    index = WorkspaceIndex.build(str(project), use_cache=False)
    index.update("src/extra.c", '#include "list.h"\nint extra(void) { return list_push(0, 1); }\n')
    assert index.includes("src/extra.c") == ["include/list.h"]  # resolved by the unique-name fallback
    assert index.function("src/extra.c", "extra") is not None
    with pytest.raises(ContextError, match="outside"):
        index.update("../elsewhere.c", "int x;")


def test_cache_hit_skips_parsing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = WorkspaceIndex.build(str(project))
    assert first.stats.parsed == 3 and first.stats.cached == 0
    assert list((project / ".cra" / "index").rglob("*.msgpack"))
    calls: list[str] = []
    real = cparse.parse_source

    def counting(path: str, data: bytes):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(path, data)

    monkeypatch.setattr(cparse, "parse_source", counting)
    second = WorkspaceIndex.build(str(project))
    assert calls == [] and second.stats.cached == 3
    assert second.files["src/list.c"].symbols == first.files["src/list.c"].symbols
    write(project, "src/list.c", SOURCE + b"\nint more(void) { return 2; }\n")
    third = WorkspaceIndex.build(str(project))
    assert calls == ["src/list.c"] and third.stats.cached == 2
    assert third.function("src/list.c", "more") is not None


def test_build_rejects_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="not a directory"):
        WorkspaceIndex.build(str(tmp_path / "nope"))


EDIT_BASE = b"""#include "list.h"
/** Export macro as real headers write it. */
#define LIB_API
#ifdef FAST
LIB_API int fast_path(int x) { return x << 1; }
#else
LIB_API int fast_path(int x) { return x * 2; }
#endif

/* Sums values. */
int sum(const int *v, int n) {
    int total = 0;
    for (int i = 0; i < n; i++) total += v[i];
    return total;
}

struct pair { int a; int b; };

// Swaps a pair.
void swap(struct pair *p) { int t = p->a; p->a = p->b; p->b = t; }

int last(void) { return sum(0, 0); }
"""

EDITS = [
    (b"total += v[i];", b"total += v[i] * 2;"),  # inside a body
    (b"/* Sums values. */", b"/* Sums all the values. */"),  # a doc comment
    (b"struct pair { int a; int b; };", b"struct pair { int a; int b; int c; };"),
    (b"void swap(", b"static void swap("),
    (b"int last(void) { return sum(0, 0); }", b"int last(void) { return sum(0, 0) + broken( ; }"),  # breaks code
    (b"+ broken( ; }", b"; }\nint added(void) { return last(); }"),  # repairs it, adds a function
    (b"#ifdef FAST", b"#ifdef FASTER"),  # a directive around definitions
    (b"// Swaps a pair.\n", b""),  # removes a doc comment
    (b'#include "list.h"\n', b'#include "list.h"\n#include "node.h"\n'),  # adds an include
    (b"LIB_API int fast_path(int x) { return x << 1; }", b"LIB_API int fast_path(int x) { return x << 2; }"),
]


def test_incremental_edit_sequence_matches_fresh_parses(tmp_path: Path) -> None:
    write(tmp_path, "e.c", EDIT_BASE)
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    index.remember_tree("e.c", EDIT_BASE)
    text = EDIT_BASE
    for old, new in EDITS:
        assert old in text, old
        text = text.replace(old, new, 1)
        assert same_index(index.update("e.c", text), parse_source("e.c", text)), (old, new)
    assert index.function("e.c", "added") is not None
    assert index.function("e.c", "fast_path").text.endswith("x << 2; }")


def test_incremental_edits_in_a_large_file_reextract_only_the_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filler = b"".join(b"/** f%d. */\nint f%d(int x) { return x + %d; }\n\n" % (i, i, i) for i in range(80))
    base = filler + EDIT_BASE + filler.replace(b"int f", b"int g").replace(b"/** f", b"/** g")
    write(tmp_path, "big.c", base)
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    index.remember_tree("big.c", base)
    texts = [base]
    for old, new in EDITS:
        texts.append(texts[-1].replace(old, new, 1))
    fresh = [parse_source("big.c", t) for t in texts[1:]]
    full_extractions: list[str] = []
    real_extract = cparse.extract
    monkeypatch.setattr(cparse, "extract", lambda *a: full_extractions.append(a[0]) or real_extract(*a))
    for text, expected, edit in zip(texts[1:], fresh, EDITS):
        assert same_index(index.update("big.c", text), expected), edit
    assert full_extractions == []  # every edit went through the region re-extraction
    text = texts[-1]
    g79 = index.function("big.c", "g79")
    assert g79 is not None and text[g79.start_byte : g79.end_byte].decode() == g79.text


def test_parallel_build_equals_serial_build(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cra.pipeline.context import parallel

    for n in range(6):
        write(project, f"gen/g{n}.c", b'#include "list.h"\nint g%d(struct list *l) { return list_push(l, %d); }\n' % (n, n))
    serial = WorkspaceIndex.build(str(project), use_cache=False, workers=1)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    parallel = WorkspaceIndex.build(str(project), use_cache=False, workers=2)
    assert list(parallel.files) == list(serial.files)
    assert all(parallel.files[p].symbols == serial.files[p].symbols for p in serial.files)
    assert all(parallel.files[p].references == serial.files[p].references for p in serial.files)
    assert parallel.stats.parsed == serial.stats.parsed == 9


def test_parallel_build_survives_a_dying_worker(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies mid-build (a crash in the parser) costs time, not files: this process parses the rest."""
    from cra.pipeline.context import parallel

    for n in range(6):
        write(project, f"gen/g{n}.c", b"int g%d(int x) { return x + %d; }\n" % (n, n))
    serial = WorkspaceIndex.build(str(project), use_cache=False, workers=1)
    parent = os.getpid()
    real_parse = cparse.parse_source

    def crash_in_worker(rel: str, data: bytes) -> FileIndex:
        if os.getpid() != parent:
            os._exit(3)
        return real_parse(rel, data)

    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(cparse, "parse_source", crash_in_worker)
    parallel_index = WorkspaceIndex.build(str(project), use_cache=False, workers=3)
    assert list(parallel_index.files) == list(serial.files)
    assert all(parallel_index.files[p].references == serial.files[p].references for p in serial.files)
