"""Deterministic condensation of long compiler/test output for the adjustment prompt."""

from __future__ import annotations

import re

_ERROR = re.compile(r"(^|\s)(fatal error|error):|undefined reference to|multiple definition of", re.IGNORECASE)
_WARNING = re.compile(r":\d+(:\d+)?: warning:")
_FAILURE = re.compile(
    r"Assertion .* failed|:FAIL\b|\[\s*FAILED\s*\]|\bFAILED\b|\bFAIL:|Segmentation fault|Aborted|"
    r"\b\d+ Tests \d+ Failures|tests passed, \d+ tests failed|core dumped|Test #\d+: .*\*\*\*"
)
_POSITION = re.compile(r":\d+(:\d+)?")


def _key(line: str) -> str:
    # The same diagnostic repeated from several translation units differs only in positions.
    return _POSITION.sub("", line.strip())


def condense(output: str, max_chars: int = 4000) -> str:
    """Output unchanged when it fits; otherwise: counts, the first error with context, each unique
    error/warning/failure line once, in original order, cut to `max_chars`."""
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if len(output) <= max_chars:
        return output
    lines = output.splitlines()
    errors = [i for i, ln in enumerate(lines) if _ERROR.search(ln)]
    warnings = [i for i, ln in enumerate(lines) if _WARNING.search(ln)]
    failures = [i for i, ln in enumerate(lines) if _FAILURE.search(ln) and i not in errors]
    parts = [f"[condensed: {len(lines)} lines, {len(errors)} error lines, {len(warnings)} warning lines, "
             f"{len(failures)} failure lines]"]
    if errors:
        first = errors[0]
        parts.append("first error:")
        parts.extend(lines[max(0, first - 2): first + 4])
    seen: set[str] = set()
    unique: list[str] = []
    for i in sorted(set(errors) | set(failures) | set(warnings)):
        key = _key(lines[i])
        if key and key not in seen:
            seen.add(key)
            unique.append(lines[i])
    if unique:
        parts.append("unique diagnostics and failures:")
        parts.extend(unique)
    if not errors and not failures:
        parts.append("last lines:")
        parts.extend(lines[-10:])
    text = "\n".join(parts)
    if len(text) > max_chars:
        marker = "\n[... cut]"
        text = text[: max_chars - len(marker)] + marker
    return text
