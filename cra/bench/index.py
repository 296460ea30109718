"""`cra bench index`: full index of a C tree vs universal-ctags, and incremental one-function edits."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from cra.bench._corpus import corpus_dir, default_cache_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=None, help="C tree to index (default: llama-cpp-python sdist)")
    parser.add_argument("--cache-dir", default=default_cache_dir(), help="where the default corpus is kept")
    parser.add_argument("--edits", type=int, default=50, help="incremental edits to time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _ctags_seconds(root: str) -> float | None:
    ctags = shutil.which("ctags")
    if ctags is None:
        return None
    version = subprocess.run([ctags, "--version"], capture_output=True, text=True).stdout
    if "Universal Ctags" not in version:
        return None
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([ctags, "-R", "--languages=C", "--langmap=C:.c.h", "-f", os.path.join(out, "tags"), root],
                       check=True, capture_output=True)
        return time.perf_counter() - started


def _cpu_seconds() -> float:
    """CPU time of this process and its waited-for children: comparable on a busy machine, unlike wall time."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _five_thousand_lines() -> str:
    functions = []
    for i in range(500):  # 10 lines each
        functions.append(
            f"/** Step {i}. */\nint step_{i}(int x, int y)\n{{\n    int z = x + y * {i};\n"
            f"    if (z > {i})\n        z -= helper(z);\n    else\n        z += {i};\n    return z;\n}}\n"
        )
    return "".join(functions)


def _incremental(edits: int) -> dict[str, float]:
    from cra.pipeline.context import WorkspaceIndex

    with tempfile.TemporaryDirectory() as root:
        text = _five_thousand_lines()
        with open(os.path.join(root, "big.c"), "w") as handle:
            handle.write(text)
        index = WorkspaceIndex.build(root, use_cache=False)
        index.remember_tree("big.c", text.encode())
        times = []
        for n in range(edits):
            target = f"    int z = x + y * {250 + n % 100};\n"
            text = text.replace(target, target.replace("int z = x", f"int z = {n} + x"), 1)
            started = time.perf_counter()
            index.update("big.c", text)
            times.append(time.perf_counter() - started)
        return {
            "lines": text.count("\n"),
            "p50_ms": statistics.median(times) * 1000,
            "p90_ms": sorted(times)[int(len(times) * 0.9)] * 1000,
        }


def main(args: argparse.Namespace) -> int:
    from cra.pipeline.context import WorkspaceIndex

    root = corpus_dir(args.path, args.cache_dir)
    ctags_s = _ctags_seconds(root)
    cpu_started = _cpu_seconds()
    index = WorkspaceIndex.build(root, use_cache=False)
    cpu_s = _cpu_seconds() - cpu_started  # workers have exited (and been waited for) when build returns
    stats = index.stats
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cached = WorkspaceIndex.build(root, use_cache=True)  # fills the cache
    warm = WorkspaceIndex.build(root, use_cache=True)
    shutil.rmtree(os.path.join(root, ".cra"), ignore_errors=True)
    del cached
    incremental = _incremental(args.edits)
    result = {
        "root": root,
        "files": stats.files,
        "mb": stats.bytes / 1e6,
        "symbols": stats.symbols,
        "references": stats.references,
        "skipped": len(stats.skipped),
        "seconds": stats.seconds,
        "processes": stats.processes,
        "cpu_seconds": cpu_s,
        "load_average_1m": os.getloadavg()[0],
        "files_per_s": stats.files / stats.seconds,
        "mb_per_s": stats.bytes / 1e6 / stats.seconds,
        "peak_rss_mb": peak_rss_mb,
        "ctags_seconds": ctags_s,
        "ratio_to_ctags": stats.seconds / ctags_s if ctags_s else None,
        "warm_cache_seconds": warm.stats.seconds,
        "incremental_lines": incremental["lines"],
        "incremental_p50_ms": incremental["p50_ms"],
        "incremental_p90_ms": incremental["p90_ms"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("| metric | value |\n|---|---|")
        for key, value in result.items():
            print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return 0
