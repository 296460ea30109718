"""`cra.toml`: schema, layered loading (defaults < user config dir < workspace < editor overrides), clear errors.

Each layer is validated on its own so an error names the file, the key and the line it came from; the layers are
then deep-merged and decoded once more into the final `Config`.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from cra.pipeline.stages.registry import STAGE_SPECS

ROLES: tuple[str, ...] = ("router", "reasoning", "coding", "summarization", "validation")

# Pipeline stages (A1–A12) plus the context sub-decisions that have adapters of their own: name → "A6 implement: ...".
STAGES: dict[str, str] = {name: spec.title for name, spec in STAGE_SPECS.items()}

CONFIG_FILENAME = "cra.toml"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, key and line."""


class ModelConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    model: str = ""  # registry name, GGUF path, or hf:<repo>/<file>
    quantization: str = ""
    context_length: int = 4096
    max_concurrency: int = 1
    default_timeout: float = 300.0
    n_gpu_layers: int = 0


class TiersConfig(msgspec.Struct, forbid_unknown_fields=True):
    tier0: str = "router"  # binary classification
    tier1: str = "coding"  # generation


class StageConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: str = ""
    adapter: str | None = None  # adapter file or name; else the [adapters] routing table decides
    max_tokens: int = 512
    temperature: float = 0.0
    stop: list[str] = []


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True):
    cpu_seconds: int = 10
    wall_seconds: int = 30
    memory_mb: int = 1024
    max_processes: int = 64
    max_output_bytes: int = 1_000_000


class ValidationConfig(msgspec.Struct, forbid_unknown_fields=True):
    compiler: str = "gcc"
    flags: list[str] = msgspec.field(default_factory=lambda: ["-std=c11", "-Wall", "-Wextra"])  # without compile_commands.json
    test_command: str = ""  # run only in a trusted workspace
    max_rounds: int = 2  # adjustment rounds after a failed compile/test
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)


class ContextConfig(msgspec.Struct, forbid_unknown_fields=True):
    budget_tokens: int = 1200
    max_file_bytes: int = 4 * 1024 * 1024  # larger files are skipped with a note; also `cra index`'s default


class DecisionsConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Binary decisions on the tier-0 model (scope A11, precision A8, routing A12): "auto" asks the model only for
    # stages with a trained adapter (an untrained base guesses worse than the deterministic rules and costs
    # prefill), "always" asks it anyway, "never" keeps every decision deterministic.
    mode: Literal["auto", "always", "never"] = "auto"

    def use_model(self, has_adapter: bool) -> bool:
        return self.mode == "always" or (self.mode == "auto" and has_adapter)


class EngineConfig(msgspec.Struct, forbid_unknown_fields=True):
    threads: int = 0  # 0: all cores
    memory_budget_mb: int = 8192
    # "cpu": adapters load as a cached Q8_0 copy, rank padded to a multiple of 32 (faster decode on CPU; see
    # pipeline/engine/adapter_layout.py); "as-is": the adapter files exactly as they are.
    adapter_layout: Literal["cpu", "as-is"] = "cpu"
    backend: str = "local"  # local | remote
    remote_url: str = ""


class Config(msgspec.Struct, forbid_unknown_fields=True):
    models: dict[str, ModelConfig] = {}
    tiers: TiersConfig = msgspec.field(default_factory=TiersConfig)
    stages: dict[str, StageConfig] = {}
    # Routing table: base model (as named in [models.*].model) → stage → adapter file. Config only, no code.
    adapters: dict[str, dict[str, str]] = {}
    validation: ValidationConfig = msgspec.field(default_factory=ValidationConfig)
    context: ContextConfig = msgspec.field(default_factory=ContextConfig)
    decisions: DecisionsConfig = msgspec.field(default_factory=DecisionsConfig)
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    sources: list[str] = []  # where each layer came from, for `cra config check`

    def model_for_role(self, role: str) -> ModelConfig:
        return self.models[role]

    def stage(self, name: str) -> StageConfig:
        """The stage's settings, with its role defaulted from the tiers (decisions → tier0, generation → tier1)."""
        if name not in STAGES:
            raise ConfigError(f"unknown pipeline stage {name!r}")
        stage = self.stages.get(name, StageConfig())
        if not stage.role:
            stage = msgspec.structs.replace(stage, role=_default_role(self, name))
        return stage

    def adapter_for(self, stage: str) -> str | None:
        """The adapter file for a stage on its role's base model, from the stage override or the routing table."""
        cfg = self.stage(stage)
        if cfg.adapter:
            return cfg.adapter
        base = self.models[cfg.role].model
        return self.adapters.get(base, {}).get(stage)


def _default_role(config: Config, stage: str) -> str:
    return config.tiers.tier0 if STAGE_SPECS[stage].tier == 0 else config.tiers.tier1


DEFAULTS: dict[str, Any] = {
    "models": {
        "router": {"model": "qwen2.5-coder-0.5b", "quantization": "q4_k_m", "context_length": 4096},
        "validation": {"model": "qwen2.5-coder-0.5b", "quantization": "q4_k_m", "context_length": 4096},
        "summarization": {"model": "qwen2.5-coder-0.5b", "quantization": "q4_k_m", "context_length": 4096},
        # One generalist serves both reasoning and coding: it is loaded once.
        "reasoning": {"model": "qwen2.5-coder-1.5b", "context_length": 4096},
        "coding": {"model": "qwen2.5-coder-1.5b", "context_length": 4096},
    },
    "stages": {
        "implement": {"max_tokens": 512, "stop": ["\n}\n"]},
        # Structured stages: the grammar bounds every string, and these budgets fit the longest valid output.
        "meta_plan": {"max_tokens": 1024},
        "part_plan": {"max_tokens": 1024},
        "scaffold": {"max_tokens": 1024},
        "adjustment": {"max_tokens": 768},
        "task_analysis": {"max_tokens": 512},
        "documentation": {"max_tokens": 512},
        "test_generation": {"max_tokens": 1536},
    },
}


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cra" / CONFIG_FILENAME


def load_config(root: str | Path | None = None, *, overrides: dict[str, Any] | None = None,
                path: str | Path | None = None, user: bool = True) -> Config:
    """Load the layered config. `path` replaces the workspace file; `overrides` come from the editor."""
    layers: list[tuple[str, dict[str, Any]]] = [("built-in defaults", copy.deepcopy(DEFAULTS))]
    if user and user_config_path().is_file():
        layers.append(_read_layer(user_config_path()))
    workspace_file = Path(path) if path else (Path(root) / CONFIG_FILENAME if root else None)
    if path and not Path(path).is_file():
        raise ConfigError(f"{path}: config file not found")
    if workspace_file and workspace_file.is_file():
        layers.append(_read_layer(workspace_file))
    if overrides:
        _validate_layer("editor settings (initializationOptions)", overrides, text=None)
        layers.append(("editor settings (initializationOptions)", overrides))
    merged: dict[str, Any] = {}
    for _, data in layers:
        _deep_merge(merged, data)
    merged["sources"] = [name for name, _ in layers]
    config = msgspec.convert(merged, type=Config)
    _check_semantics(config, layers[-1][0])
    if root is not None:
        config = _resolve_relative_paths(config, Path(root))
    return config


def _read_layer(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    _validate_layer(str(path), data, text)
    return str(path), data


def _validate_layer(source: str, data: dict[str, Any], text: str | None) -> None:
    """Validate one layer. Dict-valued tables (models, stages, adapters) are checked entry by entry because
    msgspec elides dict keys in its error paths, and the user needs the key."""
    per_entry = {"models": ModelConfig, "stages": StageConfig, "adapters": dict[str, str]}
    _check_strings(source, text, data)
    for section, value in data.items():
        if section in per_entry and isinstance(value, dict):
            for key, entry in value.items():
                _convert(source, text, [section, key], entry, per_entry[section])
        else:
            _convert(source, text, [], {section: value}, Config)
    for role in data.get("models", {}):
        if role not in ROLES:
            _fail(source, text, ["models", role], f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    for stage in data.get("stages", {}):
        if stage not in STAGES:
            _fail(source, text, ["stages", stage], f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")


MAX_NESTING = 32  # far deeper than the schema; deeper values are refused before anything recurses into them


def _check_strings(source: str, text: str | None, data: dict[str, Any]) -> None:
    """Refuse a NUL character in any string (every string here ends up a path, a command or a flag: the OS
    refuses them with a ValueError) and nesting deeper than any schema; iterative, so depth cannot overflow."""
    stack: list[tuple[list[str], Any]] = [([], data)]
    while stack:
        keys, value = stack.pop()
        if len(keys) > MAX_NESTING:
            _fail(source, text, keys[:MAX_NESTING], "nested too deeply")
        if isinstance(value, dict):
            stack.extend(([*keys, str(k)], v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(([*keys, f"[{i}]"], v) for i, v in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            _fail(source, text, keys, "a NUL character is not allowed in a value")
        if any("\x00" in key for key in keys[-1:]):
            _fail(source, text, keys[:-1], "a NUL character is not allowed in a key")


def _convert(source: str, text: str | None, prefix: list[str], value: Any, type_: Any) -> None:
    try:
        msgspec.convert(value, type=type_)
    except msgspec.ValidationError as exc:
        message = str(exc)
        _fail(source, text, prefix + _error_keys(message), _humanize(message))


def _fail(source: str, text: str | None, keys: list[str], message: str) -> None:
    line = _locate(text, keys) if text is not None else None
    where = f", line {line}" if line else ""
    raise ConfigError(f"{source}{where}: key `{'.'.join(keys) or '(top level)'}`: {message}")


def _check_semantics(config: Config, source: str) -> None:
    for role in ROLES:
        if role not in config.models or not config.models[role].model:
            raise ConfigError(f"{source}: key `models.{role}.model`: every role needs a model")
    for tier, role in (("tier0", config.tiers.tier0), ("tier1", config.tiers.tier1)):
        if role not in ROLES:
            raise ConfigError(f"{source}: key `tiers.{tier}`: unknown role {role!r}")
    for name, stage in config.stages.items():
        if stage.role and stage.role not in ROLES:
            raise ConfigError(f"{source}: key `stages.{name}.role`: unknown role {stage.role!r}")
    for base, table in config.adapters.items():
        for stage_name in table:
            if stage_name not in STAGES:
                raise ConfigError(f"{source}: key `adapters.{base}.{stage_name}`: unknown stage {stage_name!r}")


def _resolve_relative_paths(config: Config, root: Path) -> Config:
    """Relative GGUF paths in a workspace config are relative to the workspace root."""

    def fix(value: str) -> str:
        if value.endswith(".gguf") and not value.startswith("hf:") and not os.path.isabs(value):
            return str((root / value).resolve())
        return value

    models = {role: msgspec.structs.replace(m, model=fix(m.model)) for role, m in config.models.items()}
    stages = {name: msgspec.structs.replace(s, adapter=fix(s.adapter) if s.adapter else None)
              for name, s in config.stages.items()}
    adapters = {fix(base): {stage: fix(p) for stage, p in table.items()} for base, table in config.adapters.items()}
    return msgspec.structs.replace(config, models=models, stages=stages, adapters=adapters)


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


_PATH_RE = re.compile(r"at `\$((?:\.[A-Za-z0-9_\-]+|\[\d+\]|\[[^\]]*\])*)`")
_FIELD_RE = re.compile(r"unknown field `([^`]+)`")


def _error_keys(message: str) -> list[str]:
    keys: list[str] = []
    if m := _PATH_RE.search(message):
        for part in re.findall(r"\.([A-Za-z0-9_\-]+)|\[([^\]]*)\]", m.group(1)):
            keys.append(part[0] or part[1].strip("'\""))
    if m := _FIELD_RE.search(message):
        keys.append(m.group(1))
    return keys


def _humanize(message: str) -> str:
    return _PATH_RE.sub("", message).rstrip(" -").replace("Object contains unknown field", "unknown key")


def _locate(text: str | None, keys: list[str]) -> int | None:
    """Best-effort 1-based line of a dotted key in TOML text (headers, dotted keys, plain keys)."""
    if not text or not keys:
        return None
    table: list[str] = []
    best: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            table = [p.strip().strip("\"'") for p in stripped.strip("[]").split(".")]
            if table == keys[: len(table)] and best is None and len(table) == len(keys):
                best = number
            continue
        if "=" in stripped and not stripped.startswith("#"):
            key = [p.strip().strip("\"'") for p in stripped.split("=", 1)[0].split(".")]
            full = table + key
            if full == keys[: len(full)] or keys == full[: len(keys)]:
                return number
    return best
