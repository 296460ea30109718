"""Which function is where, from a scan of the text with regular expressions: what a code action answers from
while the document's real parse (tree-sitter, `symbols.functions_in`) is not ready yet.

Right after the server starts, the C parser is still being imported when the editor asks for its first code
actions; waiting for it would cost the user 100 ms or more. This scan finds top-level function definitions and
prototypes the way a reader skimming the file would: comments, string literals and preprocessor lines blanked, then
braces matched at file scope, K&R definitions included (zlib's `int ZEXPORT compress2(dest, destLen, ...)` then
its parameter declarations). It knows no macros; a wrong guess lasts only until the parse lands (a fraction of a
second), and the action the user picks works from the real parse.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from .symbols import DEFINITION, PROTOTYPE, FunctionSite

# The longest text scanned on the event loop: 100,000 characters take up to ~18 ms (3-line functions back to back,
# busy 2-core machine; real code less), where 1 MB would hold the loop ~180 ms. A longer document waits for its parse.
SCAN_LIMIT_CHARS = 100_000

# Comments, string and character literals, and preprocessor lines (with their `\` continuations): blanked to spaces
# (newlines kept) so that line numbers and offsets stay exact.
_NOISE = re.compile(
    r"""//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?|^[ \t]*\#(?:\\\n|[^\n])*""",
    re.DOTALL | re.MULTILINE,
)
_BOUNDARY = re.compile(r"[{};]")
# A declarator at the end of a file-scope statement head: `name(` ... `)` then optional qualifiers/attributes.
_DECLARATOR = re.compile(r"\b([A-Za-z_]\w*)\s*\((?:[^()]|\([^()]*\))*\)\s*"
                         r"(?:\b[A-Za-z_]\w*\s*(?:\((?:[^()]|\([^()]*\))*\))?\s*)*\Z")
# A K&R definition's head up to its first parameter declaration: `name(a, b)` then that declaration's text.
_KR_HEAD = re.compile(r"\b([A-Za-z_]\w*)\s*\(\s*[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*\)\s*[^;(){}=]+\Z")
_KR_PARAMETER = re.compile(r"[^;(){}=]+\Z")  # a later parameter declaration: `uLong sourceLen`
_NOT_FUNCTIONS = re.compile(r"^\s*(?:typedef|struct|union|enum)\b[^(]*$|=")
_LINKAGE = re.compile(r'\s*extern\s*"[^"]*"\s*\Z')  # `extern "C" {`: its contents are at file scope
_KEYWORDS = frozenset({"if", "while", "for", "switch", "return", "sizeof", "do", "else"})
_NULLISH = frozenset({"", "0", "NULL", "nullptr", "false", "-1", "0.0", "0.0f", "0u", "'\\0'", "((void*)0)",
                      "((void *)0)", "(void*)0", "(void *)0"})
_STUB_STATEMENT = re.compile(
    r"return(?:\s+|\b)(?P<value>.*)|\(\s*void\s*\)\s*\w+|(?:abort|__builtin_unreachable|__builtin_trap)\s*\(\s*\)"
    r"|assert\s*\(\s*(?:0|false)\b.*\)", re.DOTALL)


def _blank(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith(("\"", "'")):  # keep the quotes: `return "";` is not an empty statement
        return text[0] + re.sub(r"[^\n]", " ", text[1:-1]) + text[-1] if len(text) > 1 else text
    return re.sub(r"[^\n]", " ", text)


def _is_stub(body: str) -> bool:
    """The parser's rule on the blanked body: no statement, or at most three placeholder ones."""
    if "{" in body:
        return False
    statements = [s.strip() for s in body.split(";")]
    if statements and statements[-1]:
        return False  # text after the last `;`: not plain statements
    statements = [s for s in statements if s]
    if len(statements) > 3:
        return False
    for statement in statements:
        match = _STUB_STATEMENT.fullmatch(statement)
        if match is None:
            return False
        value = match.group("value")
        if value is not None and "".join(value.split()) not in _NULLISH:
            return False
    return True


def scan_functions(text: str) -> list[FunctionSite]:
    """Top-level function definitions and prototypes of C source text, in file order (no docs)."""
    code = _NOISE.sub(_blank, text)
    newlines = [m.start() for m in re.finditer("\n", text)]
    sites: list[FunctionSite] = []
    depth = 0
    head_start = 0  # where the current file-scope statement began
    open_at = 0  # offset of the `{` that opened the current top-level block
    func_start = 0  # where the current top-level function's text begins
    is_function = False
    kr_start: int | None = None  # where a K&R definition's head began, while its parameter declarations run
    pending: FunctionSite | None = None  # a prototype that may yet turn out to be a K&R head
    for match in _BOUNDARY.finditer(code):
        char, at = match.group(0), match.start()
        if char == "{":
            if depth == 0 and _LINKAGE.match(code, head_start, at):
                head_start = at + 1
                continue
            if depth == 0:
                open_at = at
                head = code[head_start:at]
                declarator = _DECLARATOR.search(head)
                is_function = (declarator is not None and declarator.group(1) not in _KEYWORDS
                               and _NOT_FUNCTIONS.search(head) is None)
                func_start = head_start
                if not is_function and kr_start is not None and not head.strip():
                    is_function, func_start = True, kr_start  # the K&R definition's body
                elif pending is not None:
                    sites.append(pending)
                pending, kr_start = None, None
            depth += 1
        elif char == "}":
            if depth == 0:  # the end of an `extern "C"` block
                head_start = at + 1
                continue
            depth -= 1
            if depth == 0:
                if is_function:
                    sites.append(_site(text, code, newlines, func_start, open_at, at + 1, DEFINITION))
                    head_start = at + 1
                is_function = False
        elif depth == 0:  # `;` at file scope: the end of a declaration
            head = code[head_start:at]
            if kr_start is not None and _KR_PARAMETER.match(head):
                head_start = at + 1  # one more K&R parameter declaration
                continue
            if pending is not None:  # what looked like a K&R head was a prototype after all
                sites.append(pending)
            pending, kr_start = None, None
            declarator = _DECLARATOR.search(head)
            kr = _KR_HEAD.search(head)
            if kr is not None and kr.group(1) not in _KEYWORDS and _NOT_FUNCTIONS.search(head) is None:
                # `f(a, b) uLong a;`: a K&R head, unless no body follows (then `int f(size_t) NORETURN;`)
                kr_start = head_start
                if declarator is not None:
                    pending = _site(text, code, newlines, head_start, at, at + 1, PROTOTYPE)
            elif declarator is not None and declarator.group(1) not in _KEYWORDS and \
                    _NOT_FUNCTIONS.search(head) is None:
                sites.append(_site(text, code, newlines, head_start, at, at + 1, PROTOTYPE))
            head_start = at + 1
    if pending is not None:
        sites.append(pending)
    return sites


def _site(text: str, code: str, newlines: list[int], head_start: int, body_start: int, end: int,
          kind: str) -> FunctionSite:
    start = head_start + (len(code[head_start:body_start]) - len(code[head_start:body_start].lstrip()))
    head = " ".join(code[start:body_start].split())
    name = _DECLARATOR.search(code[start:body_start])
    if name is None:  # a K&R definition: the declarator ends where its first parameter declaration does
        first = code.find(";", start, body_start)
        name = _KR_HEAD.search(code[start:first]) if first >= 0 else None
    symbol = name.group(1) if name is not None else ""
    before_name = code[start : start + name.start()] if name is not None else ""
    return FunctionSite(
        name=symbol, kind=kind, start_line=bisect_right(newlines, start - 1), end_line=bisect_right(newlines, end - 2),
        is_stub=kind == DEFINITION and _is_stub(code[body_start + 1 : end - 1]), text=text[start:end],
        signature=head, is_static=re.search(r"\bstatic\b", before_name) is not None)
