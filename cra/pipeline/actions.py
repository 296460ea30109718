"""Data crossing the boundary between the language server and the pipeline: one action request, one result."""

from __future__ import annotations

from typing import Literal

import msgspec

ActionName = Literal["plan", "scaffold", "implement", "tests", "document"]
ACTIONS: tuple[str, ...] = ("plan", "scaffold", "implement", "tests", "document")

# One-line titles shown in the editor's code-action menu.
ACTION_TITLES: dict[str, str] = {
    "plan": "cra: Plan this change",
    "scaffold": "cra: Scaffold declarations and contracts",
    "implement": "cra: Implement function",
    "tests": "cra: Generate tests for function",
    "document": "cra: Document function",
}


class ActionRequest(msgspec.Struct, kw_only=True):
    action: str
    path: str
    text: str
    root: str
    symbol: str | None = None
    version: int | None = None
    instruction: str = ""  # free text from the user, e.g. for plan/scaffold


class TextEditOut(msgspec.Struct, kw_only=True):
    """A replacement of a range of the *request's* text (0-based lines, UTF-16 columns as LSP wants them)."""

    start_line: int
    start_char: int
    end_line: int
    end_char: int
    new_text: str


class FileOut(msgspec.Struct, kw_only=True):
    """A whole new file the action creates next to the target (generated tests, plans)."""

    path: str
    text: str


class Verdict(msgspec.Struct, kw_only=True):
    compiled: bool | None = None
    tests_passed: bool | None = None
    message: str = ""


class DiagnosticOut(msgspec.Struct, kw_only=True):
    """A compiler or test message about the generated code. `line`/`column` are 0-based in the result's
    `new_text` (the attempt that was validated); None when the tool named no line (a linker error)."""

    line: int | None
    message: str
    column: int | None = None
    severity: str = "error"  # "error" | "warning" | "note"
    source: str = "compile"  # "compile" | "tests"


def diagnostics_out(diagnostics: list, *, source: str = "compile") -> list[DiagnosticOut]:
    """Sandbox diagnostics (1-based `line`/`col`, see pipeline.sandbox.Diagnostic) as `DiagnosticOut`s."""
    return [DiagnosticOut(line=d.line - 1 if d.line else None, column=d.col - 1 if d.col else None,
                          severity=d.severity, message=d.message, source=source) for d in diagnostics]


class ActionResult(msgspec.Struct, kw_only=True):
    ok: bool
    task_id: str
    action: str
    path: str
    symbol: str | None = None
    edits: list[TextEditOut] = []
    new_text: str | None = None  # the target file's full text after the edits
    files: list[FileOut] = []
    verdict: Verdict = msgspec.field(default_factory=Verdict)
    error: str | None = None
    cancelled: bool = False
    # The symbol's text the edit was computed against, so a stale document can be re-anchored.
    anchor_text: str | None = None
    # Line-level compile/test findings of the last validated attempt (empty when the flow gives none).
    diagnostics: list[DiagnosticOut] = []
