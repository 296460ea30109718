"""The base model to train on, as a float32 transformers model: from a GGUF (dequantized by transformers' GGUF
support, the fp32 copy cached in the user cache so the next run loads it fast), a registered model name, or a
Hugging Face model directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import msgspec
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from cra.pipeline.models.gguf_info import GGUFError, read_gguf_info, require_kind
from cra.pipeline.models.registry import cra_cache_root, entry, find_installed
from cra.training.synthetic import CHATML_TEMPLATE


class BaseModelError(Exception):
    """The base model reference cannot be used for training; the message says why."""


class BaseSource(msgspec.Struct, frozen=True):
    ref: str  # what the user passed
    kind: Literal["gguf", "hf"]
    path: str  # the GGUF file or the HF directory
    route_key: str | None  # the name the adapter routing table keys this base by (None: not a served model)
    fingerprint: str  # identifies these exact weights (GGUF: path, size, mtime; HF dir: its config and weights)


def resolve_base(ref: str) -> BaseSource:
    """A registered model name, a GGUF path or a Hugging Face directory → where its weights are."""
    known = entry(ref)
    if known is not None:
        path = find_installed(ref)
        if path is None:
            raise BaseModelError(f"model {known.name!r} is not installed: run `cra models install {known.name}`")
        return BaseSource(ref=ref, kind="gguf", path=str(path), route_key=known.name,
                          fingerprint=known.sha256)
    p = Path(ref).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise BaseModelError(f"{ref}: a directory without config.json is not a Hugging Face model")
        return BaseSource(ref=ref, kind="hf", path=str(p.resolve()), route_key=None, fingerprint=_dir_fingerprint(p))
    if not p.exists():
        raise BaseModelError(f"{ref}: no such file, directory or registered model")
    try:
        require_kind(read_gguf_info(p), "model")
    except GGUFError as exc:
        raise BaseModelError(str(exc)) from None
    resolved = p.resolve()
    return BaseSource(ref=ref, kind="gguf", path=str(resolved), route_key=str(resolved),
                      fingerprint=_file_fingerprint(resolved))


def load_base(source: BaseSource, *, log: Any = None) -> tuple[PreTrainedModel, Any]:
    """(model in float32, tokenizer with a chat template) for `source`; a GGUF's dequantized copy is cached."""
    hf_logging.disable_progress_bar()  # cra train prints its own progress lines
    if source.kind == "hf":
        return _from_dir(Path(source.path))
    cached = cache_path(source)
    if (cached / ".complete").is_file():
        return _from_dir(cached)
    if log:
        log(f"dequantizing {source.path} (first use; cached as {cached})")
    gguf_dir, gguf_name = str(Path(source.path).parent), Path(source.path).name
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise BaseModelError(f"{source.path}: transformers cannot load this GGUF: {exc}") from None
    _ensure_template(tokenizer)
    # The weights are dequantized to float32 already; transformers still marks the model as GGUF-"quantized" and
    # refuses to save it, and the copy must load later as a plain float32 model.
    model.hf_quantizer = None  # type: ignore[assignment]  # an attribute transformers sets, not a submodule
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix=f".{cached.name}.staging-"))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / ".complete").write_text(source.fingerprint + "\n")
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(staging, cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model, tokenizer


def cache_path(source: BaseSource) -> Path:
    key = hashlib.sha256(source.fingerprint.encode()).hexdigest()[:16]
    return cra_cache_root() / "train-bases" / f"{Path(source.path).stem}-{key}"


def _from_dir(path: Path) -> tuple[PreTrainedModel, Any]:
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise BaseModelError(f"{path}: cannot load the model: {exc}") from None
    _ensure_template(tokenizer)
    return model, tokenizer


def _ensure_template(tokenizer: Any) -> None:
    # Prompts are chat messages; a base without a template is rendered as ChatML (what the Qwen models use).
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _dir_fingerprint(path: Path) -> str:
    parts = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(path.iterdir()) if f.is_file()]
    return hashlib.sha256("\n".join([str(path.resolve()), *parts]).encode()).hexdigest()
