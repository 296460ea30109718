"""Rows and summaries of `cra bench quality`: one row per (side, task, mode), totals per (side, kind, mode), the
pipeline-vs-naive and A-vs-B deltas, and the markdown rendering."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

import msgspec

from cra.pipeline.calllog import CallRow

TARGET_MARGIN_POINTS = 15.0  # pipeline pass rate >= naive + 15 points
TARGET_TESTS_COMPILE = 0.90  # generated tests compile >= 90 %


class StageStats(msgspec.Struct):
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0


class Row(msgspec.Struct, kw_only=True):
    side: str  # "A"/"B" in an A/B run, else "main"
    task: str  # TaskSpec.id
    kind: str  # "implement" | "tests"
    mode: str  # "pipeline" | "naive"
    package: str
    version: str
    file: str
    function: str
    compiled: bool
    passed: bool
    seconds: float
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    attempts: int = 0  # generation calls of the main stage (implement / test_generation)
    stages: dict[str, StageStats] = {}
    detail: str = ""


def stage_stats(calls: list[CallRow]) -> dict[str, StageStats]:
    """Per-stage totals of one task's call-log rows."""
    out: dict[str, StageStats] = {}
    for call in calls:
        s = out.setdefault(call.stage, StageStats())
        s.calls += 1
        s.tokens_in += call.tokens_in or 0
        s.tokens_out += call.tokens_out or 0
        s.cached_tokens += call.cached_tokens or 0
        s.seconds += call.duration_s or 0.0
    for s in out.values():
        s.seconds = round(s.seconds, 3)
    return out


def total_stages(per_task: Iterable[dict[str, StageStats]]) -> dict[str, StageStats]:
    """Per-stage totals over tasks (calls, tokens, seconds)."""
    stages: dict[str, StageStats] = {}
    for task_stages in per_task:
        for name, s in task_stages.items():
            t = stages.setdefault(name, StageStats())
            t.calls += s.calls
            t.tokens_in += s.tokens_in
            t.tokens_out += s.tokens_out
            t.cached_tokens += s.cached_tokens
            t.seconds = round(t.seconds + s.seconds, 3)
    return stages


def summarize(rows: list[Row]) -> dict[str, Any]:
    """Pass rate, compile rate, mean seconds and tokens per task, and per-stage totals for a group of rows."""
    n = len(rows)
    if n == 0:
        return {"tasks": 0}
    stages = total_stages(row.stages for row in rows)
    return {
        "tasks": n,
        "pass_rate": round(sum(r.passed for r in rows) / n, 4),
        "compile_rate": round(sum(r.compiled for r in rows) / n, 4),
        "first_attempt_pass_rate": round(sum(r.passed and r.attempts <= 1 for r in rows) / n, 4),
        "seconds_per_task": round(statistics.fmean(r.seconds for r in rows), 2),
        "tokens_in_per_task": round(statistics.fmean(r.tokens_in for r in rows), 1),
        "tokens_out_per_task": round(statistics.fmean(r.tokens_out for r in rows), 1),
        "cached_tokens_per_task": round(statistics.fmean(r.cached_tokens for r in rows), 1),
        "tokens_in": sum(r.tokens_in for r in rows),
        "tokens_out": sum(r.tokens_out for r in rows),
        "cached_tokens": sum(r.cached_tokens for r in rows),
        "stages": {k: msgspec.to_builtins(v) for k, v in sorted(stages.items())},
    }


def side_summary(rows: list[Row]) -> dict[str, Any]:
    """{kind: {mode: summary}, plus the pipeline-minus-naive pass-rate margin in points} for one side."""
    out: dict[str, Any] = {}
    for kind in ("implement", "tests"):
        by_mode = {mode: summarize([r for r in rows if r.kind == kind and r.mode == mode])
                   for mode in ("pipeline", "naive")}
        if not any(s["tasks"] for s in by_mode.values()):
            continue
        if by_mode["pipeline"]["tasks"] and by_mode["naive"]["tasks"]:
            by_mode["pipeline_minus_naive_points"] = round(
                100 * (by_mode["pipeline"]["pass_rate"] - by_mode["naive"]["pass_rate"]), 1)
        out[kind] = by_mode
    return out


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    implement = summary.get("implement", {})
    tests = summary.get("tests", {}).get("pipeline", {})
    margin = implement.get("pipeline_minus_naive_points")
    compile_rate = tests.get("compile_rate") if tests.get("tasks") else None
    return {
        "pipeline_minus_naive_points": {"target": f">= {TARGET_MARGIN_POINTS:g}", "value": margin,
                                        "met": None if margin is None else margin >= TARGET_MARGIN_POINTS},
        "generated_tests_compile_rate": {"target": f">= {TARGET_TESTS_COMPILE:g}", "value": compile_rate,
                                         "met": None if compile_rate is None else compile_rate >= TARGET_TESTS_COMPILE},
    }


def ab_deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """B minus A for each kind/mode's pass rate, compile rate, seconds and tokens per task."""
    keys = ("pass_rate", "compile_rate", "seconds_per_task", "tokens_in_per_task", "tokens_out_per_task")
    out: dict[str, Any] = {}
    for kind in sorted(set(a) | set(b)):
        for mode in ("pipeline", "naive"):
            sa, sb = a.get(kind, {}).get(mode, {}), b.get(kind, {}).get(mode, {})
            if sa.get("tasks") and sb.get("tasks"):
                out[f"{kind}/{mode}"] = {k: round(sb[k] - sa[k], 4) for k in keys}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"model: {report['model']}  tasks: {report['tasks_run']}  dropped: {len(report['dropped'])}  "
             f"wall: {report['wall_seconds']} s", "",
             "| side | kind | mode | tasks | pass | compile | s/task | tok in/task | tok out/task | cached/task |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for side, summary in report["sides"].items():
        for kind, modes in summary.items():
            for mode in ("pipeline", "naive"):
                s = modes.get(mode, {})
                if not s.get("tasks"):
                    continue
                lines.append(f"| {side} | {kind} | {mode} | {s['tasks']} | {s['pass_rate']:.0%} | "
                             f"{s['compile_rate']:.0%} | {s['seconds_per_task']} | {s['tokens_in_per_task']} | "
                             f"{s['tokens_out_per_task']} | {s['cached_tokens_per_task']} |")
    lines += ["", "| side | task | mode | compiled | passed | s | tok in | tok out | attempts |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['side']} | {row['task']} | {row['mode']} | {row['compiled']} | {row['passed']} | "
                     f"{row['seconds']} | {row['tokens_in']} | {row['tokens_out']} | {row['attempts']} |")
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for name, t in report["targets"].items():
        lines.append(f"| {name} {t['target']} | {t['value']} | {t['met']} |")
    if report.get("ab"):
        lines += ["", "| A/B delta (B − A) | pass | compile | s/task | tok in/task | tok out/task |",
                  "|---|---|---|---|---|---|"]
        for key, d in report["ab"]["deltas"].items():
            lines.append(f"| {key} | {d['pass_rate']:+.2f} | {d['compile_rate']:+.2f} | {d['seconds_per_task']:+} | "
                         f"{d['tokens_in_per_task']:+} | {d['tokens_out_per_task']:+} |")
    return "\n".join(lines)
