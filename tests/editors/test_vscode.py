"""Builds, type-checks, unit-tests and packages the VS Code extension with its own npm toolchain."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed: the VS Code extension cannot be built"),
]


def _npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["npm", *args],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "npm_config_audit": "false", "npm_config_fund": "false", "npm_config_update_notifier": "false"},
    )
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed() -> Path:
    _npm("ci")
    return EXTENSION


def test_typecheck(installed: Path) -> None:
    _npm("run", "typecheck")


def test_node_unit_and_activation_tests(installed: Path) -> None:
    result = _npm("test")
    output = result.stdout + result.stderr
    assert "# fail 0" in output, output[-4000:]
    passed = int(output.split("# pass ")[1].split()[0])
    assert passed >= 13, output[-4000:]


def test_package_vsix(installed: Path, tmp_path: Path) -> None:
    _npm("run", "package")
    vsix = installed / "cra.vsix"
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    vsix.unlink()
    assert "extension/out/extension.js" in names
    assert not any("node_modules" in name for name in names), "dependencies belong in the bundle, not the vsix"
    assert not any(name.startswith("extension/src/") for name in names)
    contributed = {command["command"] for command in manifest["contributes"]["commands"]}
    assert {f"cra.run.{a}" for a in ("plan", "scaffold", "implement", "tests", "document")} <= contributed
    assert "cra.trustWorkspace" in contributed
    # The server's own command ids are registered by vscode-languageclient; contributing them too would clash.
    assert not contributed & {"cra.plan", "cra.implement", "cra.trust", "cra.insertDoc"}
    properties = manifest["contributes"]["configuration"]["properties"]
    assert properties["cra.serverCommand"]["default"] == ["cra", "lsp"]
    assert set(properties) == {"cra.trust", "cra.configPath", "cra.serverCommand", "cra.models.coding", "cra.models.router"}
