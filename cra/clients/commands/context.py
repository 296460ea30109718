"""`cra context FILE SYMBOL`: the context cra would give the model for one symbol, within a token budget."""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("context", help="show the assembled context for a symbol of a C file")
    parser.add_argument("file", metavar="FILE", help="C/H file holding the symbol")
    parser.add_argument("symbol", metavar="SYMBOL", help="function (or other symbol) name")
    parser.add_argument("--budget", type=int, default=1500, help="token budget (default 1500)")
    parser.add_argument("--root", default=None, help="workspace root (default: the git top level, else FILE's folder)")
    parser.add_argument("--task", default="", help="task text: its words steer keyword retrieval")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _root_for(path: str) -> str:
    from cra.pipeline.context.gitinfo import _git

    folder = os.path.dirname(os.path.abspath(path))
    top = _git(folder, "rev-parse", "--show-toplevel")
    return top.strip() if top else folder


def run(args: argparse.Namespace) -> int:
    import msgspec

    from cra.pipeline.context import ContextError, WorkspaceIndex
    from cra.pipeline.context.assemble import assemble

    if not os.path.isfile(args.file):
        print(f"cra context: {args.file}: no such file", file=sys.stderr)
        return 2
    root = args.root or _root_for(args.file)
    try:
        index = WorkspaceIndex.build(root)
        pack = assemble(index, os.path.abspath(args.file), args.symbol, budget=args.budget, task_text=args.task)
    except ContextError as error:
        print(f"cra context: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            "target": {"name": pack.target.name, "kind": pack.target.kind, "file": pack.target.file,
                       "line": pack.target.start_line + 1},
            "items": [msgspec.to_builtins(item) for item in pack.items],
            "tokens": pack.tokens,
            "budget": args.budget,
            "dropped": pack.dropped,
            "seconds": round(pack.seconds, 4),
            "rendered": pack.rendered,
        }))
        return 0
    print("| symbol | kind | file | tier | precision | tokens |\n|---|---|---|---|---|---|")
    for item in pack.items:
        print(f"| {item.name} | {item.kind} | {item.file}:{item.line + 1} | {item.tier} | {item.precision} | {item.tokens} |")
    print(f"\n{pack.tokens}/{args.budget} tokens, {len(pack.dropped)} dropped, {pack.seconds * 1000:.0f} ms\n")
    print(pack.rendered)
    return 0
