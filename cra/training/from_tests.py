"""`cra curate-data --from-tests`: implement-stage (A6) training pairs that the workspace's own tests verify.

For each function of a library unit (a non-test C file the tests build), its body is blanked the way the benchmark
blanks one (a zero-value stub) and the project's tests run on that change in a sandbox copy; they are judged
against the unchanged tree's run (cached once per tree state). The function is *covered* when the blank makes a
test that passed at baseline fail. Each covered function gives one positive pair: the prompt the implement flow
would send for that stub (its own locate and context steps, then the stage's prompt builder) and the original
body as the answer, verified by construction since the project's tests pass with it. Nothing is written into the
workspace: the blanked text only lives in the sandbox copy and in the prompt's in-memory index.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from cra.bench.quality_tasks import QualityError, blank_function
from cra.pipeline.actions import ActionRequest
from cra.pipeline.config import Config, ConfigError, load_config
from cra.pipeline.context import ContextError, WorkspaceIndex, parse_source
from cra.pipeline.context.packing import estimate_tokens
from cra.pipeline.context.symbols import FUNCTION, Symbol
from cra.pipeline.engine import CancelToken
from cra.pipeline.flows import implement as implement_flow
from cra.pipeline.flows.base import ActionFailed, Task
from cra.pipeline.llm import StageLLM
from cra.pipeline.router import ModelRouter
from cra.pipeline.sandbox.baseline import TestVerdict, baseline_report, judge, program_of
from cra.pipeline.sandbox.discover_units import is_test_file, source_files
from cra.pipeline.sandbox.flags import flags_for, restrict_untrusted
from cra.pipeline.sandbox.limits import Limits, SandboxError
from cra.pipeline.sandbox.test_report import TestRunReport
from cra.pipeline.sandbox.testplan import detect_tests
from cra.pipeline.sandbox.testrun import run_tests
from cra.pipeline.stages import implement as a6
from cra.pipeline.stages.registry import spec_for
from cra.training.curate import (
    MANIFEST,
    CurateOptions,
    CurationError,
    Manifest,
    Skipped,
    StageCounts,
    export_atomically,
    in_valid_split,
    prompt_digest,
    write_lines,
)

T = TypeVar("T")

SOURCE = "from-tests"
STAGE = a6.SPEC.name
C_SUFFIXES = frozenset({".c"})


class FromTestsError(CurationError):
    """The scan cannot start (bad root, bad config); the message says what to fix."""


class FromTestsOptions(msgspec.Struct, kw_only=True):
    limit: int | None = None  # scan at most this many functions (in path, then source, order)
    trusted: bool = False  # run the project's own build/test commands (else cra's direct gcc builds)
    run_seconds: float = 60.0  # wall-clock limit of one test run (each program / the project's test command)
    valid_fraction: float = 0.1
    force: bool = False


class FunctionScan(msgspec.Struct, kw_only=True):
    path: str  # workspace-relative unit
    name: str
    covered: bool = False
    verified_by: list[str] = []  # the test programs (or program::case) that the blank broke
    skipped: str = ""  # why the function was not judged (cannot be blanked, tests did not run, ...)
    seconds: float = 0.0


class ScanSummary(msgspec.Struct, kw_only=True):
    root: str
    test_kind: str  # how the tests ran: "direct", "cmake", ... or "none"
    baseline: str  # one line: what ran on the unchanged tree
    functions_found: int  # candidate functions in the library units
    scanned: int
    covered: int
    pairs: int
    seconds: float
    token_counter: str  # how the context budget counted tokens for the prompts
    functions: list[FunctionScan] = []


class FromTestsManifest(Manifest, kw_only=True):
    from_tests: ScanSummary


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def curate_from_tests(root: str | Path, out_dir: str | Path, options: FromTestsOptions, *,
                      progress: Progress = _stderr) -> FromTestsManifest:
    """Scan `root`, write `implement.{train,valid}.jsonl` and `manifest.json` into `out_dir`."""
    root_p = _check_root(root)
    if not 0.0 <= options.valid_fraction < 1.0:
        raise FromTestsError(f"--valid-fraction {options.valid_fraction}: must be at least 0 and below 1")
    if options.limit is not None and options.limit < 1:
        raise FromTestsError(f"--limit {options.limit}: must be at least 1")
    if options.run_seconds <= 0:
        raise FromTestsError(f"--run-seconds {options.run_seconds}: must be positive")
    try:
        config = load_config(root_p)
    except ConfigError as exc:
        raise FromTestsError(str(exc)) from None
    return export_atomically(out_dir, force=options.force,
                             build=lambda staging: _scan(root_p, config, staging, options, progress))


def _check_root(root: str | Path) -> Path:
    path = Path(root)
    if not path.exists():
        raise FromTestsError(f"{root}: no such directory")
    if not path.is_dir():
        raise FromTestsError(f"{root}: not a directory")
    return path.resolve()


class _Scanner:
    """What every function's test run shares: the test options, the baseline report, the prompt builder."""

    def __init__(self, root: Path, config: Config, options: FromTestsOptions) -> None:
        self.root = root
        self.config = config
        self.options = options
        cfg = config.validation
        lim = cfg.limits
        # The pipeline's own sandbox limits, with the wall clock this scan allows one run.
        self.limits = Limits(cpu_seconds=min(lim.cpu_seconds, max(1, int(options.run_seconds))),
                             wall_seconds=options.run_seconds, memory_mb=lim.memory_mb,
                             max_processes=lim.max_processes, max_output_bytes=lim.max_output_bytes)
        build = restrict_untrusted(cfg.compiler, list(cfg.flags), root, trusted=options.trusted)
        self.compiler, self.default_flags = build.compiler, build.flags
        self.test_command = cfg.test_command or None
        self.prompts = PromptBuilder(root, config)

    def flags(self, unit: str) -> list[str]:
        """The flags `check_change` would test a change of `unit` with (compile_commands.json, else the config)."""
        found = flags_for(self.root, unit, self.default_flags, trusted=self.options.trusted).flags
        return restrict_untrusted(self.compiler, found, self.root, trusted=self.options.trusted).flags

    def baseline(self, unit: str) -> TestRunReport:
        return baseline_report(self.root, trusted=self.options.trusted, test_command=self.test_command,
                               compiler=self.compiler, flags=self.flags(unit), limits=self.limits)

    def judge_blank(self, unit: str, blanked: str, name: str) -> tuple[TestVerdict, TestRunReport]:
        after = run_tests(self.root, {unit: blanked}, trusted=self.options.trusted, test_command=self.test_command,
                          compiler=self.compiler, flags=self.flags(unit), limits=self.limits)
        return judge(self.baseline(unit), after, target=name), after


def _scan(root: Path, config: Config, out: Path, options: FromTestsOptions, progress: Progress) -> FromTestsManifest:
    started = time.monotonic()
    scanner = _Scanner(root, config, options)
    try:
        plan = detect_tests(root, trusted=options.trusted, test_command=scanner.test_command,
                            compiler=scanner.compiler, flags=scanner.default_flags)
    except SandboxError as exc:
        raise FromTestsError(str(exc)) from None
    units = library_units(root, plan.kind, [p.units for p in plan.programs], [p.source for p in plan.programs])
    candidates = [(unit, fn) for unit in units for fn in candidate_functions(root, unit)]
    summary = ScanSummary(root=str(root), test_kind=plan.kind, baseline="", functions_found=len(candidates),
                          scanned=0, covered=0, pairs=0, seconds=0.0, token_counter="estimate")
    lines: list[tuple[str, str]] = []  # (prompt key, JSONL line)
    if plan.kind == "none":
        summary.baseline = "no tests: " + ("; ".join(plan.not_runnable) or "none found")
        progress(f"cra curate-data --from-tests: {root}: {summary.baseline}; no pairs written")
    else:
        base = scanner.baseline(units[0]) if units else None
        runnable = [p for p in base.programs if p.status in ("passed", "failed", "timeout")] if base else []
        passing = [p.name for p in runnable if p.status == "passed"]
        summary.baseline = (f"{len(passing)} of {len(base.programs)} test programs pass on the unchanged tree "
                            f"({base.command})" if base else "no library units to blank")
        progress(f"from-tests: {root}: {len(candidates)} functions in {len(units)} units; {summary.baseline}")
        if not passing:
            progress("from-tests: no test passes on the unchanged tree, so none can show coverage; no pairs written")
        else:
            todo = candidates[:options.limit] if options.limit is not None else candidates
            for i, (unit, fn) in enumerate(todo, 1):
                scan = _scan_function(scanner, unit, fn, lines)
                summary.functions.append(scan)
                verdict = (f"covered by {', '.join(scan.verified_by[:3])}" if scan.covered
                           else f"skipped: {scan.skipped}" if scan.skipped else "not covered")
                progress(f"[{i}/{len(todo)}] {unit}:{fn.name} {verdict} ({scan.seconds:.1f} s)")
    summary.scanned = len(summary.functions)
    summary.covered = sum(f.covered for f in summary.functions)
    counts = _write_pairs(out, lines, options.valid_fraction)
    summary.pairs = counts.train + counts.valid if counts else 0
    summary.seconds = round(time.monotonic() - started, 2)
    manifest = FromTestsManifest(
        source=f"{SOURCE}:{root}",
        options=CurateOptions(stages=[STAGE], min_label="positive", valid_fraction=options.valid_fraction,
                              force=options.force),
        stages={STAGE: counts} if counts else {}, skipped=Skipped(), pairs=summary.pairs, from_tests=summary)
    write_lines(out / MANIFEST, [msgspec.json.format(msgspec.json.encode(manifest), indent=2).decode()])
    return manifest


def library_units(root: Path, kind: str, program_units: Sequence[Sequence[str]],
                  program_sources: Sequence[str]) -> list[str]:
    """The C units whose functions the tests can cover: for direct builds, those linked into a test program
    (not the test sources themselves); for the project's own build, every C file outside the tests."""
    if kind == "none":
        return []
    if kind == "direct":
        tests = set(program_sources)
        return sorted({u for units in program_units for u in units
                       if u not in tests and Path(u).suffix in C_SUFFIXES and not is_test_file(u)})
    return [u for u in source_files(root, C_SUFFIXES) if not is_test_file(u)]


def candidate_functions(root: Path, unit: str) -> list[Symbol]:
    """The unit's function definitions that have a body to learn (not stubs, not main), each defined once."""
    try:
        data = (root / unit).read_bytes()
    except OSError:
        return []
    functions = [s for s in parse_source(unit, data).symbols if s.kind == FUNCTION]
    names = [s.name for s in functions]
    return [s for s in functions
            if not s.is_stub and s.name != "main" and names.count(s.name) == 1 and s.body_start_byte >= 0]


def _scan_function(scanner: _Scanner, unit: str, fn: Symbol, lines: list[tuple[str, str]]) -> FunctionScan:
    started = time.monotonic()
    scan = FunctionScan(path=unit, name=fn.name)
    text = (scanner.root / unit).read_bytes().decode("utf-8", errors="surrogateescape")
    try:
        blanked = blank_function(text, fn.name, path=unit)
        verdict, after = scanner.judge_blank(unit, blanked, fn.name)
    except (QualityError, SandboxError) as exc:
        scan.skipped = str(exc)
    else:
        # A stub that does not build (a struct return, -Werror) breaks the build, not a test: no coverage shown.
        unbuilt = {p.name: p.reason for p in after.programs if p.status == "build_failed"}
        broken = [n for n in [*verdict.new_failures, *verdict.new_timeouts] if program_of(n) not in unbuilt]
        if verdict.status in ("not_run", "no_tests", "inconclusive"):
            scan.skipped = verdict.message
        elif not broken and any(program_of(n) in unbuilt for n in verdict.new_failures):
            scan.skipped = f"the stub does not build: {next(iter(unbuilt.values()))}"
        elif broken:
            scan.covered, scan.verified_by = True, broken
            try:
                messages = scanner.prompts.messages(unit, blanked, fn.name)
            except (ActionFailed, ContextError, ConfigError) as exc:
                scan.skipped = f"no prompt: {exc}"
            else:
                lines.append(pair_line(messages, original_body(text, fn), unit=unit, name=fn.name,
                                       verified_by=broken, test_command=verdict.command))
    scan.seconds = round(time.monotonic() - started, 2)
    return scan


def original_body(text: str, fn: Symbol) -> str:
    """The function's body as the implement stage's answer continues it: the text after the pre-filled `{` line,
    up to (not including) the closing brace, which the stage's stop sequence `\\n}` consumes."""
    source = text.encode("utf-8", errors="surrogateescape")
    inner = source[fn.body_start_byte + 1:fn.body_end_byte - 1].decode("utf-8", errors="surrogateescape")
    first, sep, rest = inner.partition("\n")
    inner = rest if sep and not first.strip() else inner  # the prefix ends with "{\n" already
    return inner.rstrip()


def pair_line(prompt: list[dict[str, str]], body: str, *, unit: str, name: str, verified_by: list[str],
              test_command: str) -> tuple[str, str]:
    """(prompt key, JSONL line): the prompt with its pre-filled assistant turn continued by the body, as
    `curate.training_messages` merges a logged call."""
    spec = spec_for(STAGE)
    messages = [dict(m) for m in prompt]
    if messages and messages[-1]["role"] == "assistant":
        messages[-1]["content"] += body
    else:
        messages.append({"role": "assistant", "content": body})
    meta: dict[str, Any] = {
        "source": SOURCE, "stage": STAGE, "code": spec.code, "adapter": spec.default_adapter, "signal": spec.signal,
        "path": unit, "function": name, "verified_by": verified_by, "test_command": test_command,
        "label": "positive", "label_votes": {"positive": 1},
    }
    key = prompt_digest(STAGE, prompt)
    return key, json.dumps({"messages": messages, "meta": meta}, ensure_ascii=False)


def _write_pairs(out: Path, lines: list[tuple[str, str]], valid_fraction: float) -> StageCounts | None:
    if not lines:
        return None
    seen: set[str] = set()
    train: list[str] = []
    valid: list[str] = []
    duplicates = 0
    for key, line in lines:
        if line in seen:
            duplicates += 1
            continue
        seen.add(line)
        (valid if in_valid_split(key, valid_fraction) else train).append(line)
    write_lines(out / f"{STAGE}.train.jsonl", train)
    write_lines(out / f"{STAGE}.valid.jsonl", valid)
    return StageCounts(adapter=spec_for(STAGE).default_adapter, train=len(train), valid=len(valid),
                       labels={"positive": len(train) + len(valid)}, duplicates=duplicates)


# ---- the implement flow's prompt, without a model ----------------------------------------------------------------
class NoModelEngine:
    """The engine behind the prompt builder: the flow's locate and context steps need no model unless the config
    asks for model decisions, and then this says how to get them."""

    def _refuse(self, *_: object, **__: object) -> Any:
        raise ActionFailed("the workspace config routes context decisions to a model ([decisions] mode); the "
                           "from-tests prompts are built without one")

    generate = structured = decide = decide_batch = _refuse

    def count_tokens(self, model: object, text: str) -> int:
        return estimate_tokens(text)


class CountingLLM(StageLLM):
    """A StageLLM whose token counts need no model file: the context package's own estimate (what `cra context`
    uses). The prompts then match the pipeline's wherever the context budget is not the binding limit."""

    def count_tokens(self, stage: str, text: str) -> int:
        return estimate_tokens(text)


class PromptBuilder:
    """The messages the implement flow sends for a stub: its own locate and context steps (same context assembly,
    same task analysis, same exemplars) on a task whose request text is the blanked unit, then `a6.build_messages`
    as the flow's implement step calls it. One workspace index serves every function (the blanked buffer replaces
    the file in memory only)."""

    def __init__(self, root: Path, config: Config, llm: StageLLM | None = None) -> None:
        self.root = root
        self.config = config
        self._index: WorkspaceIndex | None = None
        self._llm = llm or CountingLLM(ModelRouter(config, root=root), NoModelEngine(), None)  # type: ignore[arg-type]

    def index(self) -> WorkspaceIndex:
        if self._index is None:  # no on-disk index cache: the scan leaves the workspace as it found it
            self._index = WorkspaceIndex.build(str(self.root), use_cache=False,
                                               max_file_bytes=self.config.context.max_file_bytes)
        return self._index

    def messages(self, unit: str, blanked: str, name: str) -> list[dict[str, str]]:
        def implement_prompt(task: Task[implement_flow.ImplementData]) -> list[dict[str, str]]:
            built = implement_flow.implement_messages(task)  # first attempt: no failure yet
            return [{"role": m.role, "content": m.content} for m in built]

        return self.with_context(unit, blanked, name, implement_prompt)

    def with_context(self, unit: str, blanked: str, name: str,
                     use: Callable[[Task[implement_flow.ImplementData]], T]) -> T:
        """Run the flow's locate and context steps on the stub, then `use` the task; the index gets the unit's own
        text back afterwards."""
        flow = implement_flow.FLOW
        request = ActionRequest(action=flow.action, path=str(self.root / unit), text=blanked, root=str(self.root),
                                symbol=name)
        task: Task[implement_flow.ImplementData] = Task(
            request, self.config, self._llm, None, lambda _m, _p: None, CancelToken(), flow=flow,
            data=implement_flow.ImplementData(), index=self.index())
        try:
            implement_flow.locate(task)
            implement_flow.context(task)
            return use(task)
        finally:
            self.index().update(request.path,
                                (self.root / unit).read_bytes().decode("utf-8", errors="surrogateescape"))
