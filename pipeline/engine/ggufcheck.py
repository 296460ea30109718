"""GGUF checks done in Python before llama.cpp sees a file, so bad files give clear errors instead of crashes."""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import gguf
import msgspec

from .errors import AdapterMismatchError, ModelLoadError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_MAX_COUNT = 1 << 32  # more tensors/keys/array items than this means a garbled header
_WANTED_STRINGS = frozenset({"general.architecture", "general.type"})


class GGUFInfo(msgspec.Struct, frozen=True):
    path: str
    file_type: str  # general.type: "model" (or absent) / "adapter"
    architecture: str
    tensor_shapes: dict[str, tuple[int, ...]]  # ggml order: ne[0] is the input dimension


class _Corrupt(Exception):
    pass


class _HeaderReader:
    """Bounds-checked sequential reader over a memory-mapped GGUF header.

    Hand-rolled because gguf.GGUFReader materializes every metadata item (a 150k-token vocabulary takes many
    seconds); this skips arrays and keeps only what the checks need.
    """

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.off = 0

    def take(self, n: int) -> int:
        start = self.off
        if start + n > len(self.buf):
            raise _Corrupt(f"the header runs past the end of the file (at byte {start})")
        self.off += n
        return start

    def u32(self) -> int:
        return struct.unpack_from("<I", self.buf, self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack_from("<Q", self.buf, self.take(8))[0]

    def count(self, what: str) -> int:
        n = self.u64()
        if n > _MAX_COUNT:
            raise _Corrupt(f"implausible {what} count {n}")
        return n

    def string(self) -> str:
        n = self.u64()
        start = self.take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def skip_value(self, vtype: int) -> None:
        if vtype in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[vtype])
        elif vtype == _STRING:
            self.take(self.u64())
        elif vtype == _ARRAY:
            etype = self.u32()
            n = self.count("array item")
            if etype in _SCALAR_SIZES:
                self.take(_SCALAR_SIZES[etype] * n)
            elif etype == _STRING:
                buf, off, end = self.buf, self.off, len(self.buf)
                for _ in range(n):  # hot loop over vocabularies: no method calls
                    if off + 8 > end:
                        raise _Corrupt("a string array runs past the end of the file")
                    off += 8 + int.from_bytes(buf[off : off + 8], "little")
                if off > end:
                    raise _Corrupt("a string array runs past the end of the file")
                self.off = off
            else:
                for _ in range(n):
                    self.skip_value(etype)
        else:
            raise _Corrupt(f"unknown metadata value type {vtype}")


def _tensor_nbytes(name: str, dims: tuple[int, ...], ttype: int) -> int:
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
    except (ValueError, KeyError):
        raise _Corrupt(f"tensor {name} has unknown type {ttype}") from None
    n_elements = 1
    for d in dims:
        n_elements *= d
    return n_elements // block * type_size


def _parse(buf: mmap.mmap) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """Metadata strings we need and tensor shapes; raises _Corrupt (bad header) or ValueError (truncated data)."""
    r = _HeaderReader(buf)
    r.take(8)  # magic + version, checked by the caller
    n_tensors = r.count("tensor")
    n_kv = r.count("metadata key")
    strings: dict[str, str] = {}
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        vtype = r.u32()
        if vtype == _STRING and key in _WANTED_STRINGS:
            strings[key] = r.string()
        elif key == "general.alignment" and vtype == _UINT32:
            alignment = r.u32()
            if alignment == 0 or alignment & (alignment - 1):
                raise _Corrupt(f"general.alignment {alignment} is not a power of two")
        else:
            r.skip_value(vtype)
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.u32()
        if not 1 <= n_dims <= 4:
            raise _Corrupt(f"tensor {name} has {n_dims} dimensions")
        dims = tuple(r.u64() for _ in range(n_dims))
        infos.append((name, dims, r.u32(), r.u64()))
    data_start = (r.off + alignment - 1) // alignment * alignment
    shapes: dict[str, tuple[int, ...]] = {}
    for name, dims, ttype, offset in infos:
        end = data_start + offset + _tensor_nbytes(name, dims, ttype)
        if end > len(buf):
            raise ValueError(f"truncated file: tensor {name} ends at byte {end} but the file has {len(buf)} bytes")
        shapes[name] = dims
    return strings, shapes


def read_gguf(path: str | Path, *, what: str = "model") -> GGUFInfo:
    """Validate the header, metadata and tensor extents of a GGUF file; raise ModelLoadError on any defect."""
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise ModelLoadError(shown, f"the {what} file does not exist")
    if not path.is_file():
        raise ModelLoadError(shown, f"the {what} path is not a regular file")
    size = os.path.getsize(path)
    if size < 24:
        raise ModelLoadError(shown, f"the file is only {size} bytes: too small to be a GGUF {what}")
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            head = bytes(buf[:8])
            if head[:4] != GGUF_MAGIC:
                raise ModelLoadError(shown, f"not a GGUF file (magic bytes {head[:4]!r}, expected {GGUF_MAGIC!r})")
            version = int.from_bytes(head[4:8], "little")
            if version not in SUPPORTED_VERSIONS:
                raise ModelLoadError(shown, f"unsupported GGUF version {version} (supported: {SUPPORTED_VERSIONS})")
            strings, shapes = _parse(buf)
    except _Corrupt as exc:
        raise ModelLoadError(shown, f"corrupt or truncated GGUF header: {exc}") from exc
    except ValueError as exc:
        raise ModelLoadError(shown, str(exc)) from exc
    except OSError as exc:
        raise ModelLoadError(shown, f"cannot read the file: {exc}") from exc
    if not shapes:
        raise ModelLoadError(shown, "the GGUF file contains no tensors")
    architecture = strings.get("general.architecture")
    if architecture is None:
        raise ModelLoadError(shown, "the GGUF metadata has no general.architecture")
    file_type = strings.get("general.type") or "model"
    if file_type == "adapter" and what == "model":
        raise ModelLoadError(shown, "this GGUF is a LoRA adapter, not a base model")
    return GGUFInfo(path=shown, file_type=file_type, architecture=architecture, tensor_shapes=shapes)


def check_adapter_fits(adapter_path: str | Path, base: GGUFInfo) -> GGUFInfo:
    """Check that a LoRA adapter GGUF targets `base`: same architecture, every lora_a/lora_b pair fits its tensor."""
    shown = str(adapter_path)
    try:
        info = read_gguf(adapter_path, what="adapter")
    except ModelLoadError as exc:
        raise AdapterMismatchError(shown, base.path, exc.reason) from exc
    if info.file_type != "adapter":
        raise AdapterMismatchError(shown, base.path, f"general.type is {info.file_type!r}, not 'adapter'")
    if info.architecture != base.architecture:
        raise AdapterMismatchError(
            shown, base.path, f"adapter architecture {info.architecture!r} != model architecture {base.architecture!r}"
        )
    pairs = 0
    for name, a_shape in info.tensor_shapes.items():
        if not name.endswith(".lora_a"):
            continue
        target = name[: -len(".lora_a")]
        b_shape = info.tensor_shapes.get(target + ".lora_b")
        if b_shape is None:
            raise AdapterMismatchError(shown, base.path, f"{name} has no matching {target}.lora_b")
        base_shape = base.tensor_shapes.get(target)
        if base_shape is None:
            raise AdapterMismatchError(shown, base.path, f"the model has no tensor {target}")
        # ggml order: base (in, out), lora_a (in, r), lora_b (r, out).
        if a_shape[0] != base_shape[0] or b_shape[1] != base_shape[1] or a_shape[1] != b_shape[0]:
            raise AdapterMismatchError(
                shown,
                base.path,
                f"{target} is {base_shape[0]}→{base_shape[1]} in the model but the adapter's lora_a/lora_b are "
                f"{a_shape}/{b_shape} (built for a base of another size?)",
            )
        pairs += 1
    if pairs == 0:
        raise AdapterMismatchError(shown, base.path, "the adapter contains no lora_a/lora_b tensor pairs")
    return info
