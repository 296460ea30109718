"""`cra check [ROOT]`: run chosen actions over a repository (CI gate) through the headless client.

Selection (no model involved): `--document-undocumented` picks every public function without a doc comment
(public: declared in a header, or a non-static definition), `--tests-changed-since REF` every function a
`git diff -U0 REF` hunk touches, `--implement-stubs` every stub. Exits 1 when any action fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from cra.server.symbols import FunctionSite

import msgspec

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.M)


class CheckError(Exception):
    """The check cannot run (bad root, bad git ref); the message says why."""


class Target(msgspec.Struct, frozen=True, kw_only=True):
    action: str  # "document" | "tests" | "implement"
    path: str  # relative to the root, '/'-separated
    symbol: str
    line: int  # 0-based line of the definition


class Checked(msgspec.Struct, kw_only=True):
    action: str
    path: str
    symbol: str
    ok: bool
    compiled: bool | None = None
    tests_passed: bool | None = None
    message: str = ""
    error: str | None = None
    applied: bool = False
    seconds: float = 0.0


class Report(msgspec.Struct, kw_only=True):
    root: str
    selected: int
    passed: int
    failed: int
    results: list[Checked]


def _sources(root: Path) -> list[tuple[str, bytes]]:
    from cra.pipeline.context.discover import DEFAULT_MAX_FILE_BYTES, candidate_paths, read_source

    out = []
    for rel in candidate_paths(str(root)):
        data, _ = read_source(str(root), rel, DEFAULT_MAX_FILE_BYTES)
        if data is not None:
            out.append((rel, data))
    return out


Sites = list[tuple[str, "FunctionSite"]]  # (path relative to the root, function)


def _functions(root: Path) -> tuple[Sites, dict[str, Sites]]:
    """(definitions in .c files with their path, prototypes by name) over the whole tree."""
    from cra.server.symbols import DEFINITION, functions_in

    definitions: Sites = []
    prototypes: dict[str, Sites] = {}
    for rel, data in _sources(root):
        for site in functions_in(data, rel):
            if site.kind == DEFINITION and rel.endswith(".c"):
                definitions.append((rel, site))
            elif site.kind != DEFINITION:
                prototypes.setdefault(site.name, []).append((rel, site))
    return definitions, prototypes


def changed_lines(root: Path, ref: str) -> dict[str, list[tuple[int, int]]]:
    """Per file, the 0-based inclusive line spans `git diff -U0 REF` adds or changes (deletions: the line after)."""
    try:
        diff = subprocess.run(["git", "diff", "-U0", "--no-color", "--no-ext-diff", ref, "--", "*.c", "*.h"],
                              cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckError(f"cannot run git in {root}: {exc}") from None
    if diff.returncode != 0:
        raise CheckError(f"git diff {ref} failed in {root}: {diff.stderr.strip() or 'unknown error'}")
    spans: dict[str, list[tuple[int, int]]] = {}
    current: str | None = None
    for line in diff.stdout.splitlines():
        if line.startswith("+++ "):
            name = line[4:].strip()
            current = name[2:] if name.startswith("b/") else None  # /dev/null: the file was deleted
        elif current and (m := _HUNK.match(line)):
            start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
            first = max(start - 1, 0)
            spans.setdefault(current, []).append((first, first + max(count, 1) - 1))
    return spans


def select(root: str | Path, *, document_undocumented: bool = False, tests_changed_since: str | None = None,
           implement_stubs: bool = False, max_actions: int | None = None) -> list[Target]:
    """The actions to run, in file order, each function at most once per action."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise CheckError(f"{root} is not a directory")
    definitions, prototypes = _functions(root)
    targets: list[Target] = []
    if implement_stubs:
        targets += [Target(action="implement", path=rel, symbol=s.name, line=s.start_line)
                    for rel, s in definitions if s.is_stub]
    if document_undocumented:
        for rel, site in definitions:
            declared = prototypes.get(site.name, [])
            in_header = any(path.endswith(".h") for path, _ in declared)
            public = in_header or not site.is_static
            documented = site.doc.strip() or any(p.doc.strip() for _, p in declared)
            if public and not documented:
                targets.append(Target(action="document", path=rel, symbol=site.name,
                                      line=site.start_line))
    if tests_changed_since:
        spans = changed_lines(root, tests_changed_since)
        for rel, site in definitions:
            if site.is_stub:
                continue  # nothing to test yet
            if any(a <= site.end_line and site.start_line <= b for a, b in spans.get(rel, [])):
                targets.append(Target(action="tests", path=rel, symbol=site.name,
                                      line=site.start_line))
    targets.sort(key=lambda t: (t.path, t.line, t.action))
    return targets[:max_actions] if max_actions is not None else targets


def run_targets(root: Path, targets: list[Target], *, apply: bool, trust: bool, config: dict | None,
                config_file: str | None, server_argv: list[str] | None = None,
                progress: TextIO | None = None) -> list[Checked]:
    """Run every target in turn. `progress`: a stream to show each run's progress on. Ctrl-C cancels the running
    action and raises `ActionCancelled` (the targets before it keep what they wrote; nothing else is written)."""
    from cra.clients.headless import ActionCancelled, HeadlessError, run_action
    from cra.clients.progress import ProgressView

    results: list[Checked] = []
    for number, target in enumerate(targets, 1):
        started = time.monotonic()
        label = f"cra check [{number}/{len(targets)}] {target.action} {target.path}:{target.symbol}"
        view = ProgressView(progress, label) if progress is not None else None
        try:
            with view or contextlib.nullcontext():
                outcome = run_action(target.action, root / target.path, symbol=target.symbol, trust=trust,
                                     config=config, config_file=config_file, server_argv=server_argv,
                                     on_progress=view, cancel_on_interrupt=True,
                                     on_interrupt=view.cancelling if view else None)
        except ActionCancelled:
            raise
        except HeadlessError as exc:
            results.append(Checked(action=target.action, path=target.path, symbol=target.symbol, ok=False,
                                   error=str(exc), seconds=round(time.monotonic() - started, 2)))
            continue
        verdict = outcome.verdict or {}
        applied = False
        if apply and outcome.ok:
            Path(outcome.path).write_text(outcome.new_text, encoding="utf-8")
            for new_file in outcome.files:
                Path(new_file.path).write_text(new_file.text, encoding="utf-8")
            applied = True
        results.append(Checked(action=target.action, path=target.path, symbol=target.symbol, ok=outcome.ok,
                               compiled=verdict.get("compiled"), tests_passed=verdict.get("tests_passed"),
                               message=verdict.get("message") or "", error=outcome.error, applied=applied,
                               seconds=round(time.monotonic() - started, 2)))
    return results


def render_markdown(report: Report) -> str:
    lines = [f"# cra check: {report.passed}/{report.selected} passed", "",
             "| action | file | function | verdict | compiled | tests | detail |", "|---|---|---|---|---|---|---|"]
    for r in report.results:
        detail = (r.error or r.message or "").replace("\n", " ").replace("|", "\\|")[:160]
        lines.append(f"| {r.action} | {r.path} | `{r.symbol}` | {'ok' if r.ok else 'FAILED'} | {r.compiled} "
                     f"| {r.tests_passed} | {detail} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    if not (args.document_undocumented or args.tests_changed_since or args.implement_stubs):
        print("cra check: choose at least one of --document-undocumented, --tests-changed-since REF, "
              "--implement-stubs", file=sys.stderr)
        return 2
    config = None
    if args.set:
        try:
            config = json.loads(args.set)
        except json.JSONDecodeError as exc:
            print(f"cra check: --set is not a JSON object: {exc}", file=sys.stderr)
            return 2
    try:
        targets = select(root, document_undocumented=args.document_undocumented,
                         tests_changed_since=args.tests_changed_since, implement_stubs=args.implement_stubs,
                         max_actions=args.max)
    except CheckError as exc:
        print(f"cra check: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for t in targets:
            print(f"{t.action}\t{t.path}:{t.line + 1}\t{t.symbol}")
        return 0
    from cra.clients.headless import ActionCancelled

    try:
        results = run_targets(root, targets, apply=args.apply, trust=args.trust, config=config,
                              config_file=args.config, server_argv=getattr(args, "server_argv", None),
                              progress=None if args.json else sys.stderr)
    except ActionCancelled as exc:
        print(f"cra check: {exc}; stopped, no report written", file=sys.stderr)
        return 130
    passed = sum(r.ok for r in results)
    report = Report(root=str(root), selected=len(targets), passed=passed, failed=len(results) - passed,
                    results=results)
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
        (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        sys.stdout.write(render_markdown(report))
    return 0 if report.failed == 0 else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "check", help="run actions over a repository and fail when any fails (CI)",
        description="Select functions (undocumented public ones, ones changed since a git ref, stubs), run the "
                    "matching cra action on each through the language server, report every verdict and exit "
                    "non-zero when any action failed. Files are written only with --apply.")
    parser.add_argument("root", nargs="?", default=".", help="the repository root (default: .)")
    parser.add_argument("--document-undocumented", action="store_true",
                        help="document every public function without a doc comment")
    parser.add_argument("--tests-changed-since", metavar="REF", help="generate tests for functions changed since REF")
    parser.add_argument("--implement-stubs", action="store_true", help="implement every stub function")
    parser.add_argument("--max", type=int, metavar="N", help="run at most N actions")
    parser.add_argument("--report", metavar="DIR", help="write report.json and report.md into DIR")
    parser.add_argument("--apply", action="store_true", help="write successful results to the files")
    parser.add_argument("--list", action="store_true", help="only print the selected actions")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--trust", action="store_true", help="trust the repository's test/build commands")
    parser.add_argument("--config", help="a cra.toml to use instead of the repository's")
    parser.add_argument("--set", metavar="JSON", help="config overrides as a JSON object (cra.toml schema)")
    parser.set_defaults(func=run)
