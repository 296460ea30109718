"""`cra bench context`: speed of the deterministic context assembly, and retrieval quality on a labelled set built
from real code: for sampled functions, ground truth = the workspace symbols the body actually uses; the body is
blanked, context is assembled for the stub, and recall of the needed symbols within the budget is measured against
a whole-file baseline (the seed file, then its includes, whole, while they fit)."""

from __future__ import annotations

import argparse
import json
import statistics
import time

from cra.bench._corpus import corpus_dir, default_cache_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=None, help="C tree (default: llama-cpp-python sdist)")
    parser.add_argument("--cache-dir", default=default_cache_dir(), help="where the default corpus is kept")
    parser.add_argument("--budget", type=int, default=1500, help="token budget per context")
    parser.add_argument("--samples", type=int, default=40, help="functions in the labelled set")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _needed(index, function) -> set[str]:  # type: ignore[no-untyped-def]
    """Names of workspace definitions referenced inside the function body."""
    from cra.pipeline.context import symbols as k

    names: set[str] = set()
    for ref in index.references_in(function):
        if not function.body_start_byte <= ref.start_byte < function.body_end_byte or ref.name == function.name:
            continue
        if ref.kind == k.REF_CALL:
            target = index.resolve(ref.name, function.file, frozenset({k.FUNCTION, k.PROTOTYPE, k.MACRO_FUNCTION}))
        elif ref.kind == k.REF_TYPE:
            target = index.resolve(ref.name, function.file, k.TYPE_KINDS)
        else:
            target = index.resolve(
                ref.name, function.file, frozenset({k.MACRO, k.MACRO_FUNCTION, k.ENUMERATOR, k.VARIABLE}),
                visible_only=True,
            )
        if target is not None:
            names.add(target.parent if target.kind == k.ENUMERATOR and target.parent else target.name)
    return names


def _sample(index, count: int) -> list:  # type: ignore[no-untyped-def]
    candidates = []
    for path in sorted(index.files):
        if not path.endswith(".c"):
            continue
        for symbol in index.files[path].symbols:
            lines = symbol.end_line - symbol.start_line
            if symbol.kind == "function" and 5 <= lines <= 60 and not symbol.is_stub:
                candidates.append(symbol)
    if not candidates:
        return []
    step = max(1, len(candidates) // (count * 3))  # about a third pass the "uses two or more symbols" filter
    chosen = []
    for symbol in candidates[::step]:
        if len(_needed(index, symbol)) >= 2:
            chosen.append(symbol)
        if len(chosen) == count:
            break
    return chosen


def _names_in(index, paths: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    for path in paths:
        for symbol in index.files[path].symbols:
            names.add(symbol.parent if symbol.kind == "enumerator" and symbol.parent else symbol.name)
    return names


def _baseline(index, function, blanked: bytes, budget: int, count) -> tuple[set[str], int, int]:  # type: ignore[no-untyped-def]
    """Whole files, the way a plain chat prompt gets context: the seed file (blanked) whole if it fits, else its
    text just above the target cut to the budget at a line boundary; then directly included files, whole, while
    they fit. A symbol counts as present when its whole definition is inside the text taken."""
    text = blanked.decode("utf-8", "replace")
    whole = count(text)
    names: set[str] = set()
    if whole <= budget:
        used = whole
        names |= _names_in(index, [function.file])
    else:
        lines = blanked[: function.start_byte].split(b"\n")
        taken: list[bytes] = []
        used = 0
        for line in reversed(lines):
            cost = count(line.decode("utf-8", "replace") + "\n")
            if used + cost > budget:
                break
            taken.append(line)
            used += cost
        window_start = function.start_byte - len(b"\n".join(reversed(taken)))
        for symbol in index.files[function.file].symbols:
            if symbol.start_byte >= window_start and symbol.end_byte <= function.start_byte:
                names.add(symbol.parent if symbol.kind == "enumerator" and symbol.parent else symbol.name)
    for path in index.includes(function.file):
        with open(f"{index.root}/{path}", "rb") as handle:
            tokens = count(handle.read().decode("utf-8", "replace"))
        whole += tokens
        if used + tokens <= budget:
            names |= _names_in(index, [path])
            used += tokens
    return names, used, whole


def main(args: argparse.Namespace) -> int:
    from cra.pipeline.context import WorkspaceIndex, estimate_tokens
    from cra.pipeline.context.assemble import assemble

    root = corpus_dir(args.path, args.cache_dir)
    index = WorkspaceIndex.build(root)
    functions = _sample(index, args.samples)
    rows = []
    timings = []
    for function in functions:
        needed = _needed(index, function)
        original = index.source(function.file)
        blanked = original[: function.body_start_byte] + b"{\n}" + original[function.body_end_byte :]
        index.update(function.file, blanked)
        try:
            started = time.perf_counter()
            pack = assemble(index, function.file, function.name, budget=args.budget, use_git=False)
            timings.append(time.perf_counter() - started)
            got = {item.name for item in pack.items} | {
                item.text.split("{")[0].split()[-1] for item in pack.items if item.kind == "enumerator"
            }
            base_names, base_tokens, whole_tokens = _baseline(index, function, blanked, args.budget, estimate_tokens)
            rows.append({
                "function": f"{function.file}:{function.name}",
                "needed": len(needed),
                "recall": len(needed & got) / len(needed),
                "tokens": pack.tokens,
                "baseline_recall": len(needed & base_names) / len(needed),
                "baseline_tokens": base_tokens,
                "whole_file_tokens": whole_tokens,
            })
        finally:
            index.update(function.file, original)
    # Timing of a warm call on an unmodified function (PageRank cached), the case an editor action hits.
    warm = []
    for function in functions[:10]:
        started = time.perf_counter()
        assemble(index, function.file, function.name, budget=args.budget, use_git=False)
        warm.append(time.perf_counter() - started)

    def mean(key: str) -> float:
        return statistics.fmean(float(r[key]) for r in rows) if rows else 0.0  # type: ignore[arg-type]

    result = {
        "root": root,
        "budget": args.budget,
        "samples": len(rows),
        "assemble_p50_ms_after_edit": statistics.median(timings) * 1000 if timings else None,
        "assemble_p50_ms_warm": statistics.median(warm) * 1000 if warm else None,
        "recall": mean("recall"),
        "tokens": mean("tokens"),
        "baseline_recall": mean("baseline_recall"),
        "baseline_tokens": mean("baseline_tokens"),
        "whole_file_tokens": mean("whole_file_tokens"),
        "token_estimate": "bytes/3 (no model tokenizer)",
    }
    if args.json:
        print(json.dumps({**result, "rows": rows}))
    else:
        print("| metric | value |\n|---|---|")
        for key, value in result.items():
            print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return 0
