"""`cra logs`: read the call log (every LLM call, newest first), like `llm logs`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cra.pipeline.calllog import CallLog


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("logs", help="show logged LLM calls and task outcomes",
                              description="Show the workspace's call log (.cra/calls.db), newest first.")
    p.add_argument("--root", default=".", help="workspace root (default: the current directory)")
    p.add_argument("--stage", help="only calls of this pipeline stage")
    p.add_argument("--task", help="only calls of this task id")
    p.add_argument("-n", type=int, default=20, help="how many calls (default 20; 0 for all)")
    p.add_argument("--outcomes", action="store_true", help="show task outcomes instead of calls")
    p.add_argument("--json", action="store_true", help="print JSON (full messages and responses)")
    p.set_defaults(func=_logs)


def _logs(args: argparse.Namespace) -> int:
    import sqlite3

    from cra.pipeline.calllog import CallLog, CallLogError, log_path

    path = log_path(Path(args.root))
    if not path.exists() and not path.is_symlink():
        print(f"cra: no call log at {path} (nothing has run in this workspace yet)", file=sys.stderr)
        return 1
    try:
        log = CallLog(path, read_only=True)  # reading never writes: no migration, no WAL switch
    except CallLogError as exc:
        print(f"cra: {exc}", file=sys.stderr)
        return 1
    try:
        return _show(log, args)
    except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:  # a damaged or tampered-with log
        print(f"cra: cannot read the call log {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        log.close()


def _show(log: CallLog, args: argparse.Namespace) -> int:
    import msgspec

    from cra.clients.output import print_table

    if args.outcomes:
        outcomes = [msgspec.to_builtins(o) for o in log.outcomes(task_id=args.task)]
        if args.json:
            print(json.dumps(outcomes, indent=2))
        else:
            print_table(outcomes, ["task_id", "action", "path", "symbol", "compiled", "tests_passed",
                                   "edit_status", "reason"])
        return 0
    calls = log.calls(stage=args.stage, task_id=args.task, limit=args.n or None)
    if args.json:
        print(json.dumps([msgspec.to_builtins(c) for c in calls], indent=2, ensure_ascii=False))
        return 0
    rows = [{"id": c.id, "task": c.task_id, "stage": c.stage, "model": c.model_name,
             "adapter": c.adapter_name or "-", "in": c.tokens_in, "cached": c.cached_tokens, "out": c.tokens_out,
             "prefill_s": c.prefill_s, "decode_s": c.decode_s, "finish": c.finish_reason,
             "error": (c.error or "")[:60], "response": (c.response or "")[:50]} for c in calls]
    print_table(rows, ["id", "task", "stage", "model", "adapter", "in", "cached", "out", "prefill_s", "decode_s",
                       "finish", "error", "response"])
    return 0
