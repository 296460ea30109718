"""`cra curate-data --from-code`: context decisions labelled by the code itself, with no model and no test run.

The tier-0 decisions (precision A8 "is this symbol needed?", scope A11 "is this file relevant?") have a ground truth
wherever the implementation exists: for each function with a body, its body is blanked (the benchmark's zero-value
stub) and the implement flow's own locate and context steps run on the stub with the model judge switched on
(`[decisions] mode = "always"`), exactly as the pipeline asks it. Every question the cascade puts to the judge
becomes one pair, answered by what the original body does:

- precision_relevant: "yes" when the body names the symbol (a call, a type or an identifier that tree-sitter finds
  inside the body), else "no";
- scope tiers: "yes" when the file defines something the body names, else "no".

The judge answers with those labels as it goes (primary/supporting questions: "supporting", the cheapest level
that shows a declaration), so the questions asked later are the ones a correct earlier answer leads to. The prompt
is the logged form of a decision call (the judge's messages plus the question as a user turn), so `cra train` and
`cra bench adapters` read these pairs like curated call-log pairs. Nothing is written into the workspace.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cra.bench.quality_tasks import QualityError, blank_function
from cra.pipeline.config import Config, ConfigError, DecisionsConfig, load_config
from cra.pipeline.context import ContextError, parse_source
from cra.pipeline.context.precision import RELEVANT_QUESTION, STAGE_RELEVANT, question_subject
from cra.pipeline.context.scope import question_file
from cra.pipeline.engine.types import CallStats, Decision, Message
from cra.pipeline.flows.base import ActionFailed
from cra.pipeline.router import ModelRouter
from cra.pipeline.sandbox.discover_units import is_test_file, source_files
from cra.pipeline.stages import scope as a11
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
from cra.training.from_tests import C_SUFFIXES, CountingLLM, NoModelEngine, PromptBuilder, candidate_functions

SOURCE = "from-code"
STAGES: tuple[str, ...] = (STAGE_RELEVANT, *a11.TIER_STAGES)
YES, NO = "yes", "no"


class FromCodeError(CurationError):
    """The scan cannot start (bad root, bad config); the message says what to fix."""


class FromCodeOptions(msgspec.Struct, kw_only=True):
    limit: int | None = None  # scan at most this many functions (in path, then source, order)
    valid_fraction: float = 0.1
    force: bool = False


class FromCodeSummary(msgspec.Struct, kw_only=True):
    root: str
    functions_found: int
    scanned: int
    skipped: dict[str, int] = {}  # reason -> functions
    questions: dict[str, int] = {}  # stage -> questions asked
    answers: dict[str, dict[str, int]] = {}  # stage -> answer -> pairs written
    unmapped: int = 0  # questions whose symbol or file could not be named (left out)
    seconds: float = 0.0


class FromCodeManifest(Manifest, kw_only=True):
    from_code: FromCodeSummary


class _Truth(msgspec.Struct):
    names: frozenset[str]  # what the original body names
    files: frozenset[str]  # files defining one of those names


class _Asked(msgspec.Struct):
    stage: str
    prompt: list[dict[str, str]]
    answer: str


class OracleLLM(CountingLLM):
    """A StageLLM whose decisions come from the original body (`truth`) instead of a model; it keeps the context
    questions it was asked, with their answers."""

    def __init__(self, config: Config, root: Path) -> None:
        super().__init__(ModelRouter(config, root=root), NoModelEngine(), None)  # type: ignore[arg-type]
        self.truth = _Truth(frozenset(), frozenset())
        self.subjects: dict[str, str] = {}  # precision question subject -> symbol name
        self.asked: list[_Asked] = []
        self.unmapped = 0

    def decide_batch(self, stage: str, prefix: Sequence[Message], questions: Sequence[str],
                     labels: Sequence[str] = (YES, NO)) -> list[Decision]:
        answers = [self._answer(stage, q) for q in questions]
        for question, answer in zip(questions, answers, strict=True):
            if stage in STAGES and answer is not None:
                prompt = [*({"role": m.role, "content": m.content} for m in prefix),
                          {"role": "user", "content": question}]
                self.asked.append(_Asked(stage=stage, prompt=prompt, answer=answer))
        chosen = [a or (YES if stage == "precision_supporting" else NO) for a in answers]
        return [Decision(label=a, prob=1.0, probs={a: 1.0}, stats=CallStats()) for a in chosen]

    def _answer(self, stage: str, question: str) -> str | None:
        if stage == STAGE_RELEVANT:
            name = self.subjects.get(question.removesuffix(f" {RELEVANT_QUESTION}"))
            if name is None:
                self.unmapped += 1
                return None
            return YES if name in self.truth.names else NO
        if stage in a11.TIER_STAGES:
            path = question_file(question)
            if path is None:
                self.unmapped += 1
                return None
            return YES if path in self.truth.files else NO
        return None


def curate_from_code(root: str | Path, out_dir: str | Path, options: FromCodeOptions, *,
                     progress: Callable[[str], None] | None = None) -> FromCodeManifest:
    """Scan `root`, write `<stage>.{train,valid}.jsonl` and `manifest.json` into `out_dir`."""
    path = Path(root)
    if not path.is_dir():
        raise FromCodeError(f"{root}: {'not a directory' if path.exists() else 'no such directory'}")
    if not 0.0 <= options.valid_fraction < 1.0:
        raise FromCodeError(f"--valid-fraction {options.valid_fraction}: must be at least 0 and below 1")
    if options.limit is not None and options.limit < 1:
        raise FromCodeError(f"--limit {options.limit}: must be at least 1")
    try:
        config = load_config(path.resolve())
    except ConfigError as exc:
        raise FromCodeError(str(exc)) from None
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    return export_atomically(out_dir, force=options.force,
                             build=lambda staging: _scan(path.resolve(), config, staging, options, say))


def body_names(data: bytes, unit: str, name: str) -> frozenset[str]:
    """The names function `name`'s body uses (calls, types, identifiers), by tree-sitter."""
    parsed = parse_source(unit, data)
    [fn] = [s for s in parsed.symbols if s.name == name and s.body_start_byte >= 0]
    return frozenset(r.name for r in parsed.references
                     if r.enclosing == name and fn.body_start_byte <= r.start_byte < fn.body_end_byte) - {name}


def _scan(root: Path, config: Config, out: Path, options: FromCodeOptions,
          progress: Callable[[str], None]) -> FromCodeManifest:
    started = time.monotonic()
    asking = msgspec.structs.replace(config, decisions=DecisionsConfig(mode="always"))
    llm = OracleLLM(asking, root)
    builder = PromptBuilder(root, asking, llm)
    index = builder.index()
    defined_in: dict[str, set[str]] = {}
    for file in index.files.values():
        for symbol in file.symbols:
            defined_in.setdefault(symbol.name, set()).add(symbol.file)
            llm.subjects[question_subject(symbol)] = symbol.name
    units = [u for u in source_files(root, C_SUFFIXES) if not is_test_file(u)]
    candidates = [(unit, fn) for unit in units for fn in candidate_functions(root, unit)]
    todo = candidates[:options.limit] if options.limit is not None else candidates
    summary = FromCodeSummary(root=str(root), functions_found=len(candidates), scanned=0)
    skipped: Counter[str] = Counter()
    lines: list[tuple[str, str, str, str]] = []  # (stage, prompt key, answer, JSONL line)
    for i, (unit, fn) in enumerate(todo, 1):
        data = (root / unit).read_bytes()
        text = data.decode("utf-8", errors="surrogateescape")
        try:
            blanked = blank_function(text, fn.name, path=unit)
            names = body_names(data, unit, fn.name)
        except (QualityError, ValueError) as exc:
            skipped[f"cannot blank: {str(exc)[:60]}"] += 1
            continue
        llm.truth = _Truth(names, frozenset(f for n in names for f in defined_in.get(n, ())))
        llm.asked = []
        try:
            builder.with_context(unit, blanked, fn.name, lambda _task: None)
        except (ActionFailed, ContextError, ConfigError) as exc:
            skipped[f"no context: {str(exc)[:60]}"] += 1
            continue
        summary.scanned += 1
        for asked in llm.asked:
            lines.append(_pair_line(asked, root=root, unit=unit, function=fn.name))
        if i % 25 == 0 or i == len(todo):
            progress(f"from-code: [{i}/{len(todo)}] {len(lines)} questions so far")
    summary.skipped = dict(skipped)
    summary.unmapped = llm.unmapped
    summary.questions = dict(Counter(stage for stage, *_ in lines))
    answers: dict[str, Counter[str]] = {}
    counts = _write_pairs(out, lines, options.valid_fraction, answers)
    summary.answers = {stage: dict(c) for stage, c in answers.items()}
    summary.seconds = round(time.monotonic() - started, 2)
    manifest = FromCodeManifest(
        source=f"{SOURCE}:{root}",
        options=CurateOptions(stages=list(counts), min_label="positive", valid_fraction=options.valid_fraction,
                              force=options.force),
        stages=counts, skipped=Skipped(), pairs=sum(c.train + c.valid for c in counts.values()), from_code=summary)
    write_lines(out / MANIFEST, [msgspec.json.format(msgspec.json.encode(manifest), indent=2).decode()])
    return manifest


def _pair_line(asked: _Asked, *, root: Path, unit: str, function: str) -> tuple[str, str, str, str]:
    spec = spec_for(asked.stage)
    meta: dict[str, Any] = {
        "source": SOURCE, "stage": asked.stage, "code": spec.code, "adapter": spec.default_adapter,
        "signal": spec.signal, "choices": [YES, NO], "workspace": root.name, "path": unit, "function": function,
        "label": "positive", "label_votes": {"positive": 1},
    }
    messages = [*asked.prompt, {"role": "assistant", "content": asked.answer}]
    key = prompt_digest(asked.stage, asked.prompt)
    return asked.stage, key, asked.answer, json.dumps({"messages": messages, "meta": meta}, ensure_ascii=False)


def _write_pairs(out: Path, lines: list[tuple[str, str, str, str]], valid_fraction: float,
                 answers: dict[str, Counter[str]]) -> dict[str, StageCounts]:
    counts: dict[str, StageCounts] = {}
    files: dict[tuple[str, str], list[str]] = {}
    seen: set[str] = set()
    for stage, key, answer, line in lines:
        c = counts.setdefault(stage, StageCounts(adapter=spec_for(stage).default_adapter, labels={}))
        if line in seen:
            c.duplicates += 1
            continue
        seen.add(line)
        side = "valid" if in_valid_split(key, valid_fraction) else "train"
        setattr(c, side, getattr(c, side) + 1)
        c.labels["positive"] = c.labels.get("positive", 0) + 1  # every answer is the code's own
        answers.setdefault(stage, Counter())[answer] += 1
        files.setdefault((stage, side), []).append(line)
    for stage in counts:
        for side in ("train", "valid"):
            write_lines(out / f"{stage}.{side}.jsonl", files.get((stage, side), []))
    return counts
