"""Blanking a function for the `repos` suite: its body replaced by a stub that returns a zero value.

`blank` is the benchmark's convention (`cra.bench.quality_tasks.blank_function`: `{ return 0; }`, `{ }` for void).
`blank_quiet` also casts every parameter to void, so the stub builds where the library compiles with
`-Werror -Wunused-parameter`: the verifier uses it to tell "the tests catch it" from "only the warning flags do".
"""

from __future__ import annotations

import re

from cra.bench.quality_tasks import blank_function, find_function, stub_body

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_NAMES = frozenset("void const volatile restrict register struct union enum unsigned signed int char short long "
                       "float double _Bool bool".split())


def blank_for(stub: str, text: str, name: str, *, path: str = "unit.c") -> str:
    """`text` with `name` blanked in a library's stub style (`RepoLibrary.stub`: "plain" or "quiet")."""
    if stub not in ("plain", "quiet"):
        raise ValueError(f"unknown stub style {stub!r}")
    return (blank_quiet if stub == "quiet" else blank)(text, name, path=path)


def blank(text: str, name: str, *, path: str = "unit.c") -> str:
    return blank_function(text, name, path=path)


def blank_quiet(text: str, name: str, *, path: str = "unit.c") -> str:
    source = text.encode("utf-8", errors="surrogateescape")
    symbol = find_function(text, name, path=path)
    head = source[symbol.start_byte:symbol.body_start_byte].decode("utf-8", errors="surrogateescape")
    voids = "".join(f"    (void){p};\n" for p in parameter_names(head, symbol.name))
    stub = stub_body(symbol, source)  # "{\n}" or "{\n    return 0;\n}"
    body = "{\n" + voids + stub[2:]
    blanked = source[:symbol.body_start_byte] + body.encode() + source[symbol.body_end_byte:]
    return blanked.decode("utf-8", errors="surrogateescape")


def parameter_names(head: str, name: str) -> list[str]:
    """Names of the parameters in a function head (`int f(const char *s, size_t n)` -> ["s", "n"])."""
    at = head.find(name)
    open_at = head.find("(", at + len(name) if at >= 0 else 0)
    if open_at < 0:
        return []
    depth, params, current = 0, [], ""
    for ch in head[open_at + 1:]:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                params.append(current)
                break
            depth -= 1
        if ch == "," and depth == 0:
            params.append(current)
            current = ""
        else:
            current += ch
    names = []
    for param in params:
        param = param.strip()
        if not param or param in ("void", "..."):
            continue
        pointer = re.search(r"\(\s*\*+\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", param)  # int (*cb)(int)
        if pointer:
            names.append(pointer.group(1))
            continue
        idents = [w for w in _IDENT.findall(re.sub(r"\[[^\]]*\]", "", param)) if w not in _NOT_NAMES]
        if idents and len(_IDENT.findall(param)) > 1:  # a lone type (K&R-less prototype) has no name
            names.append(idents[-1])
    return names
