"""Retrieval, scope, precision and packing on a small real C project."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cra.pipeline.context import ContextError, WorkspaceIndex, estimate_tokens
from cra.pipeline.context.assemble import assemble
from cra.pipeline.context.cache import CACHE_FORMAT
from cra.pipeline.context.packing import PackEntry, pack
from cra.pipeline.context.precision import PRIMARY, SUPPORTING, TYPE_CONTEXT
from cra.pipeline.context.render import render

FILES = {
    "include/buf.h": b"""#ifndef BUF_H
#define BUF_H
#include <stddef.h>
#define BUF_MIN 16
/** A growable byte buffer. */
struct buf { char *data; size_t len; size_t cap; };
/** Makes room for `extra` more bytes; returns 0 on success. */
int buf_reserve(struct buf *b, size_t extra);
/** Appends `n` bytes. */
int buf_append(struct buf *b, const char *src, size_t n);
#endif
""",
    "src/buf.c": b"""#include "buf.h"
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t extra) {
    size_t want = b->len + extra;
    if (want <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : BUF_MIN;
    while (cap < want) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const char *src, size_t n) {
    return 0;
}
""",
    "src/unrelated.c": b"""/* Parses command-line flags. */
static int parse_flags(int argc, char **argv) { return argc > 1 && argv[1][0] == '-'; }
""",
}


@pytest.fixture
def index(tmp_path: Path) -> WorkspaceIndex:
    for rel, data in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    return WorkspaceIndex.build(str(tmp_path), use_cache=False)


def test_assemble_stub_target_gets_callees_and_types(index: WorkspaceIndex) -> None:
    pack_ = assemble(index, "src/buf.c", "buf_append", budget=400, task_text="implement buf_append")
    assert pack_.target.name == "buf_append" and pack_.target.is_stub
    levels = {(i.name, i.kind): (i.precision, i.tier) for i in pack_.items}
    assert levels[("buf_append", "function")] == (PRIMARY, "seed")
    assert levels[("buf", "struct")] == (TYPE_CONTEXT, "dependency")
    assert levels[("buf_reserve", "prototype")][0] == SUPPORTING  # same-file helper, shown by its documented decl
    assert not any(i.file == "src/unrelated.c" for i in pack_.items)
    assert "struct buf { char *data; size_t len; size_t cap; };" in pack_.rendered
    assert "/** Makes room for `extra` more bytes; returns 0 on success. */\nint buf_reserve(" in pack_.rendered
    assert "while (cap < want)" not in pack_.rendered  # buf_reserve's body is not needed
    assert pack_.tokens == estimate_tokens(pack_.rendered) <= 400
    # Stable order: file then position, and byte-identical on a second run.
    order = [(i.file, i.line) for i in pack_.items]
    assert order == sorted(order)
    assert assemble(index, "src/buf.c", "buf_append", budget=400, task_text="implement buf_append").rendered == pack_.rendered


def test_budget_is_respected_and_symbols_are_never_split(index: WorkspaceIndex) -> None:
    full = assemble(index, "src/buf.c", "buf_reserve", budget=2000)
    for budget in (60, 90, 120, 200):
        small = assemble(index, "src/buf.c", "buf_reserve", budget=budget)
        assert small.tokens <= budget
        for item in small.items:
            assert item.text in small.rendered  # every kept symbol is whole
        kept = {(i.file, i.name, i.kind) for i in small.items}
        everything = {(i.file, i.name, i.kind) for i in full.items}
        assert kept <= everything and ("src/buf.c", "buf_reserve", "function") in kept
        assert len(small.dropped) == len(everything - kept)


def test_budget_below_the_target_fails_clearly(index: WorkspaceIndex) -> None:
    with pytest.raises(ContextError, match="budget"):
        assemble(index, "src/buf.c", "buf_reserve", budget=5)
    with pytest.raises(ContextError, match="no symbol named"):
        assemble(index, "src/buf.c", "missing_fn", budget=100)


def test_precision_levels_render_as_specified(index: WorkspaceIndex) -> None:
    proto = next(s for s in index.definitions("buf_reserve") if s.kind == "prototype")
    func = index.function("src/buf.c", "buf_reserve")
    struct = next(s for s in index.definitions("buf") if s.kind == "struct")
    assert render(func, PRIMARY) == func.text
    assert render(proto, SUPPORTING) == proto.doc + "\n" + "int buf_reserve(struct buf *b, size_t extra);"
    assert render(func, SUPPORTING) == "int buf_reserve(struct buf *b, size_t extra);"
    assert render(struct, TYPE_CONTEXT) == "struct buf { char *data; size_t len; size_t cap; };"
    assert render(struct, SUPPORTING).startswith("/** A growable byte buffer. */\nstruct buf {")
    packed_entries = [PackEntry(symbol=func, tier="seed", precision=PRIMARY, priority=(0,), text=func.text, required=True)]
    kept, dropped, rendered, tokens = pack(packed_entries, 1000, estimate_tokens)
    assert rendered == f"// file: src/buf.c\n{func.text}\n" and not dropped


def test_judge_decides_only_ambiguous_candidates(index: WorkspaceIndex) -> None:
    asked: list[tuple[str, list[str]]] = []

    def judge(stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        assert prefix.startswith("Task: implement buf_append")
        asked.append((stage, questions))
        # Keep only what mentions buf; promote nothing to primary; make functions supporting.
        if stage == "precision_relevant":
            return [("buf" in q, 0.9) for q in questions]
        if stage == "precision_primary":
            return [(False, 0.8) for _ in questions]
        return [(True, 0.7) for _ in questions]

    pack_ = assemble(index, "src/buf.c", "buf_append", budget=400, judge=judge, task_text="implement buf_append")
    stages = [s for s, _ in asked]
    assert stages == sorted(set(stages), key=stages.index)  # one batched call per stage
    assert "precision_relevant" in stages
    assert all(q for _, q in asked)
    # Rule-settled symbols never reach the judge: the target and its direct dependencies.
    all_questions = " ".join(q for _, qs in asked for q in qs)
    assert "buf_append(" not in all_questions and "struct buf {" not in all_questions
    names = {i.name for i in pack_.items}
    assert {"buf_append", "buf"} <= names


class StagedJudge:
    """A judge that decides only `stages` (as the pipeline's does for the stages with a trained adapter)."""

    def __init__(self, stages: set[str]) -> None:
        self.stages = frozenset(stages)
        self.asked: list[str] = []

    def __call__(self, stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        assert stage in self.stages, f"asked {stage}, which it does not decide"
        self.asked.append(stage)
        return [(False, 0.9) for _ in questions]  # "no" to everything: what the untrained 0.5B base says


def test_a_judge_decides_only_its_stages_and_the_rules_keep_the_rest(index: WorkspaceIndex) -> None:
    def items(judge: object) -> set[tuple[str, str, str]]:
        pack_ = assemble(index, "src/buf.c", "buf_append", budget=4000, judge=judge,  # type: ignore[arg-type]
                         task_text="implement buf_append")
        return {(i.file, i.name, i.precision) for i in pack_.items}

    rules = items(None)
    relevant_only = StagedJudge({"precision_relevant"})
    with_relevant = items(relevant_only)
    assert relevant_only.asked == ["precision_relevant"]  # primary/supporting were never asked
    # What it said no to is out; what it kept, and the rule-settled symbols, are at the rules' levels.
    assert with_relevant < rules
    scope_only = StagedJudge({"scope_dependency", "scope_metadata", "scope_cochange"})
    with_scope = items(scope_only)
    assert "precision_relevant" not in scope_only.asked and with_scope <= rules
    assert items(StagedJudge(set())) == rules  # a judge for no stage changes nothing


def test_cochange_tier_from_git_history(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.c").write_text("int alpha_step(void) { return 0; }\n")
    (tmp_path / "b.c").write_text("int alpha_helper(void) { return 1; }\n")
    (tmp_path / "c.c").write_text("int gamma(void) { return 2; }\n")
    for n in range(3):
        (tmp_path / "a.c").write_text(f"int alpha_step(void) {{ return {n}; }}\n")
        (tmp_path / "b.c").write_text(f"int alpha_helper(void) {{ return {n + 1}; }}\n")
        git("add", "-A")
        git("commit", "-q", "-m", f"change {n}")
    index = WorkspaceIndex.build(str(tmp_path))
    pack_ = assemble(index, "a.c", "alpha_step", budget=300, task_text="alpha")
    tiers = {i.name: i.tier for i in pack_.items}
    assert tiers["alpha_step"] == "seed"
    assert tiers.get("alpha_helper") == "cochange"
    assert "gamma" not in tiers
    assert list((tmp_path / ".cra" / "index" / f"v{CACHE_FORMAT}").glob("cochange-*.msgpack"))


def test_empty_body_gets_what_neighbouring_functions_use(tmp_path: Path) -> None:
    neighbours = "".join(
        f"int area_{n}(struct rect r) {{ return scale_value(r.w * r.h, {n}) + CLAMP_MAX; }}\n" for n in range(3)
    )
    (tmp_path / "geo.c").write_text(
        "#define CLAMP_MAX 100\nstruct rect { int w; int h; };\n"
        "/** Scales v by k. */\nstatic int scale_value(int v, int k) { return v * k; }\n"
        "static int unused_helper(void) { return 7; }\n"
        + neighbours
        + "int area_3(struct rect r) {\n}\n"
    )
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    pack_ = assemble(index, "geo.c", "area_3", budget=70)
    chosen = {i.name: i.precision for i in pack_.items}
    assert chosen["area_3"] == PRIMARY
    assert chosen["scale_value"] == SUPPORTING and chosen["CLAMP_MAX"] == SUPPORTING
    assert chosen["rect"] == TYPE_CONTEXT
    assert "unused_helper" not in chosen  # no neighbour uses it: it loses the budget to what they use
    assert pack_.tokens <= 70
    roomy = {i.name for i in assemble(index, "geo.c", "area_3", budget=500).items}
    assert "unused_helper" in roomy  # with room to spare the rest of the seed file comes along


def test_type_context_drops_comment_lines_but_keeps_members_and_their_trailing_docs() -> None:
    from cra.pipeline.context import parse_source

    source = b"/** Doc. */\nstruct cfg {\n    int level; // verbosity\n\n    /* name of the\n       output */\n    const char *out;\n};\n"
    struct = next(s for s in parse_source("c.h", source).symbols if s.name == "cfg")
    assert render(struct, TYPE_CONTEXT) == "struct cfg {\n    int level; // verbosity\n\n    const char *out;\n};"
    assert render(struct, SUPPORTING) == "/** Doc. */\n" + struct.text + ";"


def test_implement_context_shows_similar_finished_functions_not_the_target(tmp_path: Path) -> None:
    """For implement, the target is pre-filled in the prompt; its most similar finished siblings (same types and
    contract words), with the header's doc, teach the invariants — and their prototypes are not repeated."""
    (tmp_path / "rb.h").write_text(
        "#include <stdbool.h>\n#include <stdint.h>\n#include <stddef.h>\n"
        "typedef struct rb { uint8_t *data; size_t cap, head, tail, count; } rb_t;\n"
        "/** @brief Append one byte. @return false when the buffer is full. */\n"
        "bool rb_push(rb_t *rb, uint8_t byte);\n"
        "/** @brief Remove the oldest byte. @return false when the buffer is empty. */\n"
        "bool rb_pop(rb_t *rb, uint8_t *out);\n"
        "/** @brief Bytes stored. */\nsize_t rb_count(const rb_t *rb);\n")
    (tmp_path / "rb.c").write_text(
        '#include "rb.h"\n'
        "size_t rb_count(const rb_t *rb) { return rb->count; }\n"
        "bool rb_push(rb_t *rb, uint8_t byte)\n{\n    if (rb->count == rb->cap) {\n        return false;\n    }\n"
        "    rb->data[rb->head] = byte;\n    rb->head = (rb->head + 1) % rb->cap;\n    rb->count++;\n"
        "    return true;\n}\n"
        "bool rb_pop(rb_t *rb, uint8_t *out)\n{\n    return false;\n}\n")
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    full = assemble(index, "rb.c", "rb_pop", budget=800)
    assert "rb_pop" in {i.name for i in full.items}
    lean = assemble(index, "rb.c", "rb_pop", budget=800, include_target=False, exemplars=1)
    chosen = {(i.name, i.kind): i.precision for i in lean.items}
    assert not any(name == "rb_pop" for name, _ in chosen)
    assert chosen[("rb_push", "function")] == PRIMARY
    assert ("rb_push", "prototype") not in chosen  # the definition shown whole makes it redundant
    assert ("rb_count", "function") not in chosen  # one exemplar asked for: the most similar one
    push = next(i for i in lean.items if i.name == "rb_push")
    assert push.text.startswith("/** @brief Append one byte.")  # the header's contract travels with it
