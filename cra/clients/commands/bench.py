"""`cra bench NAME`: benchmarks (each prints one JSON object with --json, else a markdown table)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

BENCHMARKS = {
    "engine": "cra.bench.engine",
    "index": "cra.bench.index",
    "context": "cra.bench.context",
    "quality": "cra.bench.quality",
    "lsp": "cra.bench.lsp",
    "startup": "cra.bench.startup",
    "robustness": "cra.bench.robustness",
    "adapters": "cra.bench.adapters",
}


class _BenchmarkParser(argparse.ArgumentParser):
    """A benchmark's parser. Its module (and all it imports: llama.cpp, pygls, ...) is imported only when this
    parser parses or shows its help: then the module's docstring, `add_arguments` and `main` fill it in."""

    def __init__(self, *args: Any, module: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._module = module

    def load(self) -> None:
        if not self._module:
            return
        name, self._module = self._module, ""
        module = importlib.import_module(name)
        self.description = module.__doc__
        module.add_arguments(self)
        self.set_defaults(func=module.main)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self.load()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.load()
        return super().format_usage()

    def format_help(self) -> str:
        self.load()
        return super().format_help()


def _docstring(module_name: str) -> str | None:
    """A module's docstring, read from its source without importing it (falls back to importing)."""
    spec = importlib.util.find_spec(module_name)
    origin = spec.origin if spec else None
    if origin and origin.endswith(".py"):
        try:
            with open(origin, encoding="utf-8") as source:
                return ast.get_docstring(ast.parse(source.read(), origin), clean=False)
        except (OSError, SyntaxError, UnicodeDecodeError):
            pass
    return importlib.import_module(module_name).__doc__


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("bench", help="run a benchmark", description="Run one of cra's benchmarks.")
    sub = parser.add_subparsers(dest="bench_name", metavar="BENCHMARK", parser_class=_BenchmarkParser)
    sub.required = True
    for name, module_name in BENCHMARKS.items():
        sub.add_parser(name, help=(_docstring(module_name) or name).strip().splitlines()[0], module=module_name)
