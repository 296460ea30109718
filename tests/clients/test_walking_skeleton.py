"""The main job end to end: `cra run implement` → `cra lsp` subprocess → pipeline → engine → gcc sandbox → the
versioned edit back through LSP, and every call and outcome in the call log. Bad input must fail clearly, write
nothing and lose nothing from the log."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cra.pipeline.calllog import CallLog
from cra.pipeline.config import ROLES

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ringbuf"


def cra(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cra.clients.cli", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout)


def every_role(model: Path | str, **extra: object) -> str:
    return json.dumps({"models": {role: {"model": str(model), **extra} for role in ROLES}})


@pytest.fixture
def ringbuf(tmp_path: Path) -> Path:
    root = tmp_path / "ringbuf"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".cra", "*.bin"))
    return root


@pytest.mark.real_model
@pytest.mark.timeout(900)
def test_main_job_on_the_default_small_model(ringbuf: Path, real_model_0_5b: Path) -> None:
    source = ringbuf / "ringbuf.c"
    before = source.read_text()
    result = cra("run", "implement", str(source), "--symbol", "ringbuf_pop", "--apply", "--json",
                 "--set", every_role(real_model_0_5b))
    outcome = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outcome["verdict"]["compiled"] is True and outcome["verdict"]["tests_passed"] is True
    after = source.read_text()
    assert after != before and "TODO: implement" not in after
    assert after.replace(outcome["new_text"], "") == ""  # --apply wrote exactly the returned text
    # The library's own test program passes against the written file (outside cra's sandbox, as a user would).
    build = subprocess.run(["make", "-s", "test"], cwd=ringbuf, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0 and "all tests passed" in build.stdout
    log = CallLog.for_workspace(ringbuf)
    calls = log.calls(task_id=outcome["task_id"])
    assert calls and all(c.tokens_in and c.model_hash for c in calls)
    assert any(c.stage == "implement" and c.finish_reason == "stop" for c in calls)
    (row,) = log.outcomes(task_id=outcome["task_id"])
    assert row.compiled and row.tests_passed and row.edit_status == "applied"
    listed = cra("logs", "--root", str(ringbuf), "--json")
    assert {c["task_id"] for c in json.loads(listed.stdout)} == {outcome["task_id"]}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("defect", ["missing", "truncated", "not-gguf", "adapter-as-model"])
def test_a_bad_model_file_fails_clearly_and_writes_nothing(ringbuf: Path, tmp_path: Path, tiny_model_path: Path,
                                                           tiny_adapter_path: Path, defect: str) -> None:
    model = tmp_path / f"{defect}.gguf"
    if defect == "truncated":
        model.write_bytes(tiny_model_path.read_bytes()[:5000])
    elif defect == "not-gguf":
        model.write_text("this is a text file, not a model\n")
    elif defect == "adapter-as-model":
        model = tiny_adapter_path
    source = ringbuf / "ringbuf.c"
    before = source.read_bytes()
    result = cra("run", "implement", str(source), "--symbol", "ringbuf_pop", "--apply", "--set", every_role(model))
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stdout + result.stderr
    assert str(model.name) in message
    assert {"missing": "not found", "truncated": "truncated", "not-gguf": "not a GGUF",
            "adapter-as-model": "LoRA adapter"}[defect] in message
    assert source.read_bytes() == before
    checked = cra("config", "check", str(ringbuf), "--json", cwd=ringbuf)
    # The workspace itself has no cra.toml: the defaults are fine, or only a default model is not installed yet.
    problems = json.loads(checked.stdout)["problems"]
    assert checked.returncode == (1 if problems else 0)
    assert all("is not installed" in p for p in problems), problems


@pytest.mark.timeout(120)
def test_a_malformed_workspace_config_is_reported_with_file_and_line(ringbuf: Path) -> None:
    (ringbuf / "cra.toml").write_text('[models.coding]\nmodel = "qwen2.5-coder-0.5b"\nmax_concurency = 2\n')
    source = ringbuf / "ringbuf.c"
    before = source.read_bytes()
    result = cra("run", "implement", str(source), "--symbol", "ringbuf_pop", "--apply")
    assert result.returncode != 0
    assert "cra.toml" in result.stdout + result.stderr and "line 3" in result.stdout + result.stderr
    assert source.read_bytes() == before
    checked = cra("config", "check", str(ringbuf))
    assert checked.returncode == 1 and "max_concurency" in checked.stderr and "line 3" in checked.stderr


@pytest.mark.timeout(120)
def test_config_check_validates_model_and_adapter_files(tmp_path: Path, tiny_model_path: Path,
                                                         tiny_adapter_path: Path, wrong_base_adapter_path: Path
                                                         ) -> None:
    models = "".join(f'[models.{role}]\nmodel = "{tiny_model_path}"\n' for role in ROLES)
    (tmp_path / "cra.toml").write_text(models + f'[adapters."{tiny_model_path}"]\nimplement = "{tiny_adapter_path}"\n')
    ok = cra("config", "check", str(tmp_path), "--json")
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["ok"] and any("fits" in line for line in report["checked"])
    (tmp_path / "cra.toml").write_text(models + f'[adapters."{tiny_model_path}"]\n'
                                                f'implement = "{wrong_base_adapter_path}"\n')
    bad = cra("config", "check", str(tmp_path))
    assert bad.returncode == 1 and "another base model" in bad.stderr
