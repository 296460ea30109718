"""Check the `repos` manifest against the real trees: `python -m cra.bench.repos.verify [--library NAME]`.

Per library: fetch the Debian source package (cached), copy the pristine tree to a temp dir, run the library's
own test command there (the baseline: it must pass; its seconds are reported), then for each task blank the
function (body replaced by a zero-value stub), re-run the tests in the same copy (the build dir is kept, so only
what changed is rebuilt), require them to fail, and put the original back. Nothing runs inside the cache.
Prints a table (or, with --json, one JSON object); exit status 0 when every baseline passed and every task was
detected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from cra.bench.quality_tasks import QualityError, find_function
from cra.bench.repos.blank import blank_for
from cra.bench.repos.fetch import FetchError, fetch
from cra.bench.repos.manifest import LIBRARIES, RepoLibrary, RepoTask, library

OUTPUT_TAIL = 2000
# A compiler or linker error (gcc/g++/clang/ld): the stub broke the build, so the tests never judged it.
BUILD_ERROR = re.compile(r"^.+?:\d+(?::\d+)?: (?:fatal )?error: |undefined reference to |^collect2: error: |(?:^|/)ld(?:\.\w+)?: ")


class RunResult(msgspec.Struct):
    returncode: int | None  # None: timed out (the whole process group was killed)
    seconds: float
    output: str  # the tail of stdout + stderr
    build_errors: list[str] = []  # compiler/linker error lines found anywhere in the output (first few)

    @property
    def passed(self) -> bool:
        return self.returncode == 0


class TaskResult(msgspec.Struct):
    unit: str
    function: str
    detected: bool  # the tests failed with the function blanked
    seconds: float
    how: str  # "tests-failed" | "timeout" (both count) | "build-failed" | "missed" | "error" (do not)
    returncode: int | None = None
    detail: str = ""


class LibraryResult(msgspec.Struct):
    name: str
    package: str
    version: str
    build: str
    test_command: str
    baseline_ok: bool
    baseline_seconds: float
    tasks: list[TaskResult]
    seconds: float
    detail: str = ""
    work_dir: str = ""


def run_env(jobs: int) -> dict[str, str]:
    """The environment tests run in: parallel builds and test runs limited to `jobs`, C locale."""
    env = dict(os.environ)
    env.update({"MAKEFLAGS": f"-j{jobs}", "CMAKE_BUILD_PARALLEL_LEVEL": str(jobs), "CTEST_PARALLEL_LEVEL": str(jobs),
                "MESON_TESTTHREADS": str(jobs), "CTEST_OUTPUT_ON_FAILURE": "1", "LC_ALL": "C", "LANG": "C"})
    for noisy in ("MAKELEVEL", "MFLAGS", "CFLAGS", "CPPFLAGS", "LDFLAGS", "CC", "CXX"):
        env.pop(noisy, None)
    return env


def run_command(command: str, cwd: str | Path, timeout: float, env: dict[str, str]) -> RunResult:
    """`command` under bash in `cwd`, in its own process group (killed as a whole on timeout)."""
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        code = None
    except BaseException:  # interrupted: leave no build or test running behind
        _kill_group(proc)
        proc.wait()
        raise
    text = out.decode("utf-8", errors="replace")
    errors = [line.strip() for line in text.splitlines() if BUILD_ERROR.search(line)][:5]
    return RunResult(returncode=code, seconds=round(time.monotonic() - started, 2), output=text[-OUTPUT_TAIL:],
                     build_errors=errors)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def copy_tree(source: Path, dest: Path) -> Path:
    """A copy of the pristine tree, timestamps kept (so generated build files stay newer than their inputs)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def blank_in_tree(tree: Path, task: RepoTask, *, stub: str = "plain") -> str:
    """Blank `task.function` (stub style `stub`) in the copy at `tree`; returns the original text (to put back)."""
    path = tree / task.unit
    if not path.is_file():
        raise QualityError(f"{task.unit} is not in the tree")
    original = path.read_text(errors="surrogateescape")
    symbol = find_function(original, task.function, path=task.unit)
    if symbol.is_stub:
        raise QualityError(f"{task.unit}: {task.function} is already a stub")
    _write(path, blank_for(stub, original, task.function, path=task.unit))
    return original


def _write(path: Path, text: str) -> None:
    before = path.stat().st_mtime
    path.write_text(text, errors="surrogateescape")
    now = time.time()
    os.utime(path, (now, max(now, before + 1.0)))  # always newer than what was built from the previous text


def _failure_kind(result: RunResult) -> str:
    """Conservative: any compiler or linker error counts as a broken build, whichever file it names."""
    if result.returncode is None:
        return "timeout"
    return "build-failed" if result.build_errors else "tests-failed"


def verify_library(lib: RepoLibrary, *, cache: str | None = None, jobs: int = 2, keep: bool = False,
                   tasks: list[RepoTask] | None = None,
                   log: Callable[[str], None] | None = None) -> LibraryResult:
    """Baseline + every task of `lib` (or `tasks`), in one temp copy of the tree."""
    say = log or (lambda _msg: None)
    started = time.monotonic()
    chosen = lib.tasks if tasks is None else tasks
    result = LibraryResult(name=lib.name, package=lib.package, version=lib.version, build=lib.build,
                           test_command=lib.test_command, baseline_ok=False, baseline_seconds=0.0, tasks=[],
                           seconds=0.0)
    try:
        pristine = fetch(lib.package, lib.version, cache)
    except FetchError as exc:
        result.detail = str(exc)
        return result
    work = Path(tempfile.mkdtemp(prefix=f"cra-repos-{lib.name}-"))
    env = run_env(jobs)
    try:
        tree = copy_tree(pristine, work / pristine.name)
        say(f"{lib.name}: baseline `{lib.test_command}`")
        base = run_command(lib.test_command, tree, lib.timeout_seconds, env)
        result.baseline_seconds = base.seconds
        result.baseline_ok = base.passed
        if not base.passed:
            why = "timed out" if base.returncode is None else f"exit {base.returncode}"
            result.detail = f"baseline failed ({why}):\n{base.output}"
            return result
        say(f"{lib.name}: baseline passed in {base.seconds:.1f}s")
        retest = lib.retest_command or lib.test_command
        for task in chosen:
            result.tasks.append(_verify_task(lib, task, tree, retest, env))
            done = result.tasks[-1]
            say(f"{lib.name}: {task.unit}:{task.function}: {done.how} ({done.seconds:.1f}s)")
    finally:
        result.seconds = round(time.monotonic() - started, 2)
        if keep:
            result.work_dir = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _verify_task(lib: RepoLibrary, task: RepoTask, tree: Path, command: str, env: dict[str, str]) -> TaskResult:
    """Blank (with the library's stub style), re-run, put back. A stub that breaks the build does not count: the
    tests themselves must fail."""
    try:
        original = blank_in_tree(tree, task, stub=lib.stub)
    except QualityError as exc:
        return TaskResult(task.unit, task.function, detected=False, seconds=0.0, how="error", detail=str(exc))
    try:
        run = run_command(command, tree, lib.timeout_seconds, env)
    finally:
        _write(tree / task.unit, original)
    if run.passed:
        return TaskResult(task.unit, task.function, detected=False, seconds=run.seconds, how="missed",
                          returncode=0, detail="the tests still pass with the function blanked")
    how = _failure_kind(run)
    return TaskResult(task.unit, task.function, detected=how != "build-failed", seconds=run.seconds, how=how,
                      returncode=run.returncode,
                      detail="; ".join(run.build_errors)[:400] if how == "build-failed" else run.output[-240:])


# ---- report ---------------------------------------------------------------------------------------------------------
def summary(results: list[LibraryResult]) -> dict:
    tasks = [t for r in results for t in r.tasks]
    return {
        "libraries": len(results),
        "baselines_passed": sum(r.baseline_ok for r in results),
        "tasks": len(tasks),
        "detected": sum(t.detected for t in tasks),
        "build_failed": sum(t.how == "build-failed" for t in tasks),
        "seconds": round(sum(r.seconds for r in results), 1),
        "results": msgspec.to_builtins(results),
    }


def table(results: list[LibraryResult]) -> str:
    lines = [f"{'library':<14} {'build':<9} {'baseline':>9} {'tasks':>6} {'detected':>9} {'seconds':>8}"]
    for r in results:
        base = f"{r.baseline_seconds:.1f}s" if r.baseline_ok else "FAILED"
        found = sum(t.detected for t in r.tasks)
        lines.append(f"{r.name:<14} {r.build:<9} {base:>9} {len(r.tasks):>6} {found:>9} {r.seconds:>8.1f}")
    for r in results:
        if r.detail:
            lines.append(f"\n{r.name}: {r.detail[-1500:]}")
        for t in r.tasks:
            if not t.detected or t.how in ("build-failed", "timeout"):
                lines.append(f"  {r.name} {t.unit}:{t.function}: {t.how} {t.detail[-200:]}")
    total = sum(len(r.tasks) for r in results)
    found = sum(t.detected for r in results for t in r.tasks)
    lines.append(f"\n{found}/{total} tasks detected; {sum(r.baseline_ok for r in results)}/{len(results)} "
                 f"baselines passed; {sum(r.seconds for r in results):.0f}s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cra.bench.repos.verify", description=__doc__.split("\n")[0])
    parser.add_argument("--library", action="append", default=None, metavar="NAME",
                        help="only this library (repeatable; default: all)")
    parser.add_argument("--task", action="append", default=None, metavar="UNIT:FUNCTION",
                        help="check these tasks instead of the manifest's (needs exactly one --library); "
                             "for choosing new tasks")
    parser.add_argument("--cache-dir", default=None, help="where fetched trees are kept "
                                                          "(default ${XDG_CACHE_HOME:-~/.cache}/cra/repos)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel build/test jobs (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temp copies and name them in the report")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        libs = [library(n) for n in args.library] if args.library else list(LIBRARIES)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("--jobs must be at least 1", file=sys.stderr)
        return 2
    tasks = None
    if args.task:
        if len(libs) != 1:
            print("--task needs exactly one --library", file=sys.stderr)
            return 2
        specs = [spec.rsplit(":", 1) for spec in args.task]
        bad = [spec for spec, parts in zip(args.task, specs) if len(parts) != 2 or not all(parts)]
        if bad:
            print(f"--task takes UNIT:FUNCTION (e.g. src/file.c:name), not {bad[0]!r}", file=sys.stderr)
            return 2
        tasks = [RepoTask(unit, function) for unit, function in specs]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = [verify_library(lib, cache=args.cache_dir, jobs=args.jobs, keep=args.keep, tasks=tasks, log=log)
               for lib in libs]
    report = summary(results)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(table(results))
    ok = report["baselines_passed"] == report["libraries"] and report["detected"] == report["tasks"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
