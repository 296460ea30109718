"""`cra curate-data`: per-stage chat-format training pairs from the call log, labelled by downstream outcomes.

Only calls whose task has an outcome become pairs, and never calls that failed, timed out or were cancelled. A
pair is the logged prompt plus the response as the assistant turn (a pre-filled assistant turn is merged with its
continuation so the pair reads as one answer); decision stages answer with the chosen label. Identical pairs
collapse into one. The train/valid split hashes the prompt alone, so every response to one prompt lands on the
same side and the validation set never leaks prompts seen in training.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import msgspec

from cra.pipeline.adapter_map import LABELS, Label, label_for
from cra.pipeline.calllog import CallLog, CallLogError, CallRow, OutcomeRow, log_path
from cra.pipeline.stages.registry import STAGE_SPECS, spec_for

MinLabel = Literal["positive", "known", "any"]
# Which labels each --min-label keeps: "known" adds negatives (preference/KTO-style sets), "any" adds unlabelled.
KEPT_LABELS: dict[str, tuple[Label, ...]] = {
    "positive": ("positive",),
    "known": ("positive", "negative"),
    "any": LABELS,
}
FAILED_FINISH = frozenset({"error", "cancelled", "timeout"})
MANIFEST = "manifest.json"
M = TypeVar("M", bound="Manifest")


class CurationError(Exception):
    """Curation cannot proceed; the message says what to fix."""


class CurateOptions(msgspec.Struct, kw_only=True):
    stages: list[str] = []  # empty: every stage of the registry
    min_label: MinLabel = "positive"
    since: float | None = None  # epoch seconds; calls started earlier are skipped
    model: str | None = None  # only calls served by this base model name
    valid_fraction: float = 0.1
    force: bool = False  # replace a previous export in the output directory


class StageCounts(msgspec.Struct, kw_only=True):
    adapter: str  # the default adapter name this stage's pairs train
    train: int = 0
    valid: int = 0
    labels: dict[str, int] = {}  # label -> pairs written
    duplicates: int = 0  # calls dropped because an identical pair was already kept


class Skipped(msgspec.Struct, kw_only=True):
    no_outcome: int = 0  # the call's task has no recorded outcome
    failed: int = 0  # error, cancelled or timed out
    filtered: int = 0  # --since / --model
    label: int = 0  # below --min-label
    invalid_decision: int = 0  # a decision whose answer is not one of its labels
    malformed: int = 0  # logged messages that are not a list of {role, content}


class Manifest(msgspec.Struct, kw_only=True):
    source: str
    options: CurateOptions
    stages: dict[str, StageCounts]
    skipped: Skipped
    pairs: int


@dataclass
class _Pair:
    prompt_key: str
    messages: list[dict[str, str]]
    meta: dict[str, Any]
    votes: Counter[str]


def open_log(root: str | Path) -> CallLog:
    """The workspace's existing call log; never creates one (a missing log is the user's mistake to hear about)."""
    path = log_path(root)
    if not path.is_file():
        raise CurationError(f"no call log at {path}: nothing has run in this workspace yet")
    try:
        return CallLog(path, read_only=True)  # curation only reads: it must not migrate or finalise the log
    except CallLogError as exc:
        raise CurationError(str(exc)) from None


def parse_since(value: str, *, now: float | None = None) -> float:
    """`--since`: an ISO date or date-time (local time unless it names a zone), or an age like `36h` / `7d`."""
    text = value.strip()
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhdw])", text):
        seconds = {"m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return (time.time() if now is None else now) - float(m.group(1)) * seconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CurationError(f"--since {value!r}: expected a date like 2026-02-27, a date-time like "
                            f"2026-02-27T14:00, or an age like 36h or 7d") from None
    return when.timestamp() if when.tzinfo else when.astimezone().timestamp()


def check_options(options: CurateOptions) -> None:
    if not 0.0 <= options.valid_fraction < 1.0:
        raise CurationError(f"--valid-fraction {options.valid_fraction}: must be at least 0 and below 1")
    if options.min_label not in KEPT_LABELS:
        raise CurationError(f"--min-label {options.min_label!r}: choose one of {', '.join(KEPT_LABELS)}")
    for stage in options.stages:
        if stage not in STAGE_SPECS:
            raise CurationError(f"--stage {stage!r}: unknown stage (stages: {', '.join(STAGE_SPECS)})")


def curate(log: CallLog, out_dir: str | Path, options: CurateOptions) -> Manifest:
    """Write `<stage>.train.jsonl`, `<stage>.valid.jsonl` and `manifest.json` into `out_dir`."""
    check_options(options)
    return export_atomically(out_dir, force=options.force, build=lambda staging: _export(log, staging, options))


def export_atomically(out_dir: str | Path, *, force: bool, build: Callable[[Path], M]) -> M:
    """Run `build` (which writes an export's files into the folder it is given) and move its files into
    `out_dir`. Other data sources (`from_tests`) write through this too, so `cra train` reads every export alike."""
    out = Path(out_dir)
    previous = _check_out_dir(out, force=force)
    # Build the export beside the target and swap it in at the end: a read error half-way through must not cost
    # the previous export (which --force only replaces once the new one is complete).
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        manifest = build(staging)
        for path in previous:
            path.unlink()
        out.mkdir(exist_ok=True)
        for path in staging.iterdir():
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _export(log: CallLog, out: Path, options: CurateOptions) -> Manifest:
    try:
        outcomes = {o.task_id: o for o in log.outcomes()}
    except (sqlite3.DatabaseError, msgspec.ValidationError) as exc:
        raise CurationError(f"{log.path}: cannot read outcomes: {exc}") from None
    skipped = Skipped()
    stages: dict[str, StageCounts] = {}
    # One stage at a time keeps memory bounded by the largest stage, not the whole log.
    for stage in options.stages or list(STAGE_SPECS):
        try:
            calls = log.calls(stage=stage, newest_first=False)
        except (sqlite3.DatabaseError, ValueError, msgspec.ValidationError) as exc:
            raise CurationError(f"{log.path}: cannot read the calls of stage {stage!r}: {exc}") from None
        pairs = _stage_pairs(stage, calls, outcomes, options, skipped)
        if not pairs:
            continue
        counts = StageCounts(adapter=spec_for(stage).default_adapter)
        train: list[str] = []
        valid: list[str] = []
        for pair in pairs:
            label = _merged_label(pair.votes)
            if label not in KEPT_LABELS[options.min_label]:
                skipped.label += sum(pair.votes.values())
                continue
            counts.duplicates += sum(pair.votes.values()) - 1
            pair.meta["label"] = label
            pair.meta["label_votes"] = dict(sorted(pair.votes.items()))
            counts.labels[label] = counts.labels.get(label, 0) + 1
            line = json.dumps({"messages": pair.messages, "meta": pair.meta}, ensure_ascii=False)
            (valid if in_valid_split(pair.prompt_key, options.valid_fraction) else train).append(line)
        if not train and not valid:
            continue
        counts.train, counts.valid = len(train), len(valid)
        write_lines(out / f"{stage}.train.jsonl", train)
        write_lines(out / f"{stage}.valid.jsonl", valid)
        stages[stage] = counts
    manifest = Manifest(source=str(log.path), options=options, stages=stages, skipped=skipped,
                        pairs=sum(c.train + c.valid for c in stages.values()))
    write_lines(out / MANIFEST, [msgspec.json.format(msgspec.json.encode(manifest), indent=2).decode()])
    return manifest


def call_failed(call: CallRow) -> bool:
    return bool(call.error) or call.cancelled or call.finish_reason in FAILED_FINISH or call.response is None


def decision_labels(grammar: str | None) -> list[str] | None:
    """The label set of a decision call (`grammar` = "labels: yes | no"), None for other calls."""
    if not grammar or not grammar.startswith("labels:"):
        return None
    return [part.strip() for part in grammar[len("labels:"):].split("|") if part.strip()]


def training_messages(call: CallRow) -> list[dict[str, str]]:
    """The prompt plus the response as the final assistant turn, merging a pre-filled assistant turn. A
    decision's answer is its bare label."""
    messages = [{"role": m["role"], "content": m["content"]} for m in call.messages]
    response = call.response or ""
    if decision_labels(call.grammar) is not None:
        response = response.strip()
    if messages and messages[-1]["role"] == "assistant":
        messages[-1] = {"role": "assistant", "content": messages[-1]["content"] + response}
    else:
        messages.append({"role": "assistant", "content": response})
    return messages


def prompt_digest(stage: str, messages: Sequence[dict[str, str]]) -> str:
    return hashlib.sha256(_canonical([stage, list(messages)])).hexdigest()


def in_valid_split(prompt_key: str, valid_fraction: float) -> bool:
    """Deterministic: the prompt hash read as a number in [0, 1) decides the side."""
    return int(prompt_key[:16], 16) / float(1 << 64) < valid_fraction


def _stage_pairs(stage: str, calls: list[CallRow], outcomes: dict[str, OutcomeRow], options: CurateOptions,
                 skipped: Skipped) -> list[_Pair]:
    spec = spec_for(stage)
    pairs: dict[str, _Pair] = {}
    for call in calls:
        outcome = outcomes.get(call.task_id or "")
        if outcome is None:
            skipped.no_outcome += 1
            continue
        if call_failed(call):
            skipped.failed += 1
            continue
        if (options.since is not None and call.started_at < options.since) or (
                options.model is not None and call.model_name != options.model):
            skipped.filtered += 1
            continue
        choices = decision_labels(call.grammar)
        if choices is not None and (call.response or "").strip() not in choices:
            skipped.invalid_decision += 1
            continue
        try:
            messages = training_messages(call)
        except (KeyError, TypeError):
            skipped.malformed += 1
            continue
        key = hashlib.sha256(_canonical(messages)).hexdigest()
        label = label_for(stage, outcome)
        if key in pairs:
            pairs[key].votes[label] += 1
            continue
        meta: dict[str, Any] = {
            "call_id": call.id, "task_id": call.task_id, "stage": stage, "code": spec.code,
            "adapter": spec.default_adapter, "model": call.model_name, "model_hash": call.model_hash,
            "served_adapter": call.adapter_name, "signal": spec.signal, "finish_reason": call.finish_reason,
            "outcome": {"action": outcome.action, "compiled": outcome.compiled,
                        "tests_passed": outcome.tests_passed, "edit_status": outcome.edit_status},
        }
        if choices is not None:
            meta["choices"] = choices
        pairs[key] = _Pair(prompt_key=prompt_digest(stage, call.messages), messages=messages, meta=meta,
                           votes=Counter({label: 1}))
    return list(pairs.values())


def _merged_label(votes: Counter[str]) -> Label:
    """Identical pairs from several tasks: one verdict if they agree, else unknown (the signal contradicts
    itself, so the pair teaches nothing reliable)."""
    if len(votes) == 1:
        return cast(Label, next(iter(votes)))
    return "unknown"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _check_out_dir(out: Path, *, force: bool) -> list[Path]:
    """The previous export's files that --force may replace; refuses anything else in the way."""
    if out.exists() and not out.is_dir():
        raise CurationError(f"{out}: exists and is not a directory")
    if not out.is_dir():
        return []
    ours = _export_files(out)
    others = [p for p in out.iterdir() if p not in ours]
    if ours and not force:
        raise CurationError(f"{out}: holds a previous export ({len(ours)} files); pass --force to replace it "
                            f"or choose another --out")
    if others:
        raise CurationError(f"{out}: holds files that are not an export (e.g. {others[0].name}); "
                            f"choose an empty or new --out")
    return ours


def _export_files(out: Path) -> list[Path]:
    return [p for p in out.iterdir()
            if p.is_file() and (p.name == MANIFEST or p.name.endswith((".train.jsonl", ".valid.jsonl")))]


def write_lines(path: Path, lines: list[str]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
