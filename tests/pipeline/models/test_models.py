"""Model registry and GGUF checks: chunk assembly with checksum, provenance, bad files, adapter fit."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from cra.pipeline.models import registry
from cra.pipeline.models.gguf_info import GGUFError, check_adapter_fits, read_gguf_info, require_kind


def make_chunk_packages(site: Path, data: bytes, prefix: str, n: int) -> tuple[str, ...]:
    """Real importable distributions shaped like the default models' chunk packages."""
    size = -(-len(data) // n)
    dists = []
    for i in range(1, n + 1):
        dist = f"{prefix}-part{i}"
        module = dist.replace("-", "_")
        (site / module / "data").mkdir(parents=True)
        (site / module / "data" / f"part{i:02d}.bin").write_bytes(data[(i - 1) * size: i * size])
        (site / module / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n")
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        dists.append(dist)
    return tuple(dists)


@pytest.fixture
def tiny_entry(tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> registry.RegistryEntry:
    data = tiny_model_path.read_bytes()
    site = tmp_path / "site"
    site.mkdir()
    dists = make_chunk_packages(site, data, "cra-test-tiny", 3)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("CRA_MODEL_DIR", str(tmp_path / "models"))
    entry = registry.RegistryEntry(name="tiny-test", aliases=("tiny",), filename="tiny.gguf",
                                   sha256=hashlib.sha256(data).hexdigest(), size=len(data), chunk_packages=dists,
                                   tier="tier0", description="test", hf="none/none/tiny.gguf")
    monkeypatch.setattr(registry, "DEFAULT_MODELS", (*registry.DEFAULT_MODELS, entry))
    yield entry
    for d in dists:
        sys.modules.pop(d.replace("-", "_"), None)


def test_install_assembles_verifies_and_records_provenance(tiny_entry: registry.RegistryEntry) -> None:
    assert registry.find_installed("tiny") is None
    with pytest.raises(registry.ModelError, match="not installed"):
        registry.resolve("tiny-test")
    record = registry.install("tiny")
    assert Path(record.path).read_bytes() == b"".join(
        Path(__import__(d.replace("-", "_")).get_part_path()).read_bytes() for d in tiny_entry.chunk_packages)
    assert record.sha256 == tiny_entry.sha256
    assert record.packages == [f"{d}==0.1" for d in tiny_entry.chunk_packages]
    assert Path(record.path).with_suffix(".json").is_file()
    assert registry.resolve("tiny-test").path == record.path
    mtime = Path(record.path).stat().st_mtime_ns
    assert registry.install("tiny").path == record.path  # idempotent: nothing re-assembled
    assert Path(record.path).stat().st_mtime_ns == mtime
    assert registry.verify("tiny").ok


def test_checksum_mismatch_leaves_no_model(tiny_entry: registry.RegistryEntry, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    bad = registry.RegistryEntry(**{**registry.msgspec.structs.asdict(tiny_entry), "sha256": "0" * 64})
    monkeypatch.setattr(registry, "DEFAULT_MODELS", (bad,))
    with pytest.raises(registry.ModelError, match="checksum mismatch"):
        registry.install("tiny-test")
    assert not registry.installed_path(bad).exists()
    assert not list(registry.cache_dir().glob("*.part"))


def test_missing_chunks_say_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRA_MODEL_DIR", str(tmp_path))
    entry = registry.RegistryEntry(name="ghost", aliases=(), filename="ghost.gguf", sha256="0" * 64, size=1,
                                   chunk_packages=("cra-no-such-chunk-part1",), tier="tier0", description="",
                                   hf="x/y/z.gguf")
    monkeypatch.setattr(registry, "DEFAULT_MODELS", (entry,))
    with pytest.raises(registry.ModelError, match=r"pip install 'cra\[models\]'"):
        registry.install("ghost")


def test_resolve_paths_and_unknown_and_hf(tmp_path: Path, tiny_model_path: Path) -> None:
    assert registry.resolve(str(tiny_model_path)).source == "path"
    with pytest.raises(registry.ModelError, match="not found"):
        registry.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(registry.ModelError, match="unknown model"):
        registry.resolve("no-such-model")
    with pytest.raises(registry.ModelError, match="hf:"):
        registry.resolve("hf:onlyone")


def test_gguf_info_reads_kinds(tiny_model_path: Path, tiny_adapter_path: Path) -> None:
    model = require_kind(read_gguf_info(tiny_model_path), "model")
    adapter = require_kind(read_gguf_info(tiny_adapter_path), "adapter")
    assert model.architecture == "llama" and model.n_embd == 64
    check_adapter_fits(adapter, model)
    with pytest.raises(GGUFError, match="expected a base model"):
        require_kind(adapter, "model")


def test_wrong_base_adapter_is_refused(tiny_model_path: Path, wrong_base_adapter_path: Path) -> None:
    with pytest.raises(GGUFError, match="another base|has no tensor"):
        check_adapter_fits(read_gguf_info(wrong_base_adapter_path), read_gguf_info(tiny_model_path))


@pytest.mark.parametrize("content, message", [
    (b"", "too small"),
    (b"NOPE" + b"\0" * 64, "not a GGUF"),
    (b"GGUF\x03\0\0\0" + b"\xff" * 16, "corrupt|truncated"),
])
def test_bad_files_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match=message):
        read_gguf_info(path)


def test_truncated_model_is_detected(tmp_path: Path, tiny_model_path: Path) -> None:
    data = tiny_model_path.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf_info(path)
    with pytest.raises(GGUFError, match="does not exist"):
        read_gguf_info(tmp_path / "none.gguf")
