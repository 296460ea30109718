"""Turning results into versioned edits: applied as-is, re-anchored after unrelated edits, refused otherwise."""

from __future__ import annotations

import pytest
from lsprotocol import types

from cra.clients.headless import _apply_text_edits
from cra.pipeline.actions import ActionResult, FileOut
from cra.server.edits import EditRefused, minimal_edit, offset_at, position_at, target_edit, workspace_edit

JOB_TEXT = "int add(int a, int b) {\n    return a + b;\n}\n\nint clamp(int v) {\n    return 0;\n}\n"
STUB = "int clamp(int v) {\n    return 0;\n}"
IMPLEMENTED = "int clamp(int v) {\n    return v < 0 ? 0 : v;\n}"


def result_for(new_text: str, anchor: str | None = STUB) -> ActionResult:
    return ActionResult(ok=True, task_id="t1", action="implement", path="/w/math.c", symbol="clamp",
                        new_text=new_text, anchor_text=anchor)


def apply(edit, text: str) -> str:
    return _apply_text_edits(text, list(edit.edits))


def test_unchanged_document_gets_the_edit_with_its_version():
    edit = target_edit(result_for(JOB_TEXT.replace(STUB, IMPLEMENTED)), uri="file:///w/math.c", job_text=JOB_TEXT,
                       job_version=4, current_text=JOB_TEXT, current_version=4)
    assert edit.text_document.version == 4
    assert apply(edit, JOB_TEXT) == JOB_TEXT.replace(STUB, IMPLEMENTED)


def test_edit_is_reanchored_when_the_user_typed_elsewhere():
    current = "#include <stdio.h>\n// a note the user added\n" + JOB_TEXT.replace("a + b", "b + a")
    edit = target_edit(result_for(JOB_TEXT.replace(STUB, IMPLEMENTED)), uri="file:///w/math.c", job_text=JOB_TEXT,
                       job_version=4, current_text=current, current_version=6)
    assert edit.text_document.version == 6
    assert apply(edit, current) == current.replace(STUB, IMPLEMENTED)
    assert "// a note the user added" in apply(edit, current) and "b + a" in apply(edit, current)


def test_edit_is_refused_when_the_target_symbol_changed():
    current = JOB_TEXT.replace("return 0;", "return v; /* mine */")
    with pytest.raises(EditRefused, match="`clamp` was edited"):
        target_edit(result_for(JOB_TEXT.replace(STUB, IMPLEMENTED)), uri="file:///w/math.c", job_text=JOB_TEXT,
                    job_version=4, current_text=current, current_version=5)


def test_edit_is_refused_without_anchor_when_the_document_changed():
    with pytest.raises(EditRefused, match="document changed"):
        target_edit(result_for(JOB_TEXT.replace(STUB, IMPLEMENTED), anchor=None), uri="file:///w/math.c",
                    job_text=JOB_TEXT, job_version=4, current_text=JOB_TEXT + "\n", current_version=5)


def test_edit_reaching_outside_the_anchor_is_refused():
    new = JOB_TEXT.replace("a + b", "b + a").replace(STUB, IMPLEMENTED)
    with pytest.raises(EditRefused, match="outside"):
        target_edit(result_for(new), uri="file:///w/math.c", job_text=JOB_TEXT, job_version=4,
                    current_text="// x\n" + JOB_TEXT, current_version=5)


def test_duplicated_anchor_is_refused():
    current = JOB_TEXT + "\n" + STUB + "\n"
    with pytest.raises(EditRefused, match="more than once"):
        target_edit(result_for(JOB_TEXT.replace(STUB, IMPLEMENTED)), uri="file:///w/math.c", job_text=JOB_TEXT,
                    job_version=4, current_text=current, current_version=5)


def test_positions_count_utf16_units():
    text = "/* 😀 é */ int x;\nint y;\n"
    assert position_at(text, text.index("int x")).character == len("/* ") + 2 + len(" é */ ")
    for target in ("int x", "int y", ";\n"):
        offset = text.index(target)
        position = position_at(text, offset)
        assert offset_at(text, position.line, position.character) == offset
    edit = minimal_edit(text, text.replace("int x", "long x"))
    as_lsp = types.TextEdit(range=types.Range(start=types.Position(line=edit.start_line, character=edit.start_char),
                                              end=types.Position(line=edit.end_line, character=edit.end_char)),
                            new_text=edit.new_text)
    assert _apply_text_edits(text, [as_lsp]) == text.replace("int x", "long x")


def test_new_files_are_created_but_never_overwritten(tmp_path):
    target = tmp_path / "math.c"
    result = ActionResult(ok=True, task_id="t2", action="tests", path=str(target), symbol="clamp",
                          files=[FileOut(path="test_math.c", text="#include <assert.h>\n")])
    edit = workspace_edit(result, uri=target.as_uri(), target_path=str(target), job_text=JOB_TEXT, job_version=1,
                          current_text=JOB_TEXT, current_version=1)
    create, content = edit.document_changes
    assert create.uri == (tmp_path / "test_math.c").as_uri()
    assert content.edits[0].new_text == "#include <assert.h>\n"
    (tmp_path / "test_math.c").write_text("/* the user's tests */\n")
    with pytest.raises(EditRefused, match="already exists"):
        workspace_edit(result, uri=target.as_uri(), target_path=str(target), job_text=JOB_TEXT, job_version=1,
                       current_text=JOB_TEXT, current_version=1)
