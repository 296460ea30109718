"""`cra bench quality`: does the staged pipeline write code that passes real tests, against one naive prompt?

Tasks come from real C code with its own C tests, downloaded from PyPI on first run (see bench/quality_tasks.py):
implement tasks blank a function the unit's tests exercise (confirmed: the tests then fail) and ask the
`implement` action for it; tests tasks ask the `tests` action for unit tests of a function, which must compile,
pass on the original and fail on the blanked version. Every attempt is judged by gcc and the real tests in the
sandbox, never by a model. Each task also runs a naive baseline on the same model and engine: the whole file (cut
to the context window) and "implement X" / "write tests for X" in one generate call, its code block used as is.
Per task and in total: pass rate, compile rate, seconds, tokens in/out/cached, per stage from the call log.
`--ab A.toml B.toml` (or a preset) runs the same tasks under two configs and reports both and B − A.
`--suite repos` runs real C libraries as found instead (cra.bench.repos.run): `cra run implement` as a user types
it, untrusted and trusted, the naive prompt, and the oracle (cra's validation on the original body), all judged by
each library's own test command.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from cra.bench.quality_naive import naive_implement, naive_tests
from cra.bench.quality_report import Row, StageStats, ab_deltas, markdown, side_summary, stage_stats, targets
from cra.bench.quality_tasks import (
    IMPLEMENT_TASKS,
    LIBRARIES,
    TESTS_TASKS,
    Judgement,
    QualityError,
    TaskSpec,
    TaskWorkspace,
    build_workspace,
    confirm,
    default_cache_dir,
    judge_generated_tests,
    judge_unit,
    obtain,
)
from cra.pipeline.actions import ActionRequest
from cra.pipeline.config import ROLES, Config, ConfigError, load_config
from cra.pipeline.engine import Engine, EngineError

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
PRESETS = ("coder-vs-generalist", "adapter-vs-none", "tier-0.5b-vs-1.5b")
NAIVE_MARGIN_TOKENS = 64  # room between the naive prompt + answer and the context window


class Side(msgspec.Struct, frozen=True):
    """One configuration the tasks run under."""

    name: str  # "main", "A", "B"
    label: str
    config_path: str | None = None  # a cra.toml replacing the workspace layer
    models: dict[str, str] | None = None  # role -> model reference, when the side fixes the models
    drop_adapters: bool = False
    user_config: bool = False  # take the user's config dir layer (the adapter table lives there)


SUITES = ("pypi", "repos")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="pypi", choices=SUITES,
                        help="pypi (default): C units from PyPI packages, the pipeline handed flags and tests; "
                             "repos: real C libraries as found (Debian source packages), `cra run` as a user "
                             "types it, judged by each library's own tests")
    parser.add_argument("--model", default=None,
                        help=f"registry name or GGUF path for every role (default {DEFAULT_MODEL}; "
                             "qwen2.5-coder-1.5b also works)")
    parser.add_argument("--tasks", type=int, default=None, help="at most N tasks of each kind (default: all)")
    parser.add_argument("--only", choices=("implement", "tests"), default=None, help="run one kind of task")
    parser.add_argument("--call-timeout", type=float, default=900.0,
                        help="seconds per model call, for every role (default 900: this benchmark measures quality, "
                             "and a busy machine should not turn slow calls into failures; seconds are reported)")
    parser.add_argument("--function", action="append", default=None, metavar="NAME",
                        help="only the tasks on this function (repeatable), e.g. to re-run a task")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cache-dir", default=default_cache_dir(), help="where the downloaded packages are kept")
    parser.add_argument("--ab", nargs="+", metavar="CONFIG", default=None,
                        help=f"A/B run: two cra.toml files, or a preset ({', '.join(PRESETS)})")
    parser.add_argument("--generalist", default=None,
                        help="model for the B side of coder-vs-generalist (registry name or GGUF path)")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds; no new task starts after this (the report says how many ran)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the task workspaces (with each one's .cra/calls.db) and name them in the report")
    repos = parser.add_argument_group("--suite repos")
    repos.add_argument("--library", action="append", default=None, metavar="NAME",
                       help="only this library's tasks (repeatable)")
    repos.add_argument("--task", action="append", default=None, metavar="LIB:FUNCTION",
                       help="only this task (repeatable, run in the order given), e.g. cjson:parse_hex4")
    repos.add_argument("--columns", default=None, metavar="LIST",
                       help="comma-separated, of oracle,untrusted,trusted,naive (default: all)")
    repos.add_argument("--limit", type=int, default=None, help="at most N tasks")
    repos.add_argument("--jobs", type=int, default=None,
                       help="parallel build/test jobs of each library's test command (default 1)")


# ---- sides ---------------------------------------------------------------------------------------------------------
def resolve_model(ref: str) -> str:
    """A GGUF path for --model: an existing file, or an installed registry model."""
    path = Path(ref).expanduser()
    if path.is_file():
        return str(path.resolve())
    from cra.pipeline.models.registry import entry, find_installed

    installed = find_installed(ref)
    if installed is not None:
        return str(installed)
    hint = "run `cra models install " + ref + "`" if entry(ref) else "give a GGUF path or a registry name"
    raise QualityError(f"model {ref!r} is not available: {hint}")


def all_roles(model: str) -> dict[str, str]:
    return {role: model for role in ROLES}


def sides_for(args: argparse.Namespace) -> list[Side]:
    args.model = args.model or DEFAULT_MODEL
    model = resolve_model(args.model)
    if not args.ab:
        return [Side(name="main", label=args.model, models=all_roles(model))]
    if len(args.ab) == 2:
        for path in args.ab:
            if not Path(path).is_file():
                raise QualityError(f"--ab: {path} is not a file (give two cra.toml files or one preset)")
        return [Side(name=n, label=p, config_path=str(Path(p).resolve()),
                     models=None if _names_models(p) else all_roles(model)) for n, p in zip("AB", args.ab)]
    preset = args.ab[0]
    if len(args.ab) != 1 or preset not in PRESETS:
        raise QualityError(f"--ab takes two cra.toml files or one preset of: {', '.join(PRESETS)}")
    if preset == "tier-0.5b-vs-1.5b":
        return [Side("A", "qwen2.5-coder-0.5b", models=all_roles(resolve_model("qwen2.5-coder-0.5b"))),
                Side("B", "qwen2.5-coder-1.5b", models=all_roles(resolve_model("qwen2.5-coder-1.5b")))]
    if preset == "coder-vs-generalist":
        if not args.generalist:
            raise QualityError("coder-vs-generalist needs --generalist MODEL (the generalist for generation)")
        general = resolve_model(args.generalist)
        return [Side("A", f"coder {args.model}", models=all_roles(model)),
                Side("B", f"generalist {args.generalist}",
                     models={**all_roles(model), "coding": general, "reasoning": general})]
    return [Side("A", "adapters (user config)", models=all_roles(model), user_config=True),
            Side("B", "no adapters", models=all_roles(model), user_config=True, drop_adapters=True)]


def _names_models(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return bool(tomllib.load(handle).get("models"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise QualityError(f"{path}: cannot read it as TOML: {exc}") from None


def config_for(side: Side, ws: TaskWorkspace, call_timeout: float | None = None) -> Config:
    """The side's config for one task workspace: the benchmark fixes validation (the package's own test build)
    and, when given, every role's call timeout; the side fixes models and adapters."""
    from cra.pipeline.config import ROLES

    overrides: dict[str, Any] = {"validation": {"flags": ws.flags, "test_command": ws.test_command()}}
    models: dict[str, dict[str, Any]] = {}
    for role, ref in (side.models or {}).items():
        models.setdefault(role, {})["model"] = ref
    if call_timeout is not None:
        for role in ROLES:
            models.setdefault(role, {})["default_timeout"] = call_timeout
    if models:
        overrides["models"] = models
    try:
        config = load_config(ws.root, overrides=overrides, path=side.config_path, user=side.user_config)
    except ConfigError as exc:
        raise QualityError(f"side {side.name} ({side.label}): {exc}") from None
    if side.drop_adapters:
        stages = {k: msgspec.structs.replace(v, adapter=None) for k, v in config.stages.items()}
        config = msgspec.structs.replace(config, adapters={}, stages=stages)
    return config


def has_adapters(config: Config) -> bool:
    from cra.pipeline.config import STAGES

    return any(config.adapter_for(stage) for stage in STAGES)


# ---- running one task ---------------------------------------------------------------------------------------------
def _row(side: Side, spec: TaskSpec, mode: str, judgement: Judgement, seconds: float,
         stages: dict[str, StageStats], attempts: int) -> Row:
    library = LIBRARIES[spec.library]
    return Row(side=side.name, task=spec.id, kind=spec.kind, mode=mode, package=library.package,
               version=library.version, file=spec.source, function=spec.function, compiled=judgement.compiled,
               passed=judgement.passed, seconds=round(seconds, 2),
               tokens_in=sum(s.tokens_in for s in stages.values()),
               tokens_out=sum(s.tokens_out for s in stages.values()),
               cached_tokens=sum(s.cached_tokens for s in stages.values()), attempts=attempts, stages=stages,
               detail=judgement.detail[-300:])


def run_pipeline(side: Side, ws: TaskWorkspace, config: Config, engine: Engine) -> Row:
    """The action through the runtime (trusted: the test command is the benchmark's own gcc line), judged by the
    unit's real tests (implement) or by running the generated tests on the original and the blanked code."""
    from cra.pipeline.runtime import Workspace

    spec = ws.spec
    text = ws.blanked if spec.kind == "implement" else ws.original
    workspace = Workspace(ws.root, config=config, engine=engine)
    try:
        started = time.perf_counter()
        result = workspace.run(ActionRequest(action=spec.kind, path=ws.unit_path, text=text, root=ws.root,
                                             symbol=spec.function), trusted=True)
        seconds = time.perf_counter() - started
        calls = workspace.log.calls(task_id=result.task_id, newest_first=False) if result.task_id else []
    finally:
        workspace.close()
    main_stage = "implement" if spec.kind == "implement" else "test_generation"
    attempts = sum(1 for c in calls if c.stage == main_stage)
    failed = Judgement(compiled=result.verdict.compiled is True, passed=False,
                       detail=result.error or result.verdict.message)
    if spec.kind == "implement":
        judgement = judge_unit(ws, result.new_text) if result.ok and result.new_text else failed
    elif result.ok and result.files:
        judgement, _ = judge_generated_tests(ws, result.files[0].text)
    else:
        judgement = failed
    return _row(side, spec, "pipeline", judgement, seconds, stage_stats(calls), attempts)


def context_window(model_path: str, configured: int) -> int:
    """The window the engine will use: the configured one, capped by the model's training context (as the
    engine caps it)."""
    from cra.pipeline.models.gguf_info import GGUFError, read_gguf_info

    try:
        info = read_gguf_info(model_path)
    except GGUFError:
        return configured
    trained = info.metadata.get(f"{info.architecture}.context_length")
    return min(configured, int(trained)) if trained else configured


def run_naive(side: Side, ws: TaskWorkspace, config: Config, engine: Engine) -> Row:
    from cra.pipeline.router import ModelRouter

    spec = ws.spec
    stage = "implement" if spec.kind == "implement" else "test_generation"
    route = ModelRouter(config, root=ws.root).route(stage)
    max_tokens = route.params.max_tokens
    budget = context_window(route.model.path, route.model.n_ctx) - max_tokens - NAIVE_MARGIN_TOKENS
    filename = Path(spec.source).name
    started = time.perf_counter()
    try:
        answer = _ask_naive(engine, route.model, ws, filename, budget, max_tokens)
    except EngineError as exc:  # e.g. the file's target alone does not fit the window: a failed attempt
        return _row(side, spec, "naive", Judgement(False, False, f"engine: {exc}"), time.perf_counter() - started,
                    {"naive": StageStats(calls=1)}, 1)
    if spec.kind == "implement":
        judgement = judge_unit(ws, answer.text) if answer.text else Judgement(False, False, answer.error)
    else:
        judgement = (judge_generated_tests(ws, answer.text)[0] if answer.text
                     else Judgement(False, False, answer.error))
    seconds = time.perf_counter() - started
    st = answer.generation.stats
    stages = {"naive": StageStats(calls=1, tokens_in=st.tokens_in, tokens_out=st.tokens_out,
                                  cached_tokens=st.cached_tokens, seconds=round(st.prefill_s + st.decode_s, 3))}
    if answer.truncated_file:
        judgement.detail = ("file cut to the context window; " + judgement.detail).strip()
    return _row(side, spec, "naive", judgement, seconds, stages, 1)


def _ask_naive(engine: Engine, model: Any, ws: TaskWorkspace, filename: str, budget: int, max_tokens: int) -> Any:
    spec = ws.spec
    if spec.kind == "implement":
        return naive_implement(engine, model, blanked=ws.blanked, function=spec.function,
                               filename=filename, budget=budget, max_tokens=max_tokens)
    return naive_tests(engine, model, original=ws.original, function=spec.function, filename=filename,
                       budget=budget, max_tokens=max_tokens)


# ---- the benchmark -------------------------------------------------------------------------------------------------
def select_tasks(only: str | None, limit: int | None, functions: list[str] | None = None) -> list[TaskSpec]:
    """Up to `limit` tasks of each kind (on `functions` only, when given), interleaved (two implement, one tests)
    so that a time budget that stops the run early still leaves both kinds measured."""
    def wanted(specs: list[TaskSpec]) -> list[TaskSpec]:
        return [s for s in specs if not functions or s.function in functions][:limit]

    implement = wanted(IMPLEMENT_TASKS) if only in (None, "implement") else []
    tests = wanted(TESTS_TASKS) if only in (None, "tests") else []
    chosen: list[TaskSpec] = []
    while implement or tests:
        chosen += implement[:2] + tests[:1]
        implement, tests = implement[2:], tests[1:]
    return chosen


def prepare(specs: list[TaskSpec], cache_dir: str, work_dir: str,
            source_roots: dict[str, Path] | None = None) -> tuple[list[TaskWorkspace], list[dict[str, str]]]:
    """Build and confirm every task; returns the usable ones and the dropped ones with the reason."""
    roots = dict(source_roots or {})
    usable: list[TaskWorkspace] = []
    dropped: list[dict[str, str]] = []
    for i, spec in enumerate(specs):
        library = LIBRARIES[spec.library]
        if spec.library not in roots:
            roots[spec.library] = obtain(library, cache_dir)
        try:
            ws = build_workspace(spec, library, roots[spec.library], Path(work_dir) / f"task{i:02d}")
        except QualityError as exc:
            dropped.append({"task": spec.id, "reason": str(exc)})
            continue
        reason = confirm(ws)
        if reason:
            dropped.append({"task": spec.id, "reason": reason})
        else:
            usable.append(ws)
    return usable, dropped


def run(args: argparse.Namespace, *, engine: Engine | None = None, source_roots: dict[str, Path] | None = None,
        sides: list[Side] | None = None) -> dict[str, Any]:
    """The whole benchmark; returns the report object. `engine`/`source_roots`/`sides` let tests supply their
    own (a tiny model, a local project) instead of the defaults."""
    started = time.monotonic()
    sides = sides or sides_for(args)
    specs = select_tasks(args.only, args.tasks, args.function)
    if args.function and not specs:
        known = sorted({t.function for t in IMPLEMENT_TASKS + TESTS_TASKS})
        raise QualityError(f"no task on {', '.join(args.function)} (tasks are on: {', '.join(known)})")
    if args.call_timeout is not None and args.call_timeout <= 0:
        raise QualityError(f"--call-timeout must be positive, got {args.call_timeout}")
    work_dir = tempfile.mkdtemp(prefix="cra-bench-quality-")
    try:
        workspaces, dropped = prepare(specs, args.cache_dir, work_dir, source_roots)
        if args.ab and sides[0].drop_adapters is False and sides[-1].drop_adapters and workspaces:
            if not has_adapters(config_for(sides[0], workspaces[0])):
                raise QualityError("adapter-vs-none: the A side has no adapter for any stage; add an [adapters] "
                                   "table to your user cra.toml, or use --ab A.toml B.toml")
        if engine is None:
            from cra.pipeline.engine import LocalEngine

            engine = LocalEngine()
        rows: list[Row] = []
        budget = args.time_budget
        stopped_early = False
        for side in sides:
            for ws in workspaces:
                if budget is not None and time.monotonic() - started > budget:
                    stopped_early = True
                    break
                config = config_for(side, ws, args.call_timeout)
                rows.append(run_pipeline(side, ws, config, engine))
                if not args.no_naive:
                    rows.append(run_naive(side, ws, config, engine))
    finally:
        if not getattr(args, "keep_work", False):
            shutil.rmtree(work_dir, ignore_errors=True)
    summaries = {side.name: side_summary([r for r in rows if r.side == side.name]) for side in sides}
    report: dict[str, Any] = {
        "model": args.model or DEFAULT_MODEL,
        "sides": summaries,
        "side_labels": {side.name: side.label for side in sides},
        "targets": targets(summaries[sides[0].name]),
        "tasks_requested": len(specs),
        "tasks_run": len({r.task for r in rows}),
        "stopped_by_time_budget": stopped_early,
        "dropped": dropped,
        "call_timeout_s": args.call_timeout,
        "wall_seconds": round(time.monotonic() - started, 1),
        "packages": sorted({f"{LIBRARIES[s.library].package}=={LIBRARIES[s.library].version}" for s in specs}),
        "judge": "gcc + the package's own tests (implement); generated tests pass on the original and fail on "
                 "the blanked function (tests)",
        "rows": [msgspec.to_builtins(r) for r in rows],
    }
    if getattr(args, "keep_work", False):
        report["work_dir"] = work_dir
    if len(sides) == 2:
        report["ab"] = {"a": sides[0].label, "b": sides[1].label,
                        "deltas": ab_deltas(summaries[sides[0].name], summaries[sides[1].name])}
        report["targets_b"] = targets(summaries[sides[1].name])
    return report


REPOS_ONLY = ("library", "task", "columns", "limit", "jobs")
# --model too: the repos suite runs cra as installed, on its default models (the naive prompt on the same one).
PYPI_ONLY = ("model", "tasks", "only", "function", "ab", "generalist", "no_naive")


def check_suite(args: argparse.Namespace) -> None:
    """Options of one suite given to the other are an error, not silently ignored."""
    suite = getattr(args, "suite", "pypi")
    if suite not in SUITES:
        raise QualityError(f"--suite {suite!r}: unknown suite (suites: {', '.join(SUITES)})")
    foreign = PYPI_ONLY if suite == "repos" else REPOS_ONLY
    given = [name for name in foreign if getattr(args, name, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise QualityError(f"{flags}: not an option of --suite {suite}")


def run_repos(args: argparse.Namespace, **kwargs: Any) -> dict[str, Any]:
    """The `repos` suite (cra.bench.repos.run) with this command's options."""
    from cra.bench.repos.run import COLUMNS, RepoRunOptions, parse_columns, run_suite, select

    columns = parse_columns(args.columns) if args.columns is not None else list(COLUMNS)
    jobs = 1 if args.jobs is None else args.jobs
    if jobs < 1:
        raise QualityError(f"--jobs must be at least 1, got {jobs}")
    if args.time_budget is not None and args.time_budget <= 0:
        raise QualityError(f"--time-budget must be positive, got {args.time_budget}")
    chosen = select(args.library, args.task, args.limit, kwargs.pop("manifest", None))
    if not chosen:
        raise QualityError("no task selected")
    options = RepoRunOptions(columns=columns, jobs=jobs, keep_work=bool(args.keep_work))
    return run_suite(chosen, options, time_budget=args.time_budget, **kwargs)


def main(args: argparse.Namespace) -> int:
    try:
        check_suite(args)
        if args.suite == "repos":
            from cra.bench.repos.report import markdown as repos_markdown

            report = run_repos(args, log=lambda msg: print(msg, file=sys.stderr, flush=True))
            print(json.dumps(report) if args.json else repos_markdown(report))
            return 0
        report = run(args)
    except QualityError as exc:
        print(f"cra bench quality: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else markdown(report))
    return 0


if __name__ == "__main__":  # pragma: no cover - `cra bench quality` is the entry point
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(main(parser.parse_args()))
