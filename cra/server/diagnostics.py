"""`cra` diagnostics: why the last action on a function failed validation (compile errors, failing generated
tests), shown on that function until the next successful action on it or until its text is edited away.

The generated code was never applied, so compiler lines refer to text the user does not see: a message whose
line falls inside the generated function is placed on the matching line of the function as it is now (clamped
to it); any other message sits on the function's first line.
"""

from __future__ import annotations

import re

import msgspec
from lsprotocol import types

from cra.pipeline.actions import ActionResult

from .symbols import FunctionSite, find_function

SOURCE = "cra"
# "line 12: message" (the implement flow's verdict) or "file.c:12:5: error: message" (gcc / the edit check).
_LINE_MESSAGE = re.compile(r"(?:^|;\s*|:\s)(?:line (\d+): |[\w./-]+\.[ch]:(\d+):(?:\d+:)?\s*(?:error|warning): )"
                           r"(.+?)(?=;\s*(?:line \d+:|[\w./-]+\.[ch]:\d+)|$)")


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    line: int | None  # 0-based line in the generated text; None: about the function as a whole
    message: str
    code: str  # "compile" | "tests"


class FailedAction(msgspec.Struct, frozen=True, kw_only=True):
    action: str
    symbol: str
    function_hash: str  # the function's text when it failed: another text means the diagnostic is stale
    generated_start: int  # 0-based line of the function in the text the findings' lines refer to
    findings: list[Finding]


def findings_of(result: ActionResult) -> list[Finding]:
    """Line-level findings of a failed result: its `diagnostics` when the flow gave them, else its verdict."""
    verdict = result.verdict
    if verdict.compiled is False:
        code = "compile"
    elif verdict.tests_passed is False:
        code = "tests"
    else:
        return []
    findings: list[Finding] = []
    for item in getattr(result, "diagnostics", None) or []:
        if item.severity in ("error", "warning"):
            findings.append(Finding(line=item.line, message=item.message, code=item.source or code))
    if findings:
        return findings
    message = verdict.message or result.error or f"{result.action} failed validation"
    for match in _LINE_MESSAGE.finditer(message):
        number = match.group(1) or match.group(2)
        findings.append(Finding(line=int(number) - 1, message=match.group(3).strip(), code=code))
    return findings or [Finding(line=None, message=message, code=code)]


class DiagnosticsBook:
    """The failed actions per document, turned into LSP diagnostics against the document's current functions."""

    def __init__(self) -> None:
        self._failed: dict[str, dict[str, FailedAction]] = {}

    def record(self, uri: str, result: ActionResult, site: FunctionSite) -> bool:
        """Remember a failed action's findings on `site`; True when there is something to show."""
        findings = findings_of(result)
        if not findings:
            return False
        self._failed.setdefault(uri, {})[site.name] = FailedAction(
            action=result.action, symbol=site.name, function_hash=site.content_hash,
            generated_start=site.start_line, findings=findings)
        return True

    def clear(self, uri: str, symbol: str | None) -> bool:
        """Forget `symbol`'s findings (a later action on it succeeded); True when something was removed."""
        entries = self._failed.get(uri, {})
        return symbol is not None and entries.pop(symbol, None) is not None

    def has(self, uri: str) -> bool:
        return bool(self._failed.get(uri))

    def diagnostics(self, uri: str, sites: list[FunctionSite]) -> list[types.Diagnostic]:
        """The current diagnostics of `uri`; findings whose function changed or vanished are dropped."""
        entries = self._failed.get(uri, {})
        shown: list[types.Diagnostic] = []
        for name, failed in list(entries.items()):
            site = find_function(sites, name)
            if site is None or site.content_hash != failed.function_hash:
                del entries[name]  # edited away: the finding no longer describes this code
                continue
            for finding in failed.findings:
                line = site.start_line
                if finding.line is not None and failed.generated_start <= finding.line:
                    line = min(site.end_line, site.start_line + finding.line - failed.generated_start)
                shown.append(types.Diagnostic(
                    range=types.Range(start=types.Position(line=line, character=0),
                                      end=types.Position(line=line + 1, character=0)),
                    message=f"cra {failed.action} `{name}`: generated code "
                            f"{'does not compile' if finding.code == 'compile' else 'fails its tests'}: "
                            f"{finding.message}",
                    severity=types.DiagnosticSeverity.Warning, source=SOURCE, code=finding.code))
        return shown
