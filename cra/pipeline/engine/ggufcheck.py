"""The engine's view of GGUF checks: the project's one parser (pipeline.models.gguf_info), its errors mapped to
the engine's error classes."""

from __future__ import annotations

from pathlib import Path

from cra.pipeline.models.gguf_info import GGUFError, GGUFInfo, read_gguf_info, require_kind
from cra.pipeline.models.gguf_info import check_adapter_fits as _fits

from .errors import AdapterMismatchError, ModelLoadError

__all__ = ["GGUFInfo", "check_adapter_fits", "read_gguf"]


def _reason(exc: GGUFError, path: str | Path) -> str:
    return str(exc).removeprefix(f"{path}: ")


def read_gguf(path: str | Path, *, what: str = "model") -> GGUFInfo:
    """A base model's header, or ModelLoadError saying what is wrong with the file."""
    try:
        info = read_gguf_info(path, what=what)
        return require_kind(info, "model") if what == "model" else info
    except GGUFError as exc:
        raise ModelLoadError(str(path), _reason(exc, path)) from exc


def check_adapter_fits(adapter_path: str | Path, base: GGUFInfo) -> GGUFInfo:
    """The adapter's header once it is known to fit `base`, else AdapterMismatchError."""
    try:
        info = read_gguf_info(adapter_path, what="adapter")
        _fits(info, base)
    except GGUFError as exc:
        raise AdapterMismatchError(str(adapter_path), base.path, _reason(exc, adapter_path)) from exc
    return info
