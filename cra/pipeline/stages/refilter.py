"""A10 refilter: when the candidate files do not fit the token budget, keep the subset that matters most.

Deterministic first (MoMA stage 1): when everything fits, everything is kept and no model is asked. Otherwise the
model picks files by number (grammar-constrained JSON); `apply` drops unknown numbers and duplicates, and keeps
files in their original order while the budget allows. The target's own file is always kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec

from cra.pipeline.stages.prompt import stage_messages
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "The files below do not all fit the context budget. Choose, by number, the files the task needs most "
    "(at most 12), most important first. Answer with JSON only."
)

# Plain int: the grammar cannot bound integers, so `apply` drops numbers that name no file.
FileNumber = int


class Refilter(msgspec.Struct):
    keep: Annotated[list[FileNumber], msgspec.Meta(min_length=1, max_length=12)]


class FileEntry(msgspec.Struct, frozen=True):
    path: str
    tokens: int


def fits(files: list[FileEntry], budget: int) -> bool:
    return sum(f.tokens for f in files) <= budget


def build_messages(*, task: str, files: list[FileEntry], budget: int) -> list[Message]:
    listing = "\n".join(f"{i}. {f.path} ({f.tokens} tokens)" for i, f in enumerate(files))
    return stage_messages(SYSTEM, listing, f"Task: {task.strip()}\nBudget: {budget} tokens")


SPEC = StageSpec(
    name="refilter", code="A10", mode="structured", description="refilter: keep the files that fit the budget",
    input="file list with sizes + budget", output="the files to keep", output_type=Refilter,
    prompt=build_messages, signal="compiled_and_tests_passed",
    question="did the action succeed with the kept files?")


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
