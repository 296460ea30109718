"""The adapter map over the stage registry: coverage of the pipeline stages, tiers, signals, labels, and config
routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.pipeline.adapter_map import SIGNALS, label_for, outcome_failed, routes
from cra.pipeline.calllog import OutcomeRow
from cra.pipeline.config import STAGES, load_config
from cra.pipeline.stages import implement
from cra.pipeline.stages.registry import STAGE_SPECS, UnknownStageError, spec_for


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def test_map_covers_exactly_the_configured_stages() -> None:
    assert set(STAGE_SPECS) == set(STAGES)
    assert {s.code for s in STAGE_SPECS.values()} == {f"A{i}" for i in range(1, 13)}
    for spec in STAGE_SPECS.values():
        assert STAGES[spec.name].startswith(spec.code + " ")  # the config's description names the same code
        assert spec.signal in SIGNALS
        assert spec.parent is None or STAGE_SPECS[spec.parent].code == spec.code


def test_default_adapter_names_are_unique_and_match_the_stage_modules() -> None:
    names = [s.default_adapter for s in STAGE_SPECS.values()]
    assert len(set(names)) == len(names)
    assert spec_for("implement").default_adapter == implement.SPEC.default_adapter == "a6-implement"
    assert spec_for("scope_cochange").default_file == "a11-scope-cochange.gguf"


def test_tiers_agree_with_the_configs_default_roles() -> None:
    config = load_config(None, user=False)
    for spec in STAGE_SPECS.values():
        tier_role = config.tiers.tier0 if spec.tier == 0 else config.tiers.tier1
        assert config.stage(spec.name).role == tier_role, spec.name
        assert spec.is_decision == (spec.tier == 0)


def outcome(compiled: bool | None, tests: bool | None, edit: str | None) -> OutcomeRow:
    return OutcomeRow(task_id="t", action="implement", path=None, symbol=None, compiled=compiled,
                      tests_passed=tests, edit_status=edit, reason=None, at=0.0)


@pytest.mark.parametrize(("stage", "facts", "label"), [
    ("implement", (True, True, "applied"), "positive"),
    ("implement", (True, None, "proposed"), "positive"),  # no tests ran: compiling is the evidence
    ("implement", (True, False, "proposed"), "negative"),
    ("implement", (False, None, "failed"), "negative"),
    ("implement", (True, True, "rejected"), "negative"),
    ("implement", (None, None, "cancelled"), "unknown"),
    ("test_generation", (True, False, "proposed"), "positive"),  # tests that compile and catch a bug are good
    ("test_generation", (False, None, "failed"), "negative"),
    ("documentation", (None, None, "applied"), "positive"),
    ("documentation", (None, None, "proposed"), "unknown"),
    ("documentation", (None, None, "rejected"), "negative"),
    ("scope_dependency", (True, True, "applied"), "positive"),
    ("scope_dependency", (False, None, "failed"), "unknown"),  # the file's use is only known from an accepted edit
    ("precision_primary", (True, True, "rejected"), "negative"),
])
def test_labels_follow_the_stage_signal(stage: str, facts: tuple[bool | None, bool | None, str], label: str) -> None:
    assert label_for(stage, outcome(*facts)) == label


def test_downstream_failure() -> None:
    assert outcome_failed(outcome(False, None, "failed"))
    assert outcome_failed(outcome(True, False, "proposed"))
    assert outcome_failed(outcome(True, True, "rejected"))
    assert not outcome_failed(outcome(True, None, "proposed"))
    assert not outcome_failed(outcome(None, None, "cancelled"))


def test_unknown_stage() -> None:
    with pytest.raises(UnknownStageError, match="'implementation'"):
        spec_for("implementation")


def test_routes_follow_the_workspace_routing_table(tmp_path: Path) -> None:
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "impl.gguf").write_bytes(b"GGUF")
    (tmp_path / "cra.toml").write_text(
        '[adapters."qwen2.5-coder-1.5b"]\nimplement = "lora/impl.gguf"\ndocumentation = "lora/missing.gguf"\n'
        '[adapters."qwen2.5-coder-0.5b"]\nscope = "lora/scope.gguf"\n'
        '[stages.routing]\nadapter = "lora/impl.gguf"\n', encoding="utf-8")
    table = {r.stage: r for r in routes(load_config(tmp_path, user=False), tmp_path)}
    assert table["implement"].adapter == str((tmp_path / "lora" / "impl.gguf").resolve())
    assert table["implement"].exists is True and table["implement"].base_model == "qwen2.5-coder-1.5b"
    assert table["documentation"].exists is False
    assert table["scope"].exists is False and table["scope"].role == "router"
    assert table["routing"].exists is True  # a stage override wins over the table
    assert table["meta_plan"].adapter is None and table["meta_plan"].exists is None
