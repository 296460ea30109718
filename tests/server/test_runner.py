"""The server's runtime bookkeeping: one Workspace per root, config reload on cra.toml change, the persistent
symbol index fed from editor buffers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cra.pipeline.config import ConfigError
from cra.server.runner import PipelineRunner
from cra.server.settings import ServerSettings

pytestmark = pytest.mark.timeout(30)


def test_config_is_reloaded_when_cra_toml_changes_and_kept_when_broken(tmp_path: Path):
    runner = PipelineRunner()
    settings = ServerSettings()
    first = runner.workspace(str(tmp_path), settings)
    assert first.config.context.budget_tokens == 1200
    config = tmp_path / "cra.toml"
    config.write_text("[context]\nbudget_tokens = 900\n")
    assert runner.workspace(str(tmp_path), settings) is first  # one Workspace per root, kept
    assert first.config.context.budget_tokens == 900
    config.write_text("[context\n")
    os.utime(config, ns=(1, 1))  # a different mtime even on coarse clocks
    with pytest.raises(ConfigError, match="invalid TOML"):
        runner.workspace(str(tmp_path), settings)
    assert first.config.context.budget_tokens == 900  # the old config stays in use
    override = ServerSettings(config={"context": {"budget_tokens": 700}})
    config.write_text("")
    assert runner.workspace(str(tmp_path), override).config.context.budget_tokens == 700


def test_watched_config_is_reloaded_only_when_notified(tmp_path: Path):
    runner = PipelineRunner()
    runner.watching_config = True
    settings = ServerSettings()
    workspace = runner.workspace(str(tmp_path), settings)
    (tmp_path / "cra.toml").write_text("[context]\nbudget_tokens = 800\n")
    assert runner.workspace(str(tmp_path), settings).config.context.budget_tokens == 1200  # no stat
    assert runner.config_changed(str(tmp_path / "cra.toml")) == [os.path.realpath(tmp_path)]
    assert runner.workspace(str(tmp_path), settings).config.context.budget_tokens == 800
    assert workspace.config.context.budget_tokens == 800


def test_index_survives_and_follows_buffers(tmp_path: Path):
    (tmp_path / "a.c").write_text("int one(void) { return 1; }\n")
    runner = PipelineRunner()
    settings = ServerSettings()
    runner.build_index(str(tmp_path), settings)
    index = runner.workspace(str(tmp_path), settings).index
    assert index is not None and index.function(str(tmp_path / "a.c"), "one") is not None
    updated = runner.note_text(str(tmp_path), str(tmp_path / "a.c"), "int one(void) { return 1; }\nint two(void);\n")
    assert updated is not None and [s.name for s in updated.symbols] == ["one", "two"]
    assert runner.workspace(str(tmp_path), settings).index is index
    assert [s.name for s in index.definitions("two")] == ["two"]
    # Busy index (an action holds it): the text waits and lands with the next flush.
    workspace = runner.workspace(str(tmp_path), settings)
    with workspace._lock:
        assert runner.note_text(str(tmp_path), str(tmp_path / "a.c"), "int three(void);\n") is None
    runner.build_index(str(tmp_path), settings)
    assert index.definitions("three") and not index.definitions("two")
