"""`cra audit`: per-stage error rates from the call log, to decide which adapter to train or decompose next.

Two failure views per stage: its own calls failing (error, cancelled, timeout), and the tasks it took part in
failing downstream (not compiled, tests failed, edit rejected). The stage's training signal gives a third, sharper
view: of its tasks whose signal is known, the share judged negative. A stage whose downstream failure rate stands
out is the one to split or retrain (the seeds' example: co-change scope at 30% while dependency scope is at 5%).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from cra.pipeline.adapter_map import label_for, outcome_failed
from cra.pipeline.calllog import CallLog, CallRow, OutcomeRow
from cra.pipeline.stages.registry import STAGE_SPECS
from cra.training.curate import CurationError, call_failed

COLUMNS: tuple[str, ...] = ("stage", "code", "adapter", "calls", "tasks", "failed_calls", "failed_call_rate",
                            "tasks_with_outcome", "downstream_failure_rate", "signal_negative_rate",
                            "mean_tokens_in", "mean_tokens_out", "mean_latency_s")


class AuditError(CurationError):
    """The audit cannot read the log."""


class StageAudit(msgspec.Struct, kw_only=True):
    stage: str
    code: str
    adapter: str | None  # the served adapter when grouped by adapter ("-" is the base model); else None
    calls: int
    tasks: int
    failed_calls: int
    failed_call_rate: float | None
    tasks_with_outcome: int
    failed_tasks: int
    downstream_failure_rate: float | None
    signal_known: int  # tasks whose stage signal is positive or negative
    signal_negative: int
    signal_negative_rate: float | None
    mean_tokens_in: float | None
    mean_tokens_out: float | None
    mean_latency_s: float | None


class AuditReport(msgspec.Struct, kw_only=True):
    source: str
    since: float | None
    stages: list[StageAudit]
    total: StageAudit


def audit(log: CallLog, *, stages: Iterable[str] = (), since: float | None = None,
          by_adapter: bool = False) -> AuditReport:
    selected = list(stages) or list(STAGE_SPECS)
    unknown = [s for s in selected if s not in STAGE_SPECS]
    if unknown:  # a clear error before any work
        raise AuditError(f"--stage {unknown[0]!r}: unknown stage (stages: {', '.join(STAGE_SPECS)})")
    try:
        outcomes = {o.task_id: o for o in log.outcomes()}
        calls_by_stage = {s: [c for c in log.calls(stage=s, newest_first=False)
                              if since is None or c.started_at >= since] for s in selected}
    except (sqlite3.DatabaseError, ValueError, msgspec.ValidationError) as exc:
        raise AuditError(f"{log.path}: cannot read the call log: {exc}") from None
    rows: list[StageAudit] = []
    for stage, calls in calls_by_stage.items():
        if not calls:
            continue
        if by_adapter:
            groups: dict[str, list[CallRow]] = {}
            for call in calls:
                groups.setdefault(call.adapter_name or "-", []).append(call)
            rows += [_stage_audit(stage, group, outcomes, adapter=name) for name, group in sorted(groups.items())]
        else:
            rows.append(_stage_audit(stage, calls, outcomes, adapter=None))
    everything = [c for calls in calls_by_stage.values() for c in calls]
    return AuditReport(source=str(log.path), since=since, stages=rows,
                       total=_stage_audit("(all)", everything, outcomes, adapter=None))


def _stage_audit(stage: str, calls: list[CallRow], outcomes: dict[str, OutcomeRow], *,
                 adapter: str | None) -> StageAudit:
    tasks = {c.task_id for c in calls if c.task_id}
    judged = [outcomes[t] for t in sorted(tasks) if t in outcomes]
    failed_calls = sum(1 for c in calls if call_failed(c))
    failed_tasks = sum(1 for o in judged if outcome_failed(o))
    if stage in STAGE_SPECS:
        labels = [label_for(stage, o) for o in judged]
        code = STAGE_SPECS[stage].code
    else:  # the total row mixes stages: each task counts under each of its stages' signals
        labels = [label_for(c.stage, outcomes[t]) for t, c in _first_call_per_task_stage(calls)
                  if t in outcomes and c.stage in STAGE_SPECS]
        code = ""
    known = [label for label in labels if label != "unknown"]
    negative = sum(1 for label in known if label == "negative")
    return StageAudit(
        stage=stage, code=code, adapter=adapter, calls=len(calls), tasks=len(tasks), failed_calls=failed_calls,
        failed_call_rate=_rate(failed_calls, len(calls)), tasks_with_outcome=len(judged), failed_tasks=failed_tasks,
        downstream_failure_rate=_rate(failed_tasks, len(judged)), signal_known=len(known),
        signal_negative=negative, signal_negative_rate=_rate(negative, len(known)),
        mean_tokens_in=_mean(c.tokens_in for c in calls), mean_tokens_out=_mean(c.tokens_out for c in calls),
        mean_latency_s=_mean(c.duration_s for c in calls))


def _first_call_per_task_stage(calls: list[CallRow]) -> list[tuple[str, CallRow]]:
    seen: dict[tuple[str, str], CallRow] = {}
    for call in calls:
        if call.task_id:
            seen.setdefault((call.task_id, call.stage), call)
    return [(task, call) for (task, _), call in seen.items()]


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _mean(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None
