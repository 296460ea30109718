"""Render chat messages into a prompt with the model's own chat template (from its GGUF metadata)."""

from __future__ import annotations

from collections.abc import Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from .errors import InvalidRequestError
from .types import Message

# Used when a GGUF carries no template: ChatML is what the default (Qwen) models use.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

ROLES = frozenset({"system", "user", "assistant"})


class ChatRenderer:
    """Turns messages into prompt text ending with the assistant generation prompt.

    Callers order messages stable-part-first (system prompt, then context, then the varying question), so renders
    of related calls share a long token prefix and the engine can reuse its KV cache.
    """

    def __init__(self, template: str | None, bos_token: str, eos_token: str) -> None:
        self.template = template or CHATML_TEMPLATE
        self.bos_token = bos_token
        self._formatter = Jinja2ChatFormatter(
            template=self.template, eos_token=eos_token, bos_token=bos_token, add_generation_prompt=True
        )

    def render(self, messages: Sequence[Message]) -> str:
        if not messages:
            raise InvalidRequestError("a chat call needs at least one message")
        for message in messages:
            if message.role not in ROLES:
                raise InvalidRequestError(
                    f"unknown message role {message.role!r}; use one of {', '.join(sorted(ROLES))}"
                )
        # A final assistant message is an answer already begun: the model continues it (e.g. a function's
        # signature and opening brace), so its output is code by construction, not prose to be parsed.
        prefill = ""
        if messages[-1].role == "assistant":
            prefill = messages[-1].content
            messages = messages[:-1]
            if not messages:
                raise InvalidRequestError("an answer prefix needs at least one message before it")
        try:
            response = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])  # type: ignore[misc]
        except Exception as exc:  # the template itself may raise (e.g. it rejects a role order)
            raise InvalidRequestError(f"the model's chat template rejected the messages: {exc}") from exc
        return response.prompt + prefill
