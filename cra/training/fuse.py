"""`cra fuse`: merge a LoRA adapter into its base model's weights and write the merged model as a GGUF.

The deployment the performance tracker calls "fused": W' = W + scale · B·A on the dequantized base (llama.cpp's
scale: adapter.lora.alpha / rank, or 1 without alpha), written at F16, then quantized as a whole by llama.cpp's
own quantizer (Q8_0 / Q6_K / Q4_K_M). The LoRA is never quantized on its own: 4-bit rounding of the small
B·A update is what broke the tracker's 4-bit fused model, so the update is folded in at full precision first.

Works in llama.cpp's tensor layout end to end (the adapter GGUF already matches the base's row order), so any
architecture llama.cpp loads can be fused, not only the ones `cra train` converts from Hugging Face.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from pathlib import Path

import gguf
import msgspec
import numpy as np

from cra.pipeline.models.gguf_info import GGUFError, check_adapter_fits, read_gguf_info, require_kind
from cra.pipeline.models.registry import entry, find_installed


class FuseError(Exception):
    """The inputs cannot be fused; the message says why."""


# --type → llama.cpp's llama_ftype name (None: the merged F16 file is the output).
FUSE_TYPES: dict[str, str | None] = {
    "f16": None,
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q4_k": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
}

# Metadata the writer sets itself, or that describes the source file's encoding rather than the model.
_SKIPPED_KEYS = frozenset({"general.architecture", "general.alignment", "general.file_type",
                           "general.quantization_version"})


class FuseReport(msgspec.Struct, kw_only=True):
    base: str
    adapter: str
    out: str
    type: str
    merged_tensors: int  # base tensors the adapter changed
    scale: float  # alpha / rank of the first pair (the same for all: one alpha and rank per adapter file)
    bytes: int
    seconds_merge: float
    seconds_quantize: float


def resolve_base_gguf(ref: str) -> Path:
    """A registered model name or a GGUF path → the base model's GGUF file."""
    known = entry(ref)
    if known is not None:
        path = find_installed(ref)
        if path is None:
            raise FuseError(f"model {known.name!r} is not installed: run `cra models install {known.name}`")
        return path
    path = Path(ref).expanduser()
    if not path.exists():
        raise FuseError(f"{ref}: no such file or registered model")
    return path


def check_inputs(base: str | Path, adapter: str | Path, type_: str) -> None:
    """Every problem `fuse` would hit, found before any work: unknown type, missing files, wrong kinds, an adapter
    built for another base."""
    if type_ not in FUSE_TYPES:
        raise FuseError(f"unknown type {type_!r}: use one of {', '.join(FUSE_TYPES)}")
    try:
        base_info = require_kind(read_gguf_info(base), "model")
        adapter_info = require_kind(read_gguf_info(adapter, what="adapter"), "adapter")
        check_adapter_fits(adapter_info, base_info)
    except GGUFError as exc:
        raise FuseError(str(exc)) from None


def fuse(base: str, adapter: str | Path, out: str | Path, type_: str = "f16", *,
         log: Callable[[str], None] = lambda _: None, threads: int | None = None) -> FuseReport:
    """Merge `adapter` into `base` and write `out` at `type_`; `out` appears only when complete."""
    base_path = resolve_base_gguf(base)
    adapter_path = Path(adapter)
    check_inputs(base_path, adapter_path, type_)
    out = Path(out)
    if out.resolve() in (base_path.resolve(), adapter_path.resolve()):
        raise FuseError(f"{out}: the output would overwrite an input")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FuseError(f"{out.parent}: cannot create the output directory: {exc.strerror}") from None
    f16_path = out.with_name(out.name + ".f16.partial") if FUSE_TYPES[type_] else out.with_name(out.name + ".partial")
    t0 = time.perf_counter()
    try:
        merged, scale = write_merged_f16(base_path, adapter_path, f16_path, log=log)
        t1 = time.perf_counter()
        if FUSE_TYPES[type_] is None:
            f16_path.replace(out)
        else:
            partial = out.with_name(out.name + ".partial")
            log(f"quantizing the merged model to {type_} with llama.cpp")
            quantize(f16_path, partial, type_, threads=threads)
            partial.replace(out)
        t2 = time.perf_counter()
    finally:
        for leftover in (f16_path, out.with_name(out.name + ".partial")):
            leftover.unlink(missing_ok=True)
    return FuseReport(base=str(base_path), adapter=str(adapter_path), out=str(out), type=type_,
                      merged_tensors=merged, scale=scale, bytes=out.stat().st_size,
                      seconds_merge=round(t1 - t0, 3), seconds_quantize=round(t2 - t1, 3))


def _as_f32(tensor: gguf.ReaderTensor) -> np.ndarray:
    """A tensor's values as float32 in numpy order (rows = ggml ne[1])."""
    qtype = gguf.GGMLQuantizationType(tensor.tensor_type)
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.asarray(tensor.data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.asarray(tensor.data).astype(np.float32)
    return gguf.quants.dequantize(np.asarray(tensor.data), qtype)


def _lora_deltas(adapter: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """target tensor name → (lora_b, lora_a) in float32, and alpha (0: none)."""
    reader = gguf.GGUFReader(adapter)
    field = reader.fields.get("adapter.lora.alpha")
    alpha = float(field.contents()) if field is not None else 0.0
    tensors = {t.name: t for t in reader.tensors}
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, tensor in tensors.items():
        if name.endswith(".lora_a"):
            target = name[: -len(".lora_a")]
            pairs[target] = (_as_f32(tensors[target + ".lora_b"]), _as_f32(tensor))
    return pairs, alpha


def write_merged_f16(base: Path, adapter: Path, out: Path, *,
                     log: Callable[[str], None] = lambda _: None) -> tuple[int, float]:
    """Write the base with the adapter merged: matrices at F16, vectors (norms, biases) at F32, as llama.cpp's
    converter lays out an F16 model; all metadata (vocab, template, hyper-parameters) copied. Returns (tensors
    changed, scale)."""
    pairs, alpha = _lora_deltas(adapter)
    reader = gguf.GGUFReader(base)
    arch_field = reader.fields["general.architecture"]
    writer = gguf.GGUFWriter(str(out), str(arch_field.contents()))
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in _SKIPPED_KEYS:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub_type)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    merged, scale = 0, 1.0
    log(f"merging {len(pairs)} LoRA pairs into {base.name}")
    for tensor in reader.tensors:
        values = _as_f32(tensor)
        pair = pairs.get(tensor.name)
        if pair is not None:
            lora_b, lora_a = pair
            rank = lora_b.shape[1]
            # llama.cpp (llama-adapter.cpp): scale = alpha ? user_scale * alpha / rank : user_scale.
            scale = alpha / rank if alpha else 1.0
            values = values + scale * (lora_b @ lora_a)
            merged += 1
        values = np.ascontiguousarray(values, dtype=np.float16 if values.ndim >= 2 else np.float32)
        writer.add_tensor(tensor.name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return merged, scale


def quantize(source: Path, out: Path, type_: str, *, threads: int | None = None) -> None:
    """llama.cpp's quantizer (the one `llama-quantize` runs), default parameters but the target type."""
    import llama_cpp

    from cra.pipeline.engine.session import init_backend, recent_errors

    init_backend()
    ftype_name = FUSE_TYPES[type_]
    if ftype_name is None:
        raise FuseError(f"{type_}: not a quantized type")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = threads or min(os.cpu_count() or 1, 8)
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        raise FuseError(f"llama.cpp could not quantize {source.name} to {type_} (code {rc}): {recent_errors()}")
