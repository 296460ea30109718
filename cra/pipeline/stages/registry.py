"""The stage registry: every pipeline stage (A1–A12) and context sub-decision, collected from the stage modules.

Each stage module declares one `StageSpec` (`SPEC`); sub-decisions are part of their stage's spec. Everything
else that lists stages reads this registry: `pipeline.config` (stage names in cra.toml, default roles by tier),
`pipeline.adapter_map` (training signals, adapter routes), `cra adapters list`, `cra curate-data`, `cra audit`
and the A12 routing questions. Importing it is cheap (see `stages.spec`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import ModuleType

from cra.pipeline.stages import (
    adjustment,
    documentation,
    implement,
    meta_plan,
    part_plan,
    precision,
    refilter,
    routing,
    scaffold,
    scope,
    task_analysis,
    test_generation,
)
from cra.pipeline.stages.spec import StageSpec

# In code order, A1–A12.
STAGE_MODULES: tuple[ModuleType, ...] = (meta_plan, part_plan, scaffold, adjustment, task_analysis, implement,
                                         test_generation, precision, documentation, refilter, scope, routing)


class UnknownStageError(ValueError):
    """A stage name that is not in the registry."""


def _with_subdecisions(specs: Iterable[StageSpec]) -> Iterator[StageSpec]:
    for spec in specs:
        yield spec
        yield from _with_subdecisions(spec.subdecisions)


def _collect() -> dict[str, StageSpec]:
    out: dict[str, StageSpec] = {}
    for spec in _with_subdecisions(m.SPEC for m in STAGE_MODULES):
        if spec.name in out:
            raise ValueError(f"stage {spec.name!r} is declared twice")
        out[spec.name] = spec
    return out


# Every stage by name: each stage of the pipeline, followed by its sub-decisions.
STAGE_SPECS: dict[str, StageSpec] = _collect()


def spec_for(stage: str) -> StageSpec:
    try:
        return STAGE_SPECS[stage]
    except KeyError:
        raise UnknownStageError(f"unknown pipeline stage {stage!r} (stages: {', '.join(STAGE_SPECS)})") from None
