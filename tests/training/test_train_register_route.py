"""Registering a trained adapter edits the user config in place: comments and other settings survive, the base's
table is reused, an old route for the stage is replaced, and the result is a config that loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.pipeline.config import load_config
from cra.training.adapter_routes import RouteError, register_adapter


def test_routes_are_added_to_the_existing_table_and_replaced(tmp_path: Path) -> None:
    config = tmp_path / "cra.toml"
    config.write_text('# my settings\n[engine]\nadapter_layout = "as-is"  # keep\n\n'
                      '[adapters."qwen2.5-coder-0.5b"]\nrouting = "/old/routing.gguf"\nscope = "/old/scope.gguf"\n\n'
                      '[decisions]\n')
    register_adapter("qwen2.5-coder-0.5b", "scope", tmp_path / "new-scope.gguf", config_file=config)
    register_adapter("qwen2.5-coder-0.5b", "precision", tmp_path / "precision.gguf", config_file=config)
    register_adapter("/models/other.gguf", "scope", tmp_path / "other-scope.gguf", config_file=config)
    text = config.read_text()
    assert text.startswith('# my settings\n[engine]\nadapter_layout = "as-is"  # keep\n')
    assert text.count('[adapters."qwen2.5-coder-0.5b"]') == 1
    loaded = load_config(None, path=config, user=False)
    assert loaded.engine.adapter_layout == "as-is"
    assert loaded.adapters["qwen2.5-coder-0.5b"] == {
        "routing": "/old/routing.gguf", "scope": str(tmp_path / "new-scope.gguf"),
        "precision": str(tmp_path / "precision.gguf")}
    assert loaded.adapters["/models/other.gguf"] == {"scope": str(tmp_path / "other-scope.gguf")}
    before = config.read_text()
    register_adapter("/models/other.gguf", "scope", tmp_path / "other-scope.gguf", config_file=config)
    assert config.read_text() == before  # already registered: untouched


def test_a_new_user_config_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    written = register_adapter("qwen2.5-coder-0.5b", "routing", tmp_path / "r.gguf")
    assert written == tmp_path / "xdg" / "cra" / "cra.toml"
    assert load_config(tmp_path).adapters["qwen2.5-coder-0.5b"]["routing"] == str(tmp_path / "r.gguf")


def test_an_inline_table_or_broken_file_is_left_alone(tmp_path: Path) -> None:
    inline = tmp_path / "inline.toml"
    inline.write_text('adapters = { "qwen2.5-coder-0.5b" = { routing = "/r.gguf" } }\n')
    with pytest.raises(RouteError, match="add it by hand"):
        register_adapter("qwen2.5-coder-0.5b", "scope", tmp_path / "s.gguf", config_file=inline)
    assert inline.read_text() == 'adapters = { "qwen2.5-coder-0.5b" = { routing = "/r.gguf" } }\n'
    broken = tmp_path / "broken.toml"
    broken.write_text("[engine\n")
    with pytest.raises(RouteError, match="invalid TOML"):
        register_adapter("m", "scope", tmp_path / "s.gguf", config_file=broken)
    with pytest.raises(RouteError, match="unknown stage"):
        register_adapter("m", "nope", tmp_path / "s.gguf", config_file=broken)
