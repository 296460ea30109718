"""scheduler_from_config: roles → per-model policies, the tier-0 model pinned, the budget from the config."""

from __future__ import annotations

import pytest

from cra.pipeline.config import Config, EngineConfig, ModelConfig, TiersConfig
from cra.pipeline.engine import LocalEngine, ModelSpec
from cra.pipeline.engine.pool import model_key
from cra.pipeline.engine.scheduler import scheduler_from_config
from cra.pipeline.router import ModelRouter


def test_roles_sharing_a_model_share_its_policy_and_the_router_is_pinned(
    engine: LocalEngine, three_models: tuple[ModelSpec, ModelSpec, ModelSpec]
) -> None:
    router_model, coder_model, _ = three_models
    config = Config(
        models={
            "router": ModelConfig(model=router_model.path, context_length=512, default_timeout=20.0),
            "coding": ModelConfig(model=coder_model.path, context_length=512, default_timeout=300.0),
            "validation": ModelConfig(model=coder_model.path, context_length=512, default_timeout=600.0),
        },
        tiers=TiersConfig(tier0="router", tier1="coding"),
        engine=EngineConfig(memory_budget_mb=64),
    )
    sched = scheduler_from_config(config, ModelRouter(config), engine)
    assert sched.pool is not None and sched.pool.budget_bytes == 64 << 20
    router_spec, _ = ModelRouter(config).model_for_role("router")
    coder_spec, _ = ModelRouter(config).model_for_role("coding")
    assert engine.loaded_models() == [model_key(router_spec)], "the tier-0 model is loaded and pinned at start"
    assert sched.pool.is_pinned(router_spec) and not sched.pool.is_pinned(coder_spec)
    assert sched.policy_for(router_spec).default_timeout == 20.0
    assert sched.policy_for(coder_spec).default_timeout == 600.0  # the longest of the roles sharing the model


def test_concurrency_above_one_for_an_in_process_model_is_rejected(
    engine: LocalEngine, three_models: tuple[ModelSpec, ModelSpec, ModelSpec]
) -> None:
    config = Config(
        models={"router": ModelConfig(model=three_models[0].path, context_length=512, max_concurrency=2)},
        tiers=TiersConfig(tier0="router", tier1="router"),
    )
    with pytest.raises(ValueError, match="max_concurrency .* is 2"):
        scheduler_from_config(config, ModelRouter(config), engine)


@pytest.mark.parametrize("layout", ["cpu", "as-is"])
def test_the_engine_follows_the_configured_adapter_layout(layout: str) -> None:
    from cra.pipeline.runtime import make_engine

    engine = make_engine(Config(engine=EngineConfig(adapter_layout=layout)))  # type: ignore[arg-type]
    try:
        assert isinstance(engine, LocalEngine) and engine.adapter_layout == layout
    finally:
        engine.close()
