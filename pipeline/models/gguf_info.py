"""Read a GGUF file's header without loading it: kind (model or LoRA adapter), architecture, shapes, integrity.

llama.cpp may abort the whole process on a malformed file, so every file is checked here first and a bad one
becomes a `GGUFError` that names the file and what is wrong with it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

GGUF_MAGIC = b"GGUF"
_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (vocabularies) are skipped, not kept: only their length is recorded.
_KEEP_ARRAY_MAX = 64


class GGUFError(Exception):
    """The file is missing, unreadable, not a GGUF, truncated, or of the wrong kind."""


class TensorInfo(msgspec.Struct, frozen=True):
    name: str
    shape: tuple[int, ...]  # GGUF order: ne0 (the row length) first
    ggml_type: int
    offset: int


class GGUFInfo(msgspec.Struct):
    path: str
    file_size: int
    version: int
    kind: str  # "model" | "adapter"
    architecture: str
    metadata: dict[str, Any]
    tensors: list[TensorInfo]

    @property
    def n_embd(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.embedding_length")
        return int(value) if value is not None else None

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.tensors}


def read_gguf_info(path: str | Path) -> GGUFInfo:
    p = Path(path)
    if not p.exists():
        raise GGUFError(f"{p}: file not found")
    if not p.is_file():
        raise GGUFError(f"{p}: not a regular file")
    size = p.stat().st_size
    try:
        with p.open("rb") as f:
            return _parse(f, str(p), size)
    except OSError as exc:
        raise GGUFError(f"{p}: cannot read: {exc.strerror}") from None
    except (struct.error, EOFError):
        raise GGUFError(f"{p}: truncated GGUF header (file is {size} bytes)") from None
    except (UnicodeDecodeError, ValueError, MemoryError) as exc:
        raise GGUFError(f"{p}: corrupt GGUF header ({exc.__class__.__name__})") from None


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _unpack(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: BinaryIO, limit: int) -> str:
    n = _unpack(f, "<Q")
    if n > limit:
        raise ValueError("string length beyond end of file")
    return _read(f, n).decode("utf-8")


def _value(f: BinaryIO, vtype: int, limit: int) -> Any:
    if vtype in _SCALARS:
        return _unpack(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(f, limit)
    if vtype == _ARRAY:
        itype = _unpack(f, "<I")
        count = _unpack(f, "<Q")
        if count > limit:
            raise ValueError("array length beyond end of file")
        if itype in _SCALARS and itype != 7:
            fmt = _SCALARS[itype]
            raw = _read(f, struct.calcsize(fmt) * count)
            return list(struct.unpack(f"<{count}{fmt[1]}", raw)) if count <= _KEEP_ARRAY_MAX else ("array", count)
        items = [_value(f, itype, limit) for _ in range(count)]
        return items if count <= _KEEP_ARRAY_MAX else ("array", count)
    raise ValueError(f"unknown value type {vtype}")


def _parse(f: BinaryIO, path: str, size: int) -> GGUFInfo:
    magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise GGUFError(f"{path}: not a GGUF file (magic {magic!r}, expected b'GGUF')")
    version = _unpack(f, "<I")
    if version not in (2, 3):
        raise GGUFError(f"{path}: unsupported GGUF version {version}")
    n_tensors = _unpack(f, "<Q")
    n_kv = _unpack(f, "<Q")
    if n_tensors > size or n_kv > size:
        raise GGUFError(f"{path}: corrupt GGUF header (counts exceed the file size)")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = _string(f, size)
        metadata[key] = _value(f, _unpack(f, "<I"), size)
    tensors: list[TensorInfo] = []
    for _ in range(n_tensors):
        name = _string(f, size)
        n_dims = _unpack(f, "<I")
        if n_dims > 8:
            raise ValueError("too many tensor dimensions")
        shape = tuple(_unpack(f, "<Q") for _ in range(n_dims))
        tensors.append(TensorInfo(name=name, shape=shape, ggml_type=_unpack(f, "<I"), offset=_unpack(f, "<Q")))
    alignment = int(metadata.get("general.alignment", 32))
    data_start = -(-f.tell() // alignment) * alignment
    _check_complete(path, size, data_start, tensors)
    kind = "adapter" if metadata.get("general.type") == "adapter" else "model"
    architecture = str(metadata.get("general.architecture", ""))
    if not architecture:
        raise GGUFError(f"{path}: GGUF has no general.architecture")
    return GGUFInfo(path=path, file_size=size, version=version, kind=kind, architecture=architecture,
                    metadata=metadata, tensors=tensors)


def _check_complete(path: str, size: int, data_start: int, tensors: list[TensorInfo]) -> None:
    """A truncated download or a bad concatenation leaves tensor data past the end of the file."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    end = data_start
    for t in tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(t.ggml_type)]
        except (ValueError, KeyError):
            raise GGUFError(f"{path}: tensor {t.name} has unknown type {t.ggml_type}") from None
        n = 1
        for d in t.shape:
            n *= d
        end = max(end, data_start + t.offset + n * type_size // block)
    if end > size:
        raise GGUFError(f"{path}: truncated: tensor data needs {end} bytes, the file has {size}")


def require_kind(info: GGUFInfo, kind: str) -> GGUFInfo:
    if info.kind != kind:
        article = "an adapter" if kind == "adapter" else "a model"
        raise GGUFError(f"{info.path}: expected {article} GGUF, found a {info.kind} GGUF")
    return info


def check_adapter_fits(adapter: GGUFInfo, base: GGUFInfo) -> None:
    """Each lora_a/lora_b pair must match the base tensor it modifies (shape and architecture)."""
    require_kind(adapter, "adapter")
    require_kind(base, "model")
    if adapter.architecture and adapter.architecture != base.architecture:
        raise GGUFError(f"{adapter.path}: adapter is for architecture {adapter.architecture!r}, "
                        f"the base model {base.path} is {base.architecture!r}")
    shapes = base.tensor_shapes()
    for t in adapter.tensors:
        if t.name.endswith(".lora_a"):
            target = t.name.removesuffix(".lora_a")
            if target not in shapes:
                raise GGUFError(f"{adapter.path}: adapter modifies {target}, which the base model "
                                f"{Path(base.path).name} does not have")
            # lora_a is (n_in, rank) in GGUF order; its row length must equal the base tensor's input width.
            if t.shape[0] != shapes[target][0]:
                raise GGUFError(f"{adapter.path}: adapter tensor {t.name} expects input width {t.shape[0]}, "
                                f"base {target} has {shapes[target][0]}: the adapter was made for another base")
        elif t.name.endswith(".lora_b"):
            target = t.name.removesuffix(".lora_b")
            if target in shapes and len(shapes[target]) > 1 and t.shape[1] != shapes[target][1]:
                raise GGUFError(f"{adapter.path}: adapter tensor {t.name} produces width {t.shape[1]}, "
                                f"base {target} has {shapes[target][1]}: the adapter was made for another base")
