"""Which context decisions the pipeline puts to the model: in `[decisions] mode = "auto"` only the stages with a
trained adapter (an untrained base answers worse than the rules), every one with "always", none with "never"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from cra.pipeline.config import load_config
from cra.pipeline.flows.common import context_judge
from cra.pipeline.stages import precision as a8
from cra.pipeline.stages import scope as a11

ROLES = ("router", "reasoning", "coding", "summarization", "validation")


def task_for(tmp_path: Path, mode: str, adapters: dict[str, str]) -> SimpleNamespace:
    model = str(tmp_path / "base.gguf")
    config = load_config(tmp_path, overrides={"models": {r: {"model": model} for r in ROLES},
                                              "decisions": {"mode": mode}, "adapters": {model: adapters}},
                         user=False)
    return SimpleNamespace(config=config, llm=object())


def test_auto_asks_the_model_only_for_stages_with_an_adapter(tmp_path: Path) -> None:
    judge = context_judge(task_for(tmp_path, "auto", {"scope_dependency": str(tmp_path / "a11.gguf")}))  # type: ignore[arg-type]
    assert judge is not None and judge.stages == frozenset({"scope_dependency"})  # type: ignore[attr-defined]
    assert context_judge(task_for(tmp_path, "auto", {})) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "expected"), [("always", {*a8.CASCADE, *a11.TIER_STAGES}), ("never", None)])
def test_always_and_never(tmp_path: Path, mode: str, expected: set[str] | None) -> None:
    judge = context_judge(task_for(tmp_path, mode, {"scope_dependency": str(tmp_path / "a11.gguf")}))  # type: ignore[arg-type]
    assert (None if judge is None else set(judge.stages)) == expected  # type: ignore[attr-defined]
