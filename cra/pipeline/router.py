"""ModelRouter: stage → role → (base model, adapter), from config only.

Roles that name the same model resolve to the same `ModelSpec` (same path), so the engine loads it once. Adding an
adapter is a config change: `[adapters."<base model>"] <stage> = "file.gguf"`.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from cra.pipeline.config import Config, ConfigError
from cra.pipeline.engine import AdapterSpec, GenParams, ModelSpec
from cra.pipeline.models.registry import ResolvedModel, resolve


class Route(msgspec.Struct, frozen=True):
    stage: str
    role: str
    model: ModelSpec
    model_ref: str  # the config's name for the base (registry name, path or hf: id)
    model_sha256: str | None
    adapters: tuple[AdapterSpec, ...]
    params: GenParams
    timeout_s: float


class ModelRouter:
    def __init__(self, config: Config, *, root: str | Path | None = None, threads: int | None = None) -> None:
        self.config = config
        self.root = Path(root) if root else None
        self.threads = threads or config.engine.threads or None
        self._resolved: dict[str, ResolvedModel] = {}

    def resolve_model(self, ref: str) -> ResolvedModel:
        if ref not in self._resolved:
            self._resolved[ref] = resolve(ref, root=self.root)
        return self._resolved[ref]

    def model_for_role(self, role: str) -> tuple[ModelSpec, ResolvedModel]:
        if role not in self.config.models:
            raise ConfigError(f"no model configured for role {role!r}")
        mc = self.config.models[role]
        resolved = self.resolve_model(mc.model)
        spec = ModelSpec(name=resolved.name, path=resolved.path, n_ctx=mc.context_length,
                         n_gpu_layers=mc.n_gpu_layers, n_threads=self.threads)
        return spec, resolved

    def route(self, stage: str) -> Route:
        sc = self.config.stage(stage)
        spec, resolved = self.model_for_role(sc.role)
        adapters: tuple[AdapterSpec, ...] = ()
        adapter_path = self.config.adapter_for(stage)
        if adapter_path:
            path = Path(os.path.expanduser(adapter_path))
            if not path.is_absolute() and self.root is not None:
                path = self.root / path
            adapters = (AdapterSpec(name=f"{stage}:{path.stem}", path=str(path)),)
        params = GenParams(max_tokens=sc.max_tokens, temperature=sc.temperature, stop=list(sc.stop),
                           timeout_s=self.config.models[sc.role].default_timeout)
        return Route(stage=stage, role=sc.role, model=spec, model_ref=self.config.models[sc.role].model,
                     model_sha256=resolved.sha256, adapters=adapters, params=params,
                     timeout_s=self.config.models[sc.role].default_timeout)

    def distinct_models(self) -> list[ModelSpec]:
        """Each base model once, however many roles name it."""
        seen: dict[str, ModelSpec] = {}
        for role in self.config.models:
            spec, _ = self.model_for_role(role)
            seen.setdefault(spec.path, spec)
        return list(seen.values())
