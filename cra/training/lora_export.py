"""Export a PEFT LoRA (numpy arrays of its state dict) as a GGUF LoRA adapter that llama.cpp loads.

PEFT stores `lora_A.weight` as (rank, D_in) and `lora_B.weight` as (D_out, rank); llama.cpp wants `lora_a` with
ggml shape (D_in, rank) and `lora_b` (rank, D_out), which as numpy arrays (reversed dims) are the same two shapes:
no transpose. What does change: the llama architecture's q/k projections are stored in llama.cpp's interleaved
RoPE row order, so lora_b's output rows get the same permutation as the base weights. PEFT's scale is
alpha / rank, llama.cpp's adapter.lora.alpha / rank: the alpha carries over. The adapter is never quantized.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import gguf
import numpy as np

from cra.pipeline.models.gguf_info import GGUFError, check_adapter_fits, read_gguf_info, require_kind
from cra.training.synthetic import HF_BLOCK_TENSORS, llama_rope_permute


class ExportError(Exception):
    """The LoRA cannot be exported for this base; the message says why."""


# Architectures whose Hugging Face → GGUF conversion is known here (model_type → GGUF architecture); llama
# permutes q/k rows, qwen2 (NEOX RoPE in llama.cpp) does not.
ARCHITECTURES: dict[str, str] = {"llama": "llama", "qwen2": "qwen2"}
_PEFT_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(\w+\.\w+_proj)\.lora_([AB])(?:\.default)?\.weight$")
_DTYPES = {"f32": np.float32, "f16": np.float16}


def export_lora(
    lora_state: Mapping[str, np.ndarray],
    out: str | Path,
    *,
    model_type: str,
    alpha: float,
    n_head: int,
    n_head_kv: int,
    base_gguf: str | Path | None = None,
    dtype: str = "f32",
) -> Path:
    """Write `out` from PEFT's LoRA tensors; when the base is a GGUF, check the adapter fits it."""
    if model_type not in ARCHITECTURES:
        raise ExportError(f"cannot export a LoRA for model type {model_type!r}: supported: {', '.join(ARCHITECTURES)}")
    if dtype not in _DTYPES:
        raise ExportError(f"unknown adapter dtype {dtype!r}: use one of {', '.join(_DTYPES)}")
    arch = ARCHITECTURES[model_type]
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in lora_state.items():
        m = _PEFT_KEY.search(key)
        if not m:
            continue
        block, module, side = m.groups()
        if module not in HF_BLOCK_TENSORS:
            raise ExportError(f"LoRA on {module!r} has no llama.cpp tensor name")
        name = f"blk.{block}.{HF_BLOCK_TENSORS[module]}.weight"
        pairs.setdefault(name, {})[side] = np.asarray(value, dtype=np.float32)
    if not pairs:
        raise ExportError("the model holds no LoRA weights to export")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name in sorted(pairs, key=_tensor_order):
        a, b = pairs[name].get("A"), pairs[name].get("B")
        if a is None or b is None:
            raise ExportError(f"{name}: PEFT state has only one of lora_A/lora_B")
        if arch == "llama" and name.split(".")[2] in ("attn_q", "attn_k"):
            b = llama_rope_permute(b, n_head if ".attn_q." in name else n_head_kv)
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=_DTYPES[dtype]))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=_DTYPES[dtype]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if base_gguf is not None:
        try:
            check_adapter_fits(require_kind(read_gguf_info(tmp, what="adapter"), "adapter"),
                               require_kind(read_gguf_info(base_gguf), "model"))
        except GGUFError as exc:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"the trained adapter does not fit the base GGUF: {exc}") from None
    tmp.replace(out)
    return out


def _tensor_order(name: str) -> tuple[int, str]:
    return int(name.split(".")[1]), name
