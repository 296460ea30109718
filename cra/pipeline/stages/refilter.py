"""A10 refilter: when the candidate files do not fit the token budget, keep the subset that matters most.

Deterministic first (MoMA stage 1): when everything fits, everything is kept and no model is asked. Otherwise the
model picks files by number (grammar-constrained JSON); `apply` drops unknown numbers and duplicates, and keeps
files in their original order while the budget allows. The target's own file is always kept.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from cra.pipeline.engine import Message
from cra.pipeline.stages.prompt import stage_messages

STAGE = "refilter"
CODE = "A10"
DEFAULT_ADAPTER = "a10-refilter"
MODE = "structured"

SYSTEM = (
    "The files below do not all fit the context budget. Choose, by number, the files the task needs most "
    "(at most 12), most important first. Answer with JSON only."
)

# Plain int: the grammar cannot bound integers, so `apply` drops numbers that name no file.
FileNumber = int


class Refilter(msgspec.Struct):
    keep: Annotated[list[FileNumber], msgspec.Meta(min_length=1, max_length=12)]


OUTPUT = Refilter


class FileEntry(msgspec.Struct, frozen=True):
    path: str
    tokens: int


def fits(files: list[FileEntry], budget: int) -> bool:
    return sum(f.tokens for f in files) <= budget


def build_messages(*, task: str, files: list[FileEntry], budget: int) -> list[Message]:
    listing = "\n".join(f"{i}. {f.path} ({f.tokens} tokens)" for i, f in enumerate(files))
    return stage_messages(SYSTEM, listing, f"Task: {task.strip()}\nBudget: {budget} tokens")


def apply(choice: Refilter, files: list[FileEntry], budget: int, *, required: str | None = None) -> list[FileEntry]:
    """The files chosen by number, most important first, cut to the budget; `required` always stays."""
    order: list[int] = []
    for number in ([next((i for i, f in enumerate(files) if f.path == required), -1)] + list(choice.keep)):
        if 0 <= number < len(files) and number not in order:
            order.append(number)
    kept: list[int] = []
    used = 0
    for number in order:
        tokens = files[number].tokens
        if used + tokens <= budget or files[number].path == required:
            kept.append(number)
            used += tokens
    return [files[i] for i in sorted(kept)]
