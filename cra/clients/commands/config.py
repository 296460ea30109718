"""`cra config check [PATH]`: validate the layered config and every model and adapter file it names."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="inspect and validate configuration",
                                   description="Inspect and validate cra.toml.")
    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser("check", help="validate the config and the GGUF files it names",
                       description="Validate cra.toml (workspace, user dir, defaults) and check that every model "
                                   "and adapter file exists, is a readable GGUF of the right kind, and that "
                                   "each adapter fits its base model. Exit 1 on any problem.")
    p.add_argument("path", nargs="?", help="a cra.toml file or a workspace directory (default: .)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from cra.pipeline.config import ConfigError, load_config
    from cra.pipeline.config_check import check_files

    target = Path(args.path or ".")
    try:
        if target.is_dir():
            config = load_config(target)
        else:
            config = load_config(target.parent, path=target)
    except ConfigError as exc:
        return _report(args, [str(exc)], [])
    root = target if target.is_dir() else target.parent
    problems, checked = check_files(config, root)
    return _report(args, problems, checked, sources=config.sources)


def _report(args: argparse.Namespace, problems: list[str], checked: list[str],
            sources: list[str] | None = None) -> int:
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems, "checked": checked, "sources": sources or []},
                         indent=2))
    else:
        for line in checked:
            print(f"ok: {line}")
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        if not problems:
            print("config ok (" + ", ".join(sources or []) + ")")
    return 1 if problems else 0
