"""A5 task analysis: raw task + file tree → structured task query (type, seed symbols, keywords, intent).

When there is no free-text task (the user asked for a plan of a file or function) the query is derived
deterministically (`derive`), so no model call is needed; `merge` keeps the request's own target first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from cra.pipeline.stages.doxygen import words_of
from cra.pipeline.stages.fields import Identifier, Keyword, Line
from cra.pipeline.stages.prompt import stage_messages
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "Analyse the task. Give its type, up to 6 seed symbols (existing C functions or types the work starts from), "
    "up to 8 search keywords, and the intent in one sentence. Answer with JSON only."
)

TaskType = Literal["implement", "fix", "refactor", "test", "document", "feature"]


class TaskQuery(msgspec.Struct):
    type: TaskType
    seeds: Annotated[list[Identifier], msgspec.Meta(max_length=6)]
    keywords: Annotated[list[Keyword], msgspec.Meta(max_length=8)]
    intent: Line


MAX_TREE_FILES = 60


def build_messages(*, context: str, task: str, files: list[str]) -> list[Message]:
    tree = "\n".join(files[:MAX_TREE_FILES])
    more = f"\n(+{len(files) - MAX_TREE_FILES} more files)" if len(files) > MAX_TREE_FILES else ""
    request = f"Repository files:\n{tree}{more}\n\nTask: {task.strip()}"
    return stage_messages(SYSTEM, context, request)


SPEC = StageSpec(
    name="task_analysis", code="A5", mode="structured",
    description="task analysis: type, seed symbols, keywords, intent", input="raw task + repository file tree",
    output="task type, seed symbols, keywords, intent", output_type=TaskQuery, prompt=build_messages,
    signal="symbol_used", question="did retrieval find the files the accepted edit needed?")


def derive(*, path: str, symbol: str | None, stubs: list[str]) -> TaskQuery:
    """The query for a request with no free-text task: complete the named function, or the file's stubs."""
    seeds = [symbol] if symbol else stubs[:6]
    words: list[str] = []
    for name in [*seeds, path.rsplit("/", 1)[-1].rsplit(".", 1)[0]]:
        words += [w for w in words_of(name) if len(w) > 2 and w not in words]
    intent = f"Complete `{symbol}` in {path}" if symbol else \
        f"Implement the unfinished functions of {path}" if stubs else f"Extend {path}"
    return TaskQuery(type="implement", seeds=seeds, keywords=words[:8], intent=intent)


def merge(query: TaskQuery, *, symbol: str | None) -> TaskQuery:
    """The request's own target is always the first seed, whatever the model proposed."""
    if symbol is None:
        return query
    seeds = [symbol] + [s for s in query.seeds if s != symbol]
    return msgspec.structs.replace(query, seeds=seeds[:6])


def describe(query: TaskQuery) -> str:
    return (f"type={query.type}; seeds={', '.join(query.seeds) or '-'}; "
            f"keywords={', '.join(query.keywords) or '-'}; intent={query.intent}")
