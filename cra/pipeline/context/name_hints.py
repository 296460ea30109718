"""Names the compiler did not know, and the project's names that were probably meant.

A small model invents plausible names (`F_KEEPALIVE` for http-parser's `F_CONNECTION_KEEP_ALIVE`) and, shown only
gcc's "undeclared", invents another. This reads the failure for the names gcc and the linker reject (undeclared
identifiers, unknown types, implicit declarations, missing struct members, undefined references), finds the
closest names the workspace index declares where the unit can see them, and renders them with their one-line
definitions for the next attempt's prompt. Deterministic: no model, no compiler run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from cra.pipeline.context.symbols import (
    ENUM,
    ENUMERATOR,
    FUNCTION,
    MACRO,
    MACRO_FUNCTION,
    PROTOTYPE,
    STRUCT,
    TYPEDEF,
    UNION,
    VARIABLE,
    Symbol,
)

if TYPE_CHECKING:
    from cra.pipeline.context.index import WorkspaceIndex

MAX_NAMES = 4  # unknown names explained per failure
MAX_CANDIDATES = 4  # suggestions per unknown name
MIN_SCORE = 0.6
DEFINITION_CHARS = 160

_VALUES = frozenset({ENUMERATOR, MACRO, VARIABLE, FUNCTION, PROTOTYPE, MACRO_FUNCTION})
_CALLABLES = frozenset({FUNCTION, PROTOTYPE, MACRO_FUNCTION})
_TYPES = frozenset({TYPEDEF, STRUCT, UNION, ENUM})

# (pattern, the kinds of names that could stand in) for gcc's and ld's wording; quotes are ASCII or Unicode.
_Q = "['\u2018\u2019`]"
_UNKNOWN: list[tuple[re.Pattern[str], frozenset[str]]] = [
    (re.compile(rf"{_Q}(\w+){_Q} undeclared"), _VALUES),
    (re.compile(rf"implicit declaration of function {_Q}(\w+){_Q}"), _CALLABLES),
    (re.compile(rf"undefined reference to {_Q}(\w+){_Q}"), _CALLABLES | {VARIABLE}),
    (re.compile(rf"unknown type name {_Q}(\w+){_Q}"), _TYPES),
]
_RECORD = r"(?:const |volatile )*(?:struct |union )?(\w+)"
_MEMBER = re.compile(rf"{_Q}{_RECORD}{_Q}(?: {{aka {_Q}{_RECORD}{_Q}}})? has no member named {_Q}(\w+){_Q}")
# cJSON's parse_hex4 takes `const unsigned char * const input`; the 1.5B walks it with `input++` in every attempt.
_READ_ONLY = re.compile(rf"(?:increment|decrement|assignment) of read-only (?:parameter|variable) {_Q}(\w+){_Q}")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_FIELD = re.compile(r"(\w+)\s*(?:\[[^\]]*\]\s*)*(?::\s*\d+\s*)?[;,]")


def unknown_names(failure: str) -> list[tuple[str, frozenset[str]]]:
    """The names the failure says are not declared, in order of first mention, with the kinds that could fit."""
    found: dict[str, frozenset[str]] = {}
    positions: dict[str, int] = {}
    for pattern, kinds in _UNKNOWN:
        for m in pattern.finditer(failure):
            name = m.group(1)
            if name not in found:
                found[name], positions[name] = kinds, m.start()
    return sorted(found.items(), key=lambda item: positions[item[0]])


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def similarity(wrong: str, candidate: str) -> float:
    """How likely `candidate` is the name meant by `wrong`: the plain ratio, or how much of `wrong` the candidate
    contains in runs of three or more letters (`F_KEEPALIVE` is all in `F_CONNECTION_KEEP_ALIVE`)."""
    a, b = _squash(wrong), _squash(candidate)
    if not a or not b or a == b:
        return 0.0 if a != b or wrong == candidate else 0.99  # same letters, other case or underscores
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    covered = sum(block.size for block in matcher.get_matching_blocks()
                  if block.size >= 3 or (block.a == block.b == 0 and block.size))  # runs, and a shared head
    # Ties go to the same case style (MACRO_CASE, snake_case) and the same prefix family (`F_` flags, `s_` states).
    style = 0.05 if wrong.isupper() == candidate.isupper() else 0.0
    family = 0.05 if "_" in wrong and wrong.split("_", 1)[0] == candidate.split("_", 1)[0] else 0.0
    return max(matcher.ratio(), 0.9 * covered / len(a)) + style + family


def _trigrams(name: str) -> set[str]:
    squashed = _squash(name)
    return {squashed[i:i + 3] for i in range(len(squashed) - 2)}


def _one_line(symbol: Symbol) -> str:
    text = symbol.text if symbol.kind in (ENUMERATOR, MACRO, MACRO_FUNCTION, VARIABLE) else \
        symbol.signature or symbol.text
    line = " ".join(text.replace("\\\n", " ").split())
    return line if len(line) <= DEFINITION_CHARS else line[: DEFINITION_CHARS - 3] + "..."


def _describe(symbol: Symbol) -> str:
    kind = {ENUMERATOR: f"enumerator of `{symbol.parent}`" if symbol.parent else "enumerator",
            MACRO_FUNCTION: "function-like macro", PROTOTYPE: "function"}.get(symbol.kind, symbol.kind)
    return f"`{symbol.name}` ({kind}, {symbol.file}): {_one_line(symbol)}"


def _symbols(index: WorkspaceIndex, files: Iterable[str]) -> Iterable[Symbol]:
    for rel in files:
        entry = index.files.get(rel)
        if entry is not None:
            yield from entry.symbols


def _closest(wrong: str, kinds: frozenset[str], symbols: Iterable[Symbol]) -> list[Symbol]:
    best: dict[str, tuple[float, Symbol]] = {}
    for symbol in symbols:
        if symbol.kind not in kinds or symbol.name == wrong:
            continue
        score = similarity(wrong, symbol.name)
        if score >= MIN_SCORE and score > best.get(symbol.name, (0.0, symbol))[0]:
            best[symbol.name] = (score, symbol)
    ranked = sorted(best.values(), key=lambda item: (-item[0], item[1].name))
    return [symbol for _, symbol in ranked[:MAX_CANDIDATES]]


def _member_hints(index: WorkspaceIndex, failure: str, visible: dict[str, int]) -> list[str]:
    lines: list[str] = []
    for m in _MEMBER.finditer(failure):
        owner, aka, member = m.group(1), m.group(2), m.group(3)
        names = {owner, aka} - {None}
        records = [s for s in _symbols(index, visible) if s.name in names and s.kind in (STRUCT, UNION, TYPEDEF)
                   and "{" in s.text]
        if not records:
            continue
        record = records[0]
        body = _COMMENT.sub(" ", record.text[record.text.index("{") + 1: record.text.rfind("}")])
        fields = [f for f in dict.fromkeys(_FIELD.findall(body)) if f != member]
        close = sorted(fields, key=lambda f: -similarity(member, f))
        shown = [f for f in close if similarity(member, f) >= MIN_SCORE][:MAX_CANDIDATES]
        lines.append(f"- `{record.name}` ({record.file}) has no member `{member}`"
                     + (f"; its closest members: {', '.join(f'`{f}`' for f in shown)}" if shown else "")
                     + f"; all of them: {', '.join(fields[:24])}" + (" ..." if len(fields) > 24 else ""))
    return lines


def name_hints(index: WorkspaceIndex, unit: str, failure: str) -> str:
    """A short text for the next attempt's prompt: for each name the failure says is unknown, the declared names
    (visible from `unit` through its includes, else anywhere in the workspace) that were probably meant; for a
    `const` the attempt changed, how to do without changing it. "" when the failure has neither."""
    visible = index.include_closure(unit)
    lines: list[str] = []
    for wrong, kinds in unknown_names(failure)[:MAX_NAMES]:
        close = _closest(wrong, kinds, _symbols(index, visible))
        where = ""
        if not close:  # the whole workspace: only names sharing a run of three letters are scored (a big tree)
            grams = _trigrams(wrong)
            elsewhere = (s for s in _symbols(index, [f for f in index.files if f not in visible])
                         if not grams or not grams.isdisjoint(_trigrams(s.name)))
            close = _closest(wrong, kinds, elsewhere)
            where = f" (declared in files {unit} does not include)"
        if close:
            lines.append(f"- `{wrong}` is not declared. Names this project declares{where} that may be meant:")
            lines += [f"  - {_describe(symbol)}" for symbol in close]
        else:
            lines.append(f"- `{wrong}` is not declared, and this project declares nothing like it: do without it.")
    lines += _member_hints(index, failure, visible)
    read_only = list(dict.fromkeys(_READ_ONLY.findall(failure)))
    text = "Names the compiler does not know (use only names the project declares):\n" + "\n".join(lines) \
        if lines else ""
    if read_only:
        names = ", ".join(f"`{name}`" for name in read_only[:MAX_NAMES])
        text += ("\n" if text else "") + (
            f"{names} cannot change (declared `const`): do not assign, increment or decrement it; read through it "
            "with an index (`p[i]`), or copy it into a local variable and change that.")
    return text
