"""`cra tests detect|run [ROOT]`: how cra builds and runs a project's tests, and running them on the tree as is.

Untrusted (the default), only cra's own gcc/g++ commands run, one build per test program; `--trust` lets the
project's own build (CMake + ctest, Meson, autotools, a Make check/test target) run inside the sandbox copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def _root(args: argparse.Namespace) -> Path | None:
    root = Path(args.root)
    if not root.exists():
        print(f"cra tests: {root} does not exist", file=sys.stderr)
        return None
    if not root.is_dir():
        print(f"cra tests: {root} is not a directory (give the project's root folder)", file=sys.stderr)
        return None
    return root.resolve()


def detect(args: argparse.Namespace) -> int:
    import msgspec

    from cra.pipeline.sandbox.testplan import detect_tests

    root = _root(args)
    if root is None:
        return EXIT_BAD_INPUT
    plan = detect_tests(root, trusted=args.trust)
    if args.json:
        print(msgspec.json.encode(plan).decode())
        return 0
    print(f"{root}: {plan.kind}" + (f" ({plan.command})" if plan.command else "")
          + ("" if plan.trusted else " [untrusted]"))
    for step in plan.steps:
        print(f"  {step.role}: {step.command}")
    for program in plan.programs:
        extra = [f"-D{d}" for d in program.defines] + [f"includes {', '.join(program.included)}"] * bool(
            program.included)
        print(f"  program {program.name}: {program.linker} {' '.join(program.units)}"
              + (f" ({'; '.join(extra)})" if extra else ""))
    for note in plan.not_runnable:
        print(f"  note: {note}")
    return 0


def run(args: argparse.Namespace) -> int:
    import msgspec

    from cra.pipeline.sandbox.limits import SandboxError
    from cra.pipeline.sandbox.testplan import detect_tests
    from cra.pipeline.sandbox.testrun import run_tests

    root = _root(args)
    if root is None:
        return EXIT_BAD_INPUT
    try:
        report = run_tests(root, {}, trusted=args.trust)
    except SandboxError as exc:
        print(f"cra tests: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        if not args.trust and (found := detect_tests(root, trusted=False).project_build):
            print(f"note: the workspace is not trusted, so its {found} build was not run; cra built the tests "
                  "with its own compiler commands (pass --trust to run the project's own build)")
        print(f"{report.kind}: {report.command or 'nothing to run'} ({report.seconds:.1f} s)")
        for program in report.programs:
            print(f"  {program.status.upper():12} {program.name}" + (f": {program.reason}" if program.reason else ""))
            for case in program.cases_passed:
                print(f"      pass {case}")
            for case in program.cases_failed:
                print(f"      FAIL {case}")
        if report.not_run_reason:
            print(f"tests not run: {report.not_run_reason}")
    ok = bool(report.programs) and all(p.status == "passed" for p in report.programs)
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "tests", help="detect and run a C project's tests (per program and case)",
        description="Show how cra builds and runs a project's tests (detect), or run them on the tree as it is "
                    "(run). Untrusted, only cra's own compiler commands run; --trust allows the project's build.")
    actions = parser.add_subparsers(dest="tests_action", metavar="ACTION")
    actions.required = True
    for name, func, text in (("detect", detect, "show the test programs and the commands that would run"),
                             ("run", run, "build and run the tests; print pass/fail per program and case")):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("root", nargs="?", default=".", help="the project's root folder (default: .)")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.add_argument("--trust", action="store_true",
                         help="trust the workspace: run the project's own build and test commands (sandboxed)")
        sub.set_defaults(func=func)
