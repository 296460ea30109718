"""`cra curate-data`, `cra audit`, `cra adapters list`: training data and error rates from the call log, and
the per-stage adapter map against the workspace config."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from cra.clients.output import print_table
from cra.pipeline.adapter_map import SIGNALS, routes
from cra.pipeline.config import ConfigError, load_config
from cra.pipeline.stages.registry import STAGE_SPECS
from cra.training.audit import COLUMNS, audit
from cra.training.curate import KEPT_LABELS, CurateOptions, CurationError, curate, open_log, parse_since


def register(subparsers: argparse._SubParsersAction) -> None:
    stages = ", ".join(STAGE_SPECS)
    p = subparsers.add_parser(
        "curate-data", help="export per-stage training pairs labelled by task outcomes",
        description="Export chat-format JSONL training pairs per pipeline stage from the call log "
                    "(.cra/calls.db): only calls whose task has an outcome, never failed or cancelled calls, "
                    "labelled by the stage's training signal, deduplicated, split train/valid by prompt hash.")
    p.add_argument("--root", default=".", help="workspace root (default: the current directory)")
    p.add_argument("--out", help="output directory (default: <root>/.cra/training)")
    p.add_argument("--stage", action="append", default=[], metavar="STAGE",
                   help=f"only this stage (repeatable; default: all). Stages: {stages}")
    p.add_argument("--min-label", choices=list(KEPT_LABELS), default="positive",
                   help="positive: only pairs whose outcome confirms them (default); known: also negatives; "
                        "any: also pairs whose signal is not known yet")
    p.add_argument("--since", help="only calls since a date (2026-02-27), date-time, or age (36h, 7d)")
    p.add_argument("--model", help="only calls served by this base model, as logged (registry name or GGUF stem)")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of prompts for validation (0.1)")
    p.add_argument("--force", action="store_true", help="replace a previous export in --out")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    g = p.add_argument_group(
        "from the workspace's tests", "--from-tests: instead of the call log, blank each function of the library "
        "units in a sandbox copy, run the project's tests, and keep the functions whose blank breaks a passing test "
        "as implement pairs (the implement flow's prompt; the original, test-verified body as the answer)")
    g.add_argument("--from-tests", nargs="?", const="", default=None, metavar="ROOT",
                   help="scan this workspace (default: --root); output default: <root>/.cra/training-from-tests")
    g.add_argument("--limit", type=int, help="scan at most this many functions (also --from-code)")
    g.add_argument("--trust", action="store_true",
                   help="trust the workspace: run its own build/test commands (default: cra's direct gcc builds)")
    g.add_argument("--run-seconds", type=float, default=60.0, help="wall-clock limit of one test run (60)")
    g = p.add_argument_group(
        "from the workspace's code", "--from-code: instead of the call log, blank each function with a body and "
        "record the context decisions the implement flow asks the model (precision: is this symbol needed?, scope: "
        "is this file relevant?), answered by what the original body uses; no model, no test run")
    g.add_argument("--from-code", nargs="?", const="", default=None, metavar="ROOT",
                   help="scan this workspace (default: --root); output default: <root>/.cra/training-from-code")
    p.set_defaults(func=_curate)

    p = subparsers.add_parser(
        "audit", help="per-stage error rates from the call log",
        description="Per stage: calls, tasks, failed-call rate (error/cancelled/timeout), downstream failure rate "
                    "(tasks not compiled, tests failed or edit rejected), the stage signal's negative rate, "
                    "mean tokens in/out and latency.")
    p.add_argument("--root", default=".", help="workspace root (default: the current directory)")
    p.add_argument("--stage", action="append", default=[], metavar="STAGE", help="only this stage (repeatable)")
    p.add_argument("--since", help="only calls since a date, date-time, or age (36h, 7d)")
    p.add_argument("--by-adapter", action="store_true", help="one row per (stage, served adapter): A/B view")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_audit)

    p = subparsers.add_parser("adapters", help="the per-stage adapter map",
                              description="The adapter map A1–A12 and the context sub-stages.")
    sub = p.add_subparsers(dest="adapters_command", metavar="SUBCOMMAND")
    sub.required = True
    q = sub.add_parser("list", help="each stage's tier, signal and routed adapter file for this workspace",
                       description="For the workspace config: which adapter file each (base model, stage) routes "
                                   "to, and whether it exists.")
    q.add_argument("--root", default=".", help="workspace root (default: the current directory)")
    q.add_argument("--json", action="store_true", help="print JSON (with the stages' inputs, outputs, signals)")
    q.set_defaults(func=_adapters_list)


def _curate(args: argparse.Namespace) -> int:
    if args.from_tests is not None and args.from_code is not None:
        print("cra: --from-tests and --from-code exclude each other: choose one source", file=sys.stderr)
        return 2
    if args.from_tests is not None:
        return _curate_from_tests(args)
    if args.from_code is not None:
        return _curate_from_code(args)
    root = Path(args.root)
    try:
        options = CurateOptions(stages=args.stage, min_label=args.min_label, model=args.model,
                                since=parse_since(args.since) if args.since else None,
                                valid_fraction=args.valid_fraction, force=args.force)
        out = Path(args.out) if args.out else root / ".cra" / "training"
        log = open_log(root)
        try:
            manifest = curate(log, out, options)
        finally:
            log.close()
    except CurationError as exc:
        print(f"cra: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(msgspec.to_builtins(manifest), indent=2))
        return 0
    rows = [{"stage": stage, "adapter": c.adapter, "train": c.train, "valid": c.valid,
             **{label: c.labels.get(label, 0) for label in ("positive", "negative", "unknown")},
             "duplicates": c.duplicates} for stage, c in manifest.stages.items()]
    print_table(rows, ["stage", "adapter", "train", "valid", "positive", "negative", "unknown", "duplicates"])
    s = manifest.skipped
    print(f"\n{manifest.pairs} pairs written to {out}; skipped: {s.no_outcome} without outcome, {s.failed} failed, "
          f"{s.filtered} filtered, {s.label} below --min-label, {s.invalid_decision} invalid decisions, "
          f"{s.malformed} malformed")
    return 0


M = TypeVar("M")


def _scanned(scan: Callable[[], M], bad_input: type[Exception], *, as_json: bool) -> tuple[M | None, int]:
    """Run a workspace scan's export: (its manifest, 0) to print a summary of; (None, exit code) when it failed
    (2: bad input, 1: the output directory is in the way) or was printed as JSON."""
    try:
        manifest = scan()
    except bad_input as exc:
        print(f"cra: {exc}", file=sys.stderr)
        return None, 2
    except CurationError as exc:
        print(f"cra: {exc}", file=sys.stderr)
        return None, 1
    if as_json:
        print(json.dumps(msgspec.to_builtins(manifest), indent=2))
        return None, 0
    return manifest, 0


def _curate_from_tests(args: argparse.Namespace) -> int:
    from cra.training.from_tests import FromTestsError, FromTestsOptions, curate_from_tests

    root = Path(args.from_tests or args.root)
    if args.stage and args.stage != ["implement"]:
        print("cra: --from-tests writes implement pairs only; drop --stage", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else root / ".cra" / "training-from-tests"
    options = FromTestsOptions(limit=args.limit, trusted=args.trust, run_seconds=args.run_seconds,
                               valid_fraction=args.valid_fraction, force=args.force)
    manifest, rc = _scanned(lambda: curate_from_tests(root, out, options), FromTestsError, as_json=args.json)
    if manifest is None:
        return rc
    scan = manifest.from_tests
    counts = manifest.stages.get("implement")
    print(f"{scan.scanned} of {scan.functions_found} functions scanned, {scan.covered} covered by the tests, "
          f"{manifest.pairs} implement pairs written to {out} (train {counts.train if counts else 0}, valid "
          f"{counts.valid if counts else 0}) in {scan.seconds:.1f} s; baseline: {scan.baseline}")
    return 0


def _curate_from_code(args: argparse.Namespace) -> int:
    from cra.training.from_code import FromCodeError, FromCodeOptions, curate_from_code

    root = Path(args.from_code or args.root)
    out = Path(args.out) if args.out else root / ".cra" / "training-from-code"
    options = FromCodeOptions(limit=args.limit, valid_fraction=args.valid_fraction, force=args.force)
    manifest, rc = _scanned(lambda: curate_from_code(root, out, options), FromCodeError, as_json=args.json)
    if manifest is None:
        return rc
    scan = manifest.from_code
    rows = [{"stage": stage, "train": c.train, "valid": c.valid, "yes": scan.answers.get(stage, {}).get("yes", 0),
             "no": scan.answers.get(stage, {}).get("no", 0), "duplicates": c.duplicates}
            for stage, c in manifest.stages.items()]
    print_table(rows, ["stage", "train", "valid", "yes", "no", "duplicates"])
    print(f"\n{scan.scanned} of {scan.functions_found} functions scanned, {manifest.pairs} decision pairs written to "
          f"{out} in {scan.seconds:.1f} s")
    return 0


def _audit(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
        log = open_log(Path(args.root))
        try:
            report = audit(log, stages=args.stage, since=since, by_adapter=args.by_adapter)
        finally:
            log.close()
    except CurationError as exc:
        print(f"cra: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(msgspec.to_builtins(report), indent=2))
        return 0
    columns = [c for c in COLUMNS if c != "adapter" or args.by_adapter]
    print_table([msgspec.to_builtins(r) for r in [*report.stages, report.total]], columns)
    return 0


def _adapters_list(args: argparse.Namespace) -> int:
    root = Path(args.root)
    try:
        config = load_config(root)
        table = routes(config, root)
    except ConfigError as exc:
        print(f"cra: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out = []
        for r in table:
            spec = STAGE_SPECS[r.stage]
            out.append({**msgspec.to_builtins(r), "mode": spec.mode, "input": spec.input, "output": spec.output,
                        "question": spec.question, "signal_description": SIGNALS[spec.signal].description,
                        "parent": spec.parent, "default_adapter": spec.default_adapter})
        print(json.dumps(out, indent=2))
        return 0
    rows = [{**msgspec.to_builtins(r), "adapter": r.adapter or "(base model)",
             "exists": "" if r.exists is None else ("yes" if r.exists else "MISSING")} for r in table]
    print_table(rows, ["code", "stage", "tier", "role", "base_model", "adapter", "exists", "default_file", "signal"])
    return 0
