"""`cra bench NAME`: benchmarks (each prints one JSON object with --json, else a markdown table)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "engine": "cra.bench.engine",
    "index": "cra.bench.index",
    "context": "cra.bench.context",
    "quality": "cra.bench.quality",
    "lsp": "cra.bench.lsp",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark", description="Run one of cra's benchmarks.")
    sub = parser.add_subparsers(dest="bench_name", metavar="BENCHMARK")
    sub.required = True
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0],
                           description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(func=module.main)
