"""`cra run ACTION PATH`: run one action headlessly through the language server and show the diff."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from cra.pipeline.actions import ACTIONS

# Exit status of a run cancelled with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_CANCELLED = 130


def run(args: argparse.Namespace) -> int:
    import msgspec

    from cra.clients.headless import (
        ActionCancelled,
        ActionUnavailable,
        HeadlessError,
        record_edit_status,
        run_action,
        write_atomically,
    )
    from cra.clients.progress import ProgressView

    config = None
    if args.set:
        try:
            config = json.loads(args.set)
        except json.JSONDecodeError as exc:
            print(f"cra run: --set is not a JSON object: {exc}", file=sys.stderr)
            return 2
    view = None if args.json else ProgressView(sys.stderr, f"cra {args.action}")
    try:
        with view or contextlib.nullcontext():
            outcome = run_action(args.action, args.path, symbol=args.symbol, trust=args.trust, config=config,
                                 config_file=args.config, instruction=args.instruction or "", on_progress=view,
                                 cancel_on_interrupt=True, on_interrupt=view.cancelling if view else None)
    except ActionCancelled as exc:  # Ctrl-C: the server stopped and logged the job; nothing is written
        print(f"cra run: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except ActionUnavailable as exc:
        print(f"cra run: {exc}", file=sys.stderr)
        return 2
    except HeadlessError as exc:
        print(f"cra run: {exc}", file=sys.stderr)
        return 1 if "server" in str(exc) or "did not finish" in str(exc) else 2
    if args.apply and outcome.ok:
        # The label follows the disk: `proposed` until every file is written, `applied` only after.
        record_edit_status(outcome, "proposed", "cra run --apply: writing the result")
        try:
            write_atomically(outcome.path, outcome.new_text)
            for new_file in outcome.files:
                write_atomically(new_file.path, new_file.text)
        except OSError as exc:
            record_edit_status(outcome, "failed", f"cra run --apply could not write: {exc}")
            print(f"cra run: cannot write the result: {exc}", file=sys.stderr)
            return 1
        record_edit_status(outcome, "applied", "written by cra run --apply")
    elif outcome.ok:
        record_edit_status(outcome, "not_applied", "dry run: cra run without --apply wrote nothing")
    if args.json:
        print(msgspec.json.encode(outcome).decode())
    else:
        if outcome.diff:
            sys.stdout.write(outcome.diff)
        for new_file in outcome.files:
            print(f"--- new file {new_file.path} ({len(new_file.text.splitlines())} lines)")
        verdict = outcome.verdict or {}
        print(f"cra {outcome.action}: {'ok' if outcome.ok else 'failed'}"
              f"; compiled={verdict.get('compiled')} tests_passed={verdict.get('tests_passed')}"
              + (f"; {verdict.get('message')}" if verdict.get("message") else "")
              + (f"; error: {outcome.error}" if outcome.error and outcome.error != verdict.get("message") else "")
              + ("; written" if args.apply and outcome.ok else ""))
    return 0 if outcome.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "run", help="run one action on a C file (headless, through the language server)",
        description="Run a cra action on one C file the way an editor would, print the unified diff and the "
                    "verdict. The file is written only with --apply.")
    parser.add_argument("action", choices=ACTIONS, help="the action to run")
    parser.add_argument("path", help="the C source file")
    parser.add_argument("--symbol", help="the function to work on (needed for implement, tests, document)")
    parser.add_argument("--instruction", help="free-text instruction (plan, scaffold)")
    parser.add_argument("--apply", action="store_true", help="write the result to the file(s)")
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    parser.add_argument("--trust", action="store_true",
                        help="trust the workspace: allow test/build commands named by its config")
    parser.add_argument("--config", help="a cra.toml to use instead of the workspace's")
    parser.add_argument("--set", metavar="JSON", help="config overrides as a JSON object (cra.toml schema)")
    parser.set_defaults(func=run)
