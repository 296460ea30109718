"""A CPU-friendly copy of a LoRA adapter: Q8_0 tensors, rank zero-padded to a multiple of 32.

Why: llama.cpp applies an adapter as extra matrix products per projection. While decoding one token these read
every adapter weight once, so their cost is the adapter's bytes and the dot-product kernel: F32 streams 4 bytes a
weight, F16 converts each weight on CPUs without native F16 arithmetic, and a rank below 32 leaves `lora_b`'s dot
products (length = rank) to ggml's scalar remainder loop. Q8_0 is ~1 byte a weight through ggml's fastest CPU dot
product (the one quantized models use), and needs rows in blocks of 32, hence the padding. Measured on the
default 0.5B model with a rank-16 adapter on q/k/v/o/gate/up/down, 2 threads, 12 paired rounds: decode at 0.89 of
the base speed in this layout, against 0.86 (F32) and 0.82 (F16, llama.cpp's converter default) as they are.

The padding changes nothing: the extra rows of `lora_a` and columns of `lora_b` are zeros, and
`adapter.lora.alpha` grows with the rank so llama.cpp's scale (alpha / rank) stays the same. Q8_0 keeps 256
levels per block of 32 weights, scaled to the adapter's own weights: the design rule is never 4 bits, which
rounds a LoRA away (an 8-bit copy keeps it). Files already in this layout, or that it cannot represent
(other quantized types, mixed ranks, input widths not a multiple of 32, non-finite values, token-embedding
adapters) load as they are. Copies are cached by the content hash of the source file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import gguf
import numpy as np

from cra.pipeline.models.registry import cra_cache_root

Q8_0 = gguf.GGMLQuantizationType.Q8_0
BLOCK = 32  # Q8_0 weights per block: every row length (input width, rank) must be a multiple
LAYOUT_VERSION = 1
CACHE_LIMIT_BYTES = 4 << 30  # retrained adapters leave old copies behind: the least recently used go beyond this
_ALPHA_KEY = "adapter.lora.alpha"
_SUFFIX = f"-q8_0-v{LAYOUT_VERSION}.gguf"
_FLOAT_TYPES = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16)


def cache_dir() -> Path:
    if env := os.environ.get("CRA_ADAPTER_CACHE"):
        return Path(env)
    return cra_cache_root() / "adapters"


def padded_rank(rank: int) -> int:
    return -(-rank // BLOCK) * BLOCK


def cpu_layout(path: str | Path, cache: str | Path | None = None) -> Path:
    """The path to load for the adapter at `path`: a cached CPU layout of it, or `path` itself when it is in that
    layout already or the layout cannot represent it. I/O errors propagate (the caller loads the original)."""
    path = Path(path)
    data = path.read_bytes()
    target = Path(cache or cache_dir()) / f"{hashlib.sha256(data).hexdigest()[:32]}{_SUFFIX}"
    if target.is_file():
        os.utime(target)  # recently used: pruned last
        return target
    reader = gguf.GGUFReader(path)
    plan = _plan(reader)
    if plan is None:
        return path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".layout-", suffix=".gguf")
    os.close(fd)
    try:
        _write(reader, Path(tmp), *plan)
        os.replace(tmp, target)
    except _NotFinite:
        return path
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    prune(target.parent, keep=target)
    return target


def prune(directory: Path, *, keep: Path, limit: int = CACHE_LIMIT_BYTES) -> list[Path]:
    """Delete the least recently used copies until the directory's copies fit in `limit` bytes (never `keep`, which
    an engine is about to load; a copy another engine has loaded is already in its memory). Returns the deleted."""
    copies = []
    for entry in directory.glob(f"*{_SUFFIX}"):
        try:
            stat = entry.stat()
        except OSError:
            continue
        copies.append((stat.st_mtime, stat.st_size, entry))
    total = sum(size for _, size, _ in copies)
    deleted = []
    for _, size, entry in sorted(copies):
        if total <= limit:
            break
        if entry == keep:
            continue
        try:
            entry.unlink()
        except OSError:
            continue
        total -= size
        deleted.append(entry)
    return deleted


def _plan(reader: gguf.GGUFReader) -> tuple[int, int] | None:
    """(rank, padded rank) when the file can be, and needs to be, copied to the CPU layout; else None."""
    tensors = {t.name: t for t in reader.tensors}
    ranks: set[int] = set()
    if tensors and all(t.tensor_type == Q8_0 for t in tensors.values()):
        return None  # already laid out (Q8_0 rows are whole blocks, so the rank is too)
    for name, tensor in tensors.items():
        if tensor.tensor_type not in _FLOAT_TYPES:
            return None  # another quantized type: re-quantizing it again is not ours to do
        if name.endswith(".lora_a"):
            b = tensors.get(name[: -len(".lora_a")] + ".lora_b")
            # ggml order: lora_a (in, r), lora_b (r, out); token_embd's pair is transposed: leave such files alone.
            if b is None or name.startswith("token_embd") or int(tensor.shape[1]) != int(b.shape[0]) \
                    or int(tensor.shape[0]) % BLOCK:
                return None
            ranks.add(int(tensor.shape[1]))
        elif not name.endswith(".lora_b"):
            return None
    if len(ranks) != 1:
        return None
    rank = ranks.pop()
    return rank, padded_rank(rank)


class _NotFinite(Exception):
    """A tensor holds inf or NaN: Q8_0's per-block scale cannot represent it."""


def _write(reader: gguf.GGUFReader, out: Path, rank: int, padded: int) -> None:
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # written by the writer itself
        value = field.contents()
        if field.name == _ALPHA_KEY and value:
            value = float(value) * padded / rank  # keep alpha / rank
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)  # numpy order
        if not np.isfinite(values).all():
            raise _NotFinite(tensor.name)
        extra = padded - rank
        if extra and tensor.name.endswith(".lora_a"):  # (r, in): zero rows
            values = np.vstack([values, np.zeros((extra, values.shape[1]), dtype=np.float32)])
        elif extra:  # lora_b (out, r): zero columns
            values = np.hstack([values, np.zeros((values.shape[0], extra), dtype=np.float32)])
        quantized = gguf.quants.quantize(np.ascontiguousarray(values), Q8_0)
        writer.add_tensor(tensor.name, quantized, raw_shape=quantized.shape, raw_dtype=Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
