"""torch, transformers and peft stay out of `import cra...`: only the training modules that run them import them
at module level (the same rule tests/test_import_graph.py keeps for llama_cpp outside the engine)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "cra"
HEAVY = ("torch", "transformers", "peft")
ALLOWED = {"cra.training.train", "cra.training.hf_base"}


def _module_level_imports(body: list[ast.stmt]) -> list[str]:
    names: list[str] = []
    for node in body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.append(node.module or "")
        elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            names += _module_level_imports(node.body) + _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            names += _module_level_imports(node.body)
            for handler in node.handlers:
                names += _module_level_imports(handler.body)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            names += _module_level_imports(node.body)
    return names


def test_only_the_training_modules_import_torch_at_module_level() -> None:
    offenders = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        for name in _module_level_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if name.split(".")[0] in HEAVY and module not in ALLOWED:
                offenders.append(f"{module}: import {name}")
    assert not offenders, "\n".join(offenders)


def test_the_cli_and_the_train_command_module_load_no_torch() -> None:
    code = ("import sys\n"
            "import cra.clients.cli, cra.clients.commands.train, cra.training.lora_export, "
            "cra.training.adapter_routes, cra.training.curate\n"
            "from cra.clients.cli import build_parser\n"
            "build_parser(['train', '--help'])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
