"""`cra bench quality --suite repos`: cra on real C libraries as found, judged by each library's own tests.

Per task (one function of one library of `cra.bench.repos.manifest`), each column works in its own fresh temp
copy of the pristine tree with the function blanked:
- untrusted / trusted: exactly what a user types, as a subprocess in the copy: `cra run implement UNIT --symbol
  FUNCTION --apply` (`--trust` for the trusted column; `--json` only so the outcome can be read). No config, no
  flags, no test command are handed over, and a fresh config dir keeps the user's cra.toml out. The tree cra
  leaves is then judged by the library's own test command; cra's own verdict and the call log of the copy (rounds,
  tokens per stage) are recorded beside it.
- naive: the single naive prompt on the model cra's implement stage uses, its definition put in place of the stub,
  judged by the library's test command.
- oracle: the original body put back as if the model had written it, and cra's validation run on it as the
  implement flow runs it (untrusted and trusted): how often cra wrongly rejects correct code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from cra.bench.quality_report import StageStats, stage_stats
from cra.bench.quality_tasks import QualityError
from cra.bench.repos.fetch import FetchError, fetch
from cra.bench.repos.manifest import LIBRARIES, RepoLibrary, RepoTask
from cra.bench.repos.verify import RunResult, blank_in_tree, copy_tree, run_command, run_env

COLUMNS = ("oracle", "untrusted", "trusted", "naive")
# Beyond the headless client's own 900 s limit for one action: a run still going after this is killed.
PIPELINE_TIMEOUT_S = 1200.0
REASON_CHARS = 400


class Cell(msgspec.Struct, kw_only=True):
    """One column's result on one task.

    passed: untrusted/trusted/naive: the library's own test command passes on the tree the column left;
    oracle-*: cra's validation accepted the original body. compiled: the judged tree built (no compiler or linker
    error in the test command's output); for a pipeline run that wrote nothing, cra's own `compiled`.
    """

    column: str  # "oracle-untrusted" | "oracle-trusted" | "untrusted" | "trusted" | "naive"
    passed: bool
    compiled: bool | None
    seconds: float  # the column's own work (cra run / the naive call / cra's validation), not the judge
    reason: str = ""  # why it did not pass (the judge's or cra's words); empty when it passed
    judge: str = ""  # the library's test command: "passed" | "tests-failed" | "build-failed" | "timeout"
    judge_seconds: float = 0.0
    cra_ok: bool | None = None  # cra's own verdict: accepted (and, with --apply, written)
    cra_kind: str = ""  # oracle: the failed check ("ok", "compile", "test", ...); pipeline: "timeout"/"error"
    cra_verdict: str = ""  # cra's verdict message as it printed it
    cra_tests_passed: bool | None = None  # cra's own test run passed (None: it ran none, e.g. "tests not run")
    written: bool | None = None  # the pipeline wrote the file
    rounds: int | None = None  # adjustment rounds, from the copy's call log
    round_reasons: list[str] = []  # why each round ran (the call log's note on the move to the adjust state)
    # Rounds spent on a failure cra's validation also reports for the original body (same trust, same kind: the
    # oracle cell): a failure the change did not cause. None: not measured (no oracle cell for the task).
    baseline_rounds: int | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    stages: dict[str, StageStats] = {}
    root: str = ""  # oracle: the workspace root the validation ran on (relative to the tree)


class TaskRow(msgspec.Struct, kw_only=True):
    task: str  # RepoLibrary.task_id
    library: str
    build: str
    shapes: list[str]
    unit: str
    function: str
    cells: list[Cell] = []
    error: str = ""  # the task could not be set up (fetch failed, function not found): why


class RepoRunOptions(msgspec.Struct, kw_only=True):
    columns: list[str] = msgspec.field(default_factory=lambda: list(COLUMNS))
    jobs: int = 1  # parallel build/test jobs of the judge's test command
    cache: str | None = None  # where fetched trees are kept (fetch's default when None)
    keep_work: bool = False
    pipeline_timeout: float = PIPELINE_TIMEOUT_S


# ---- choosing tasks --------------------------------------------------------------------------------------------------
def parse_columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in COLUMNS]
    if not names or bad:
        raise QualityError(f"--columns: {'unknown column ' + ', '.join(map(repr, bad)) if bad else 'empty'} "
                           f"(columns: {','.join(COLUMNS)})")
    return [c for c in COLUMNS if c in names]


def select(libraries: list[str] | None, tasks: list[str] | None, limit: int | None,
           manifest: list[RepoLibrary] | None = None) -> list[tuple[RepoLibrary, RepoTask]]:
    """The manifest's tasks, narrowed to `libraries`, to `tasks` ("LIB:FUNCTION", run in the order given) and to
    the first `limit`."""
    libs = list(manifest if manifest is not None else LIBRARIES)
    by_name = {lib.name: lib for lib in libs}
    have = ", ".join(by_name)
    for name in libraries or []:
        if name not in by_name:
            raise QualityError(f"--library: no library {name!r} in the repos manifest (have: {have})")
    if limit is not None and limit < 1:
        raise QualityError(f"--limit must be at least 1, got {limit}")
    wanted: list[tuple[str, str]] = []
    for spec in tasks or []:
        lib_name, sep, function = spec.partition(":")
        if not sep or not lib_name or not function:
            raise QualityError(f"--task {spec!r}: give LIBRARY:FUNCTION, e.g. cjson:parse_hex4")
        if lib_name not in by_name:
            raise QualityError(f"--task {spec!r}: no library {lib_name!r} in the repos manifest (have: {have})")
        if function not in {t.function for t in by_name[lib_name].tasks}:
            known = ", ".join(t.function for t in by_name[lib_name].tasks)
            raise QualityError(f"--task {spec!r}: {lib_name} has no task on {function} (its tasks: {known})")
        if (lib_name, function) not in wanted:
            wanted.append((lib_name, function))
    chosen = [(lib, task) for lib in libs for task in lib.tasks
              if (not libraries or lib.name in libraries) and (not wanted or (lib.name, task.function) in wanted)]
    if wanted:  # the order the user named them in: a time budget then cuts the last ones
        chosen.sort(key=lambda pair: wanted.index((pair[0].name, pair[1].function)))
    return chosen[:limit] if limit is not None else chosen


# ---- one task ----------------------------------------------------------------------------------------------------
class _Prepared(msgspec.Struct):
    tree: Path
    original: str  # the unit's text before blanking
    blanked: str


def _prepare(pristine: Path, work: Path, lib: RepoLibrary, task: RepoTask) -> _Prepared:
    tree = copy_tree(pristine, work / pristine.name)
    original = blank_in_tree(tree, task, stub=lib.stub)
    blanked = (tree / task.unit).read_text(errors="surrogateescape")
    return _Prepared(tree=tree, original=original, blanked=blanked)


def judge(lib: RepoLibrary, tree: Path, jobs: int) -> tuple[RunResult, str]:
    """The library's own test command on `tree`: its result and its kind ("passed", "tests-failed",
    "build-failed" or "timeout")."""
    result = run_command(lib.test_command, tree, lib.timeout_seconds, run_env(jobs))
    if result.passed:
        return result, "passed"
    if result.returncode is None:
        return result, "timeout"
    return result, "build-failed" if result.build_errors else "tests-failed"


def _judged(cell: Cell, lib: RepoLibrary, tree: Path, jobs: int, *, wrote: bool) -> Cell:
    result, kind = judge(lib, tree, jobs)
    cell.judge, cell.judge_seconds, cell.passed = kind, result.seconds, kind == "passed"
    if wrote:  # else the tree still has the stub: cra's own word on its code (None: it never compiled any) stands
        cell.compiled = {"passed": True, "tests-failed": True, "build-failed": False}.get(kind)
    if not cell.passed and not cell.reason:
        detail = "; ".join(result.build_errors) if kind == "build-failed" else result.output[-300:]
        cell.reason = f"library tests {kind}: {detail.strip()}"[:REASON_CHARS]
    return cell


def cra_command() -> list[str]:
    """`cra` as the user has it: the console script beside this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / "cra"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cra.clients.cli"]


def run_pipeline(lib: RepoLibrary, task: RepoTask, prep: _Prepared, *, trusted: bool, jobs: int,
                 timeout: float, cra: list[str] | None = None) -> Cell:
    """`cra run implement UNIT --symbol FUNCTION --apply [--trust]` in the copy, then the library's tests."""
    column = "trusted" if trusted else "untrusted"
    argv = [*(cra or cra_command()), "run", "implement", task.unit, "--symbol", task.function, "--apply", "--json"]
    if trusted:
        argv.append("--trust")
    config_home = tempfile.mkdtemp(prefix="cra-repos-config-")  # no user cra.toml: cra as first installed
    env = {**os.environ, "XDG_CONFIG_HOME": config_home}
    started = time.monotonic()
    try:
        done: subprocess.CompletedProcess[str] | None = subprocess.run(
            argv, cwd=prep.tree, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        done = None
    finally:
        shutil.rmtree(config_home, ignore_errors=True)
    seconds = round(time.monotonic() - started, 2)
    cell = Cell(column=column, passed=False, compiled=None, seconds=seconds)
    outcome = _outcome(done.stdout) if done is not None else None
    if done is None:
        cell.cra_kind, cell.cra_verdict = "timeout", f"cra run did not finish in {timeout:.0f} s"
    elif outcome is None:
        cell.cra_kind = "error"
        cell.cra_verdict = f"cra run exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    else:
        verdict = outcome.get("verdict") or {}
        cell.cra_ok = bool(outcome.get("ok"))
        cell.written = cell.cra_ok  # `cra run --apply` writes exactly when the outcome is ok
        cell.compiled = verdict.get("compiled")
        cell.cra_tests_passed = verdict.get("tests_passed")
        cell.cra_verdict = (verdict.get("message") or outcome.get("error") or "")[:REASON_CHARS]
        cell.cra_kind = "ok" if cell.cra_ok else "failed"
        _read_call_log(cell, prep.tree, str(outcome.get("task_id") or ""))
    if not cell.cra_ok:
        cell.reason = f"cra: {cell.cra_verdict}"[:REASON_CHARS] if cell.cra_verdict else ""
    return _judged(cell, lib, prep.tree, jobs, wrote=bool(cell.written))


def _outcome(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _read_call_log(cell: Cell, tree: Path, task_id: str) -> None:
    """Rounds and tokens per stage from the call log(s) cra left in the copy (under its workspace root)."""
    from cra.pipeline.calllog import CallLog, CallLogError

    calls = []
    rounds = 0
    for path in sorted(tree.rglob(".cra/calls.db")):
        try:
            log = CallLog(path)
        except CallLogError:
            continue
        try:
            calls += log.calls(task_id=task_id or None, newest_first=False)
            if task_id:
                notes = [str(t["note"] or "") for t in log.transitions(task_id) if t["to_state"] == "adjust"]
                rounds += len(notes)
                cell.round_reasons += [n[:REASON_CHARS] for n in notes]
        finally:
            log.close()
    stages = stage_stats(calls)
    cell.stages = stages
    cell.rounds = rounds if task_id else None
    cell.tokens_in = sum(s.tokens_in for s in stages.values())
    cell.tokens_out = sum(s.tokens_out for s in stages.values())
    cell.cached_tokens = sum(s.cached_tokens for s in stages.values())


def run_oracle(task: RepoTask, prep: _Prepared, *, trusted: bool) -> Cell:
    """cra's validation, as the implement flow runs it (the workspace's `[validation]` settings, new warnings
    allowed, tests run), on the original body in place of the stub."""
    from cra.pipeline.config import ConfigError, load_config
    from cra.pipeline.sandbox import CheckOptions, check_change
    from cra.pipeline.sandbox.limits import Limits

    column = "oracle-trusted" if trusted else "oracle-untrusted"
    started = time.monotonic()
    try:
        cfg = load_config(prep.tree, user=False).validation
        lim = cfg.limits
        options = CheckOptions(compiler=cfg.compiler, flags=list(cfg.flags), test_command=cfg.test_command or None,
                               trusted=trusted,
                               limits=Limits(cpu_seconds=lim.cpu_seconds, wall_seconds=lim.wall_seconds,
                                             memory_mb=lim.memory_mb, max_processes=lim.max_processes,
                                             max_output_bytes=lim.max_output_bytes))
        check = check_change(prep.tree, task.unit, prep.original, options, old_text=prep.blanked,
                             function=task.function, allow_new_warnings=True, run_tests=True)
    except (ConfigError, OSError, ValueError, RuntimeError) as exc:
        return Cell(column=column, passed=False, compiled=None, seconds=round(time.monotonic() - started, 2),
                    cra_ok=False, cra_kind="error", cra_verdict=str(exc)[:REASON_CHARS],
                    reason=f"cra's validation raised {type(exc).__name__}: {exc}"[:REASON_CHARS], root=".")
    seconds = round(time.monotonic() - started, 2)
    return Cell(column=column, passed=check.ok, compiled=check.compiled, seconds=seconds, cra_ok=check.ok,
                cra_kind=check.kind, cra_verdict=check.message[:REASON_CHARS], cra_tests_passed=check.tests_passed,
                reason="" if check.ok else f"cra rejected it ({check.kind}): {check.message}"[:REASON_CHARS],
                root=".")


class NaiveRunner:
    """The naive single prompt on the model cra's implement stage routes to (one engine for the whole run)."""

    def __init__(self, engine: Any = None) -> None:
        self._engine = engine

    def engine(self) -> Any:
        if self._engine is None:
            from cra.pipeline.engine import LocalEngine

            self._engine = LocalEngine()
        return self._engine

    def __call__(self, lib: RepoLibrary, task: RepoTask, prep: _Prepared, jobs: int) -> Cell:
        from cra.bench.quality import NAIVE_MARGIN_TOKENS, context_window
        from cra.bench.quality_naive import naive_implement
        from cra.pipeline.config import load_config
        from cra.pipeline.engine import EngineError
        from cra.pipeline.router import ModelRouter

        route = ModelRouter(load_config(prep.tree, user=False), root=prep.tree).route("implement")
        max_tokens = route.params.max_tokens
        budget = context_window(route.model.path, route.model.n_ctx) - max_tokens - NAIVE_MARGIN_TOKENS
        started = time.monotonic()
        try:
            answer = naive_implement(self.engine(), route.model, blanked=prep.blanked, function=task.function,
                                     filename=Path(task.unit).name, budget=budget, max_tokens=max_tokens)
        except EngineError as exc:
            return Cell(column="naive", passed=False, compiled=False, seconds=round(time.monotonic() - started, 2),
                        reason=f"engine: {exc}"[:REASON_CHARS])
        st = answer.generation.stats
        stages = {"naive": StageStats(calls=1, tokens_in=st.tokens_in, tokens_out=st.tokens_out,
                                      cached_tokens=st.cached_tokens, seconds=round(st.prefill_s + st.decode_s, 3))}
        cell = Cell(column="naive", passed=False, compiled=None, seconds=round(time.monotonic() - started, 2),
                    tokens_in=st.tokens_in, tokens_out=st.tokens_out, cached_tokens=st.cached_tokens, stages=stages,
                    rounds=0)
        if not answer.text:
            cell.compiled, cell.reason = False, f"naive: {answer.error}"[:REASON_CHARS]
            return cell
        (prep.tree / task.unit).write_text(answer.text, errors="surrogateescape")
        return _judged(cell, lib, prep.tree, jobs, wrote=True)


def run_task(lib: RepoLibrary, task: RepoTask, pristine: Path, work: Path, options: RepoRunOptions, *,
             naive: NaiveRunner | None = None, cra: list[str] | None = None,
             log: Callable[[str], None] | None = None) -> TaskRow:
    say = log or (lambda _msg: None)
    row = TaskRow(task=lib.task_id(task), library=lib.name, build=lib.build, shapes=list(lib.shapes),
                  unit=task.unit, function=task.function)
    work.mkdir(parents=True, exist_ok=True)
    try:
        if "oracle" in options.columns:
            prep = _prepare(pristine, work / "oracle", lib, task)
            for trusted in (False, True):
                row.cells.append(run_oracle(task, prep, trusted=trusted))
                say(f"{row.task}: {row.cells[-1].column}: {_brief(row.cells[-1])}")
        for column in ("untrusted", "trusted"):
            if column in options.columns:
                prep = _prepare(pristine, work / column, lib, task)
                row.cells.append(run_pipeline(lib, task, prep, trusted=column == "trusted", jobs=options.jobs,
                                              timeout=options.pipeline_timeout, cra=cra))
                say(f"{row.task}: {column}: {_brief(row.cells[-1])}")
        if "naive" in options.columns:
            prep = _prepare(pristine, work / "naive", lib, task)
            row.cells.append((naive or NaiveRunner())(lib, task, prep, options.jobs))
            say(f"{row.task}: naive: {_brief(row.cells[-1])}")
    except QualityError as exc:
        row.error = str(exc)
    count_baseline_rounds(row.cells)
    return row


# What a round's reason says failed (the validation's message kinds).
_REASON_KINDS = (("compile", ("does not compile",)), ("test", ("tests failed", "tests did not pass")),
                 ("warnings", ("new warnings",)), ("timeout", ("timeout", "timed out")))


def reason_kind(reason: str) -> str:
    text = reason.lower()
    return next((kind for kind, marks in _REASON_KINDS if any(m in text for m in marks)), "other")


def count_baseline_rounds(cells: list[Cell]) -> None:
    """Each pipeline cell's rounds spent on a failure the original body also gets from cra's validation: when the
    oracle (same trust) was rejected for kind K, the rounds whose reason is a K failure. Needs the oracle cells."""
    oracle = {c.column: c for c in cells if c.column.startswith("oracle-")}
    for cell in cells:
        twin = oracle.get(f"oracle-{cell.column}")
        if cell.column not in ("untrusted", "trusted") or twin is None or cell.rounds is None:
            continue
        rejected = "" if twin.passed else twin.cra_kind
        cell.baseline_rounds = sum(1 for r in cell.round_reasons if rejected and reason_kind(r) == rejected)


def _brief(cell: Cell) -> str:
    return f"{'passed' if cell.passed else 'failed'} in {cell.seconds:.1f}s" + (f" ({cell.reason[:120]})"
                                                                                 if cell.reason else "")


def run_suite(chosen: list[tuple[RepoLibrary, RepoTask]], options: RepoRunOptions, *,
              trees: dict[str, Path] | None = None, naive: NaiveRunner | None = None, cra: list[str] | None = None,
              time_budget: float | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every chosen task through the chosen columns; the report object (see `cra.bench.repos.report`).
    `trees` maps a library name to its pristine tree (tests use a local fixture instead of a fetched package)."""
    from cra.bench.repos.report import summarize_suite

    started = time.monotonic()
    say = log or (lambda _msg: None)
    pristine: dict[str, Path | str] = dict(trees or {})
    naive = naive or (NaiveRunner() if "naive" in options.columns else None)
    work = Path(tempfile.mkdtemp(prefix="cra-bench-repos-"))
    rows: list[TaskRow] = []
    stopped_early = False
    try:
        for i, (lib, task) in enumerate(chosen):
            if time_budget is not None and time.monotonic() - started > time_budget:
                stopped_early = True
                break
            if lib.name not in pristine:
                try:
                    pristine[lib.name] = fetch(lib.package, lib.version, options.cache)
                except FetchError as exc:
                    pristine[lib.name] = f"fetch failed: {exc}"
            source = pristine[lib.name]
            if isinstance(source, str):
                rows.append(TaskRow(task=lib.task_id(task), library=lib.name, build=lib.build,
                                    shapes=list(lib.shapes), unit=task.unit, function=task.function, error=source))
                continue
            rows.append(run_task(lib, task, source, work / f"task{i:03d}", options, naive=naive, cra=cra, log=say))
            if not options.keep_work:
                shutil.rmtree(work / f"task{i:03d}", ignore_errors=True)
    finally:
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    report = summarize_suite(rows, options.columns)
    report.update({"suite": "repos", "tasks_requested": len(chosen), "tasks_run": len(rows),
                   "stopped_by_time_budget": stopped_early, "wall_seconds": round(time.monotonic() - started, 1),
                   "jobs": options.jobs,
                   "libraries": sorted({f"{lib.package}={lib.version}" for lib, _ in chosen}),
                   "judge": "each library's own test command (RepoLibrary.test_command) on the tree a column left"})
    if options.keep_work:
        report["work_dir"] = str(work)
    return report
