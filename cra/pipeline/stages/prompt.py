"""Message layout shared by the stages: stable parts first, so calls of one task share a token prefix.

Every stage renders [shared preamble (system), project context (user), stage instruction + request (user)]. Two
stages of a task that see the same context on the same model and adapter differ only in the last message, so the
engine's prefix KV reuse skips re-reading the context (the expensive part on CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

PREAMBLE = (
    "You are cra, an offline assistant for C projects. The project context comes first; the task and the exact "
    "answer format come last. Follow the task's instructions exactly."
)


def message(role: str, content: str) -> Message:
    """An engine `Message`. The engine package (and llama.cpp with it) is imported with the first prompt built,
    not with the stage modules: `pipeline.config` reads the stage registry (see `stages.spec`)."""
    from cra.pipeline.engine import Message

    return Message(role=role, content=content)


def context_message(context: str) -> Message:
    body = context.strip() or "(no project context)"
    return message("user", f"Project context:\n```c\n{body}\n```")


def stage_messages(system: str, context: str, request: str) -> list[Message]:
    return [message("system", PREAMBLE), context_message(context), message("user", f"{system}\n\n{request.strip()}")]


def with_failure(request: str, failure: str | None) -> str:
    """Append the previous attempt's condensed failure so the retry can avoid it."""
    if not failure:
        return request
    return f"{request}\n\nThe previous attempt failed:\n{failure.strip()}\nAvoid that problem in this attempt."
