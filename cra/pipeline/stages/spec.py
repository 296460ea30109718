"""The stage contract: one `StageSpec` per pipeline stage (A1–A12), and one per context sub-decision.

Each stage module declares its own `SPEC`; `stages.registry` collects them. The config's stage names and the
tier defaults (`pipeline.config`), the adapter map and the training signals (`pipeline.adapter_map`) all read the
registry, so a stage's mode, tier, code and adapter name are written down once.

The stage modules import nothing heavy at module level (no llama.cpp, no tree-sitter): `pipeline.config` imports
the registry. What a stage needs from the engine or the context package it imports when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

# How the stage calls the model: `StageLLM.generate` (free text, e.g. a function body), `StageLLM.structured`
# (grammar-constrained JSON decoded into `output_type`), or `StageLLM.decide` / `decide_batch` (one of `labels`).
Mode = Literal["generate", "structured", "decision"]
MODES: tuple[Mode, ...] = ("generate", "structured", "decision")


class StageSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # the pipeline stage: `[stages.<name>]` in cra.toml, the call log's `stage`
    code: str  # A1..A12; a sub-decision shares its parent's code
    mode: Mode
    description: str  # one line after the code ("implement: one function body"); config errors, A12 questions
    input: str  # what the model sees (the adapter map)
    output: str  # what it answers
    signal: str  # the training signal labelling its logged calls (a key of `pipeline.adapter_map.SIGNALS`)
    question: str  # the signal as a question, for people reading the map
    output_type: type[msgspec.Struct] | None = None  # structured stages: the Struct the answer decodes into
    labels: tuple[str, ...] = ()  # decision stages: the answers, the positive one first
    prompt: Callable[..., Any] | None = None  # the message builder (for a decision stage: the shared prefix)
    parent: str | None = None  # the coarse stage a sub-decision refines
    subdecisions: tuple[StageSpec, ...] = ()  # the finer decisions asked under this stage's name, in order

    @property
    def tier(self) -> int:
        """0: the small tier-0 model that takes binary decisions; 1: the generalist. The default role of the
        stage follows it (`[tiers]` in cra.toml); a stage's own `role` overrides it."""
        return 0 if self.mode == "decision" else 1

    @property
    def is_decision(self) -> bool:
        return self.mode == "decision"

    @property
    def title(self) -> str:
        """"A6 implement: one function body"."""
        return f"{self.code} {self.description}"

    @property
    def default_adapter(self) -> str:
        """"a6-implement", "a11-scope-dependency": the code keeps files sortable, the name keeps them readable."""
        return f"{self.code.lower()}-{self.name.replace('_', '-')}"

    @property
    def default_file(self) -> str:
        return f"{self.default_adapter}.gguf"
