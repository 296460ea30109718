"""Read a GGUF file's header without loading it: kind (model or LoRA adapter), architecture, tensor shapes,
integrity. llama.cpp may abort the whole process on a malformed file, so every file is checked here first and a
bad one becomes a `GGUFError` naming the file and the defect. One parser for the project: the engine, the model
registry and `cra config check` all use it."""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import gguf
import msgspec


class GGUFError(Exception):
    """The file is missing, unreadable, not a GGUF, truncated, or of the wrong kind."""


class GGUFInfo(msgspec.Struct, frozen=True):
    path: str
    file_size: int
    kind: str  # general.type: "model" (or absent) / "adapter"
    architecture: str
    metadata: dict[str, str | int]  # general.* strings and every integer key (sizes)
    tensor_shapes: dict[str, tuple[int, ...]]  # ggml order: ne[0] is the input dimension

    @property
    def n_embd(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.embedding_length")
        return int(value) if value is not None else None


GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_INTEGERS = {4: "<I", 5: "<i", 10: "<Q", 11: "<q"}
_MAX_COUNT = 1 << 32  # more tensors/keys/array items than this means a garbled header
_WANTED_STRINGS = frozenset({"general.architecture", "general.type", "general.name"})


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


def _parse(buf: mmap.mmap) -> tuple[dict[str, str | int], dict[str, tuple[int, ...]]]:
    """Metadata strings we need and tensor shapes; raises _Corrupt (bad header) or ValueError (truncated data)."""
    r = _HeaderReader(buf)
    r.take(8)  # magic + version, checked by the caller
    n_tensors = r.count("tensor")
    n_kv = r.count("metadata key")
    strings: dict[str, str | int] = {}
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
        elif vtype in _INTEGERS:  # sizes (embedding, blocks, heads, context): small, and the pool needs them
            strings[key] = struct.unpack_from(_INTEGERS[vtype], r.buf, r.take(_SCALAR_SIZES[vtype]))[0]
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


def read_gguf_info(path: str | Path, *, what: str = "model") -> GGUFInfo:
    """Validate the header, metadata and tensor extents of a GGUF file."""
    path = Path(path)
    if not path.exists():
        raise GGUFError(f"{path}: the {what} file does not exist")
    if not path.is_file():
        raise GGUFError(f"{path}: the {what} path is not a regular file")
    size = os.path.getsize(path)
    if size < 24:
        raise GGUFError(f"{path}: the file is only {size} bytes: too small to be a GGUF {what} (truncated?)")
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            head = bytes(buf[:8])
            if head[:4] != GGUF_MAGIC:
                raise GGUFError(f"{path}: not a GGUF file (magic bytes {head[:4]!r}, expected {GGUF_MAGIC!r})")
            version = int.from_bytes(head[4:8], "little")
            if version not in SUPPORTED_VERSIONS:
                raise GGUFError(f"{path}: unsupported GGUF version {version} (supported: {SUPPORTED_VERSIONS})")
            strings, shapes = _parse(buf)
    except _Corrupt as exc:
        raise GGUFError(f"{path}: corrupt or truncated GGUF header: {exc}") from None
    except ValueError as exc:
        raise GGUFError(f"{path}: {exc}") from None
    except OSError as exc:
        raise GGUFError(f"{path}: cannot read the file: {exc}") from None
    if not shapes:
        raise GGUFError(f"{path}: the GGUF file contains no tensors")
    architecture = strings.get("general.architecture")
    if not isinstance(architecture, str):
        raise GGUFError(f"{path}: the GGUF metadata has no general.architecture")
    kind = "adapter" if strings.get("general.type") == "adapter" else "model"
    return GGUFInfo(path=str(path), file_size=size, kind=kind, architecture=architecture, metadata=strings,
                    tensor_shapes=shapes)


def require_kind(info: GGUFInfo, kind: str) -> GGUFInfo:
    if info.kind != kind:
        expected = "a LoRA adapter" if kind == "adapter" else "a base model"
        found = "a LoRA adapter" if info.kind == "adapter" else "a base model"
        raise GGUFError(f"{info.path}: expected {expected} GGUF, found {found}")
    return info


def check_adapter_fits(adapter: GGUFInfo, base: GGUFInfo) -> None:
    """Same architecture, and every lora_a/lora_b pair fits the base tensor it modifies."""
    require_kind(adapter, "adapter")
    if adapter.architecture != base.architecture:
        raise GGUFError(f"{adapter.path}: adapter architecture {adapter.architecture!r} != model architecture "
                        f"{base.architecture!r} ({base.path})")
    pairs = 0
    for name, a_shape in adapter.tensor_shapes.items():
        if not name.endswith(".lora_a"):
            continue
        target = name[: -len(".lora_a")]
        b_shape = adapter.tensor_shapes.get(target + ".lora_b")
        if b_shape is None:
            raise GGUFError(f"{adapter.path}: {name} has no matching {target}.lora_b")
        base_shape = base.tensor_shapes.get(target)
        if base_shape is None:
            raise GGUFError(f"{adapter.path}: the model {Path(base.path).name} has no tensor {target}")
        # ggml order: base (in, out), lora_a (in, r), lora_b (r, out).
        if a_shape[0] != base_shape[0] or b_shape[1] != base_shape[1] or a_shape[1] != b_shape[0]:
            raise GGUFError(f"{adapter.path}: {target} is {base_shape[0]}→{base_shape[1]} in the model but the "
                            f"adapter's lora_a/lora_b are {a_shape}/{b_shape}: built for another base model")
        pairs += 1
    if pairs == 0:
        raise GGUFError(f"{adapter.path}: the adapter contains no lora_a/lora_b tensor pairs")
