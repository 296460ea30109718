"""The engine-backed judge: real llama.cpp engine, tiny generated GGUF model, per-stage LoRA adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.pipeline.context import WorkspaceIndex, engine_judge
from cra.pipeline.context.assemble import assemble
from cra.pipeline.context.judge import JudgeError, ask
from cra.pipeline.engine import LocalEngine
from cra.pipeline.engine.types import AdapterSpec, ModelSpec


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    return LocalEngine()


def test_engine_judge_answers_every_question(engine: LocalEngine, tiny_model_path: Path, tiny_adapter_path: Path) -> None:
    model = ModelSpec(name="tiny", path=str(tiny_model_path), n_ctx=1024)
    adapter = AdapterSpec(name="scope", path=str(tiny_adapter_path))
    stages: list[str] = []

    def adapters_for(stage: str) -> tuple[AdapterSpec, ...]:
        stages.append(stage)
        return (adapter,) if stage.startswith("scope_") else ()

    judge = engine_judge(engine, model, adapters_for)
    questions = ["Is `a.h` relevant?", "Is `b.h` relevant?", "Is `c.h` relevant?"]
    answers = judge("scope_dependency", "Task: implement f.", questions)
    assert len(answers) == 3
    assert all(isinstance(yes, bool) and 0.0 <= prob <= 1.0 for yes, prob in answers)
    # Batched decisions equal the one-by-one decisions (same prefix, same adapter).
    single = [judge("scope_dependency", "Task: implement f.", [q])[0] for q in questions]
    assert [yes for yes, _ in single] == [yes for yes, _ in answers]
    assert [p for _, p in single] == pytest.approx([p for _, p in answers], abs=1e-3)
    assert stages[0] == "scope_dependency"
    # A mapping works as well as a callable; a stage missing from it runs on the base model.
    base = engine_judge(engine, model, {"scope_metadata": (adapter,)})
    assert len(base("precision_relevant", "Task: implement f.", questions[:2])) == 2


def test_ask_rejects_a_judge_that_skips_questions() -> None:
    with pytest.raises(JudgeError, match="answered 1 of 2"):
        ask(lambda stage, prefix, questions: [(True, 0.9)], "scope_metadata", "p", ["a", "b"])


def test_assemble_with_the_engine_judge(engine: LocalEngine, tiny_model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text(
        "int helper_one(int x) { return x + 1; }\nint helper_two(int x) { return x + 2; }\n"
        "int target(int x) { return 0; }\nint other(int y) { return y; }\n"
    )
    index = WorkspaceIndex.build(str(tmp_path), use_cache=False)
    judge = engine_judge(engine, ModelSpec(name="tiny", path=str(tiny_model_path), n_ctx=1024), {})
    pack = assemble(index, "a.c", "target", budget=300, judge=judge, task_text="implement target")
    assert pack.items[[i.name for i in pack.items].index("target")].precision == "primary"
    assert pack.tokens <= 300
    assert all(i.precision in ("primary", "supporting", "type_context") for i in pack.items)
