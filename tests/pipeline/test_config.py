"""cra.toml: layering, validation errors that name file, key and line, relative paths, routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.pipeline.config import ROLES, ConfigError, load_config


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(root: Path, text: str) -> Path:
    path = root / "cra.toml"
    path.write_text(text)
    return path


def test_defaults_cover_every_role_and_share_the_generalist(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert set(ROLES) <= set(config.models)
    assert config.models["coding"].model == config.models["reasoning"].model
    assert config.stage("implement").role == "coding"
    assert config.stage("scope_dependency").role == "router"
    assert config.sources == ["built-in defaults"]


def test_workspace_overrides_user_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "xdg" / "cra"
    user.mkdir(parents=True)
    (user / "cra.toml").write_text('[models.coding]\ncontext_length = 8192\n[stages.implement]\nmax_tokens = 99\n')
    ws = tmp_path / "ws"
    ws.mkdir()
    write(ws, "[stages.implement]\nmax_tokens = 300\n")
    config = load_config(ws)
    assert config.models["coding"].context_length == 8192  # from the user layer
    assert config.models["coding"].model == "qwen2.5-coder-1.5b"  # default kept
    assert config.stage("implement").max_tokens == 300  # workspace wins
    assert len(config.sources) == 3


def test_unknown_key_names_file_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[models.coding]\nmodel = "x.gguf"\ncontext_lenght = 10\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "context_lenght" in message


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    write(tmp_path, '[validation]\ncompiler = "gcc"\nmax_rounds = "three"\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert "validation.max_rounds" in str(err.value) and "line 3" in str(err.value)


def test_adapter_layout_accepts_only_its_two_values(tmp_path: Path) -> None:
    write(tmp_path, '[engine]\nadapter_layout = "as-is"\n')
    assert load_config(tmp_path).engine.adapter_layout == "as-is"
    write(tmp_path, '[engine]\nadapter_layout = "q4"\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert "engine.adapter_layout" in str(err.value) and "line 2" in str(err.value)
    assert load_config(tmp_path / "elsewhere").engine.adapter_layout == "cpu"


def test_unknown_role_and_stage_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, '[models.painter]\nmodel = "a.gguf"\n')
    with pytest.raises(ConfigError, match="unknown role 'painter'.*|line 1"):
        load_config(tmp_path)
    write(tmp_path, '[stages.dance]\nmax_tokens = 3\n')
    with pytest.raises(ConfigError, match="unknown stage 'dance'"):
        load_config(tmp_path)


def test_invalid_toml_and_non_utf8(tmp_path: Path) -> None:
    write(tmp_path, "[models.coding\nmodel = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path)
    (tmp_path / "cra.toml").write_bytes(b"[tiers]\ntier0 = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path)


def test_adapter_routing_table_is_config_only(tmp_path: Path) -> None:
    write(tmp_path, '[models.coding]\nmodel = "base.gguf"\n[models.reasoning]\nmodel = "base.gguf"\n'
                    '[adapters."base.gguf"]\nimplement = "a6.gguf"\n')
    config = load_config(tmp_path)
    assert config.adapter_for("implement") == str((tmp_path / "a6.gguf").resolve())
    assert config.adapter_for("documentation") is None
    assert config.models["coding"].model == str((tmp_path / "base.gguf").resolve())


def test_editor_overrides_are_validated(tmp_path: Path) -> None:
    config = load_config(tmp_path, overrides={"stages": {"implement": {"temperature": 0.5}}})
    assert config.stage("implement").temperature == 0.5
    with pytest.raises(ConfigError, match="editor settings"):
        load_config(tmp_path, overrides={"stages": {"implement": {"temprature": 0.5}}})


def test_explicit_missing_config_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path, path=tmp_path / "nope.toml")


def test_decision_mode_gates_model_decisions(tmp_path: Path) -> None:
    assert load_config(tmp_path).decisions.use_model(has_adapter=True)
    assert not load_config(tmp_path).decisions.use_model(has_adapter=False)
    write(tmp_path, '[decisions]\nmode = "always"\n')
    assert load_config(tmp_path).decisions.use_model(has_adapter=False)
    write(tmp_path, '[decisions]\nmode = "never"\n')
    assert not load_config(tmp_path).decisions.use_model(has_adapter=True)
    write(tmp_path, '[decisions]\nmode = "sometimes"\n')
    with pytest.raises(ConfigError, match="decisions.mode"):
        load_config(tmp_path)
