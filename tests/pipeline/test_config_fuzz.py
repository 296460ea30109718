"""Fuzzing the config loader: any cra.toml (random TOML over the real schema's keys, random bytes) and any editor
overrides give a Config or a ConfigError naming the file — never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cra.pipeline.config import CONFIG_FILENAME, ROLES, Config, ConfigError, load_config

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

SECTIONS = ("models", "stages", "tiers", "limits", "validation", "context", "adapters", "engine", "sandbox")
KEYS = (*SECTIONS, *ROLES, "model", "quantization", "context_length", "max_concurrency", "default_timeout",
        "n_gpu_layers", "role", "adapter", "max_tokens", "temperature", "stop", "tier0", "tier1", "implement",
        "document", "cpu_seconds", "wall_seconds", "memory_mb", "test_command", "max_rounds", "flags", "compiler")

keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
scalars = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True),
                    st.booleans(), st.text(max_size=30),
                    st.sampled_from(["x.gguf", "../x.gguf", "a\x00b.gguf", "hf:a/b", "", "/dev/null"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
layers = st.dictionaries(keys, values, max_size=6)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(layer: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}\n" for k, v in layer.items())


def load_from(content: bytes) -> Config | ConfigError:
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / CONFIG_FILENAME).write_bytes(content)
        try:
            return load_config(root, user=False)
        except ConfigError as exc:
            assert CONFIG_FILENAME in str(exc), f"the error does not name the file: {exc}"
            return exc


@FUZZ
@given(layers)
def test_random_toml_is_loaded_or_refused_with_a_config_error(layer: dict[str, Any]):
    result = load_from(toml_text(layer).encode())
    assert isinstance(result, (Config, ConfigError))


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_are_loaded_or_refused_with_a_config_error(content: bytes):
    assert isinstance(load_from(content), (Config, ConfigError))


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTIONS), values, max_size=3))
def test_random_editor_overrides_are_used_or_refused_with_a_config_error(overrides: dict[str, Any]):
    with tempfile.TemporaryDirectory() as root:
        try:
            load_config(root, overrides=overrides, user=False)
        except ConfigError as exc:
            assert "editor settings" in str(exc) or "built-in defaults" in str(exc), str(exc)


paths = st.one_of(st.text(max_size=20), st.sampled_from(["x.gguf", "a\x00b.gguf", "../../m.gguf", "hf:r/f.gguf"]))
schema_layers = st.fixed_dictionaries({}, optional={
    "models": st.dictionaries(st.sampled_from([*ROLES, "oracle"]), st.fixed_dictionaries({}, optional={
        "model": paths, "context_length": scalars, "n_gpu_layers": scalars}), max_size=3),
    "stages": st.dictionaries(st.sampled_from(["implement", "document", "nope"]), st.fixed_dictionaries({}, optional={
        "adapter": paths, "role": st.sampled_from([*ROLES, "x"]), "stop": st.lists(st.text(max_size=5))}),
        max_size=2),
    "adapters": st.dictionaries(paths, st.dictionaries(st.sampled_from(["implement", "x"]), paths, max_size=2),
                                max_size=2),
    "tiers": st.dictionaries(st.sampled_from(["tier0", "tier1"]), st.sampled_from([*ROLES, "x", ""])),
})


@FUZZ
@given(schema_layers)
def test_schema_shaped_toml_is_loaded_or_refused_with_a_config_error(layer: dict[str, Any]):
    assert isinstance(load_from(toml_text(layer).encode()), (Config, ConfigError))


def test_a_nul_in_a_model_path_is_a_config_error_naming_the_key():
    result = load_from(b'[models.coding]\nmodel = "a\\u0000b.gguf"\n')
    assert isinstance(result, ConfigError) and "models.coding.model" in str(result) and "line 2" in str(result)


def test_deeply_nested_toml_is_a_config_error():
    assert isinstance(load_from(b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n"), ConfigError)
