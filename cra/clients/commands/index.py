"""`cra index PATH`: index the C/H files of a workspace and report counts, time and skipped files."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="index the C/H files of a workspace with tree-sitter-c")
    parser.add_argument("path", metavar="PATH", help="workspace root")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-cache", action="store_true", help="re-parse every file; ignore and skip .cra/index/")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from cra.pipeline.context import ContextError, WorkspaceIndex

    try:
        index = WorkspaceIndex.build(args.path, use_cache=not args.no_cache)
    except ContextError as error:
        print(f"cra index: {error}", file=sys.stderr)
        return 2
    stats = index.stats
    report = {
        "root": index.root,
        "files": stats.files,
        "symbols": stats.symbols,
        "references": stats.references,
        "bytes": stats.bytes,
        "parsed": stats.parsed,
        "cached": stats.cached,
        "seconds": round(stats.seconds, 4),
        "skipped": [msgspec.to_builtins(s) for s in stats.skipped],
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{stats.files} files, {stats.symbols} symbols, {stats.references} references in {stats.seconds:.2f}s "
          f"({stats.parsed} parsed, {stats.cached} from cache)")
    for skipped in stats.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}")
    return 0
