"""Check that a config's models and adapters are usable files: readable GGUFs of the right kind, adapters that fit
the base model they are routed to. Used by `cra config check` before anything is loaded."""

from __future__ import annotations

from pathlib import Path

from cra.pipeline.config import STAGES, Config
from cra.pipeline.models.gguf_info import GGUFError, GGUFInfo, check_adapter_fits, read_gguf_info, require_kind
from cra.pipeline.models.registry import ModelError, resolve


def check_files(config: Config, root: str | Path) -> tuple[list[str], list[str]]:
    """(problems, what was checked). Nothing is loaded into llama.cpp."""
    problems: list[str] = []
    checked: list[str] = []
    bases: dict[str, GGUFInfo] = {}
    for role, mc in config.models.items():
        try:
            resolved = resolve(mc.model, root=root)
            info = bases.get(resolved.path) or require_kind(read_gguf_info(resolved.path), "model")
        except (ModelError, GGUFError) as exc:
            problems.append(f"models.{role}: {exc}")
            continue
        bases[resolved.path] = info
        bases.setdefault(mc.model, info)
        checked.append(f"models.{role}: {resolved.name} ({info.architecture}, {info.file_size // 1_000_000} MB)")
    for stage in STAGES:
        adapter = config.adapter_for(stage) if config.stage(stage).role in config.models else None
        if not adapter:
            continue
        path = Path(adapter) if Path(adapter).is_absolute() else Path(root) / adapter
        base_ref = config.models[config.stage(stage).role].model
        try:
            info = require_kind(read_gguf_info(path), "adapter")
        except GGUFError as exc:
            problems.append(f"stage {stage}: adapter {exc}")
            continue
        base = bases.get(base_ref)
        if base is None:
            continue  # the base model's own problem is reported above
        try:
            check_adapter_fits(info, base)
        except GGUFError as exc:
            problems.append(f"stage {stage}: {exc}")
            continue
        checked.append(f"stage {stage}: adapter {path.name} fits {Path(base.path).name}")
    return problems, checked
