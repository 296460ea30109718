"""Bounded field types for stage outputs.

Every string and list in a stage's output Struct has a maximum length. The engine turns the Struct into a JSON
grammar, so the bounds become part of the grammar: a model cannot ramble inside a string, the output always ends
within a known token budget, and msgspec checks the same bounds again on decoding.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# A C identifier (function, parameter, field, test name). The pattern (with its length bound: the grammar takes the
# pattern, not maxLength, when both are given) is enforced by the grammar and checked again by msgspec.
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=48, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")]
# A C type as written in a declaration: `int`, `const char *`, `struct point *`.
CType = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z_][A-Za-z0-9_ *]{0,39}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=48)]
Line = Annotated[str, msgspec.Meta(max_length=160)]
Keyword = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
RelPath = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
Code = Annotated[str, msgspec.Meta(max_length=600)]

