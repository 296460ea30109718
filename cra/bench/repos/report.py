"""The report of `cra bench quality --suite repos`: per-column totals, the oracle's rejections, the targets of
issue #13 (oracle acceptance, pass and compile rates, rounds spent on baseline failures) and the markdown table."""

from __future__ import annotations

import statistics
from typing import Any

import msgspec

from cra.bench.quality_report import total_stages

# Targets (issue #13): cra's validation accepts the original body; the pipeline passes the library's own tests.
ORACLE_UNTRUSTED_MIN = 0.98
ORACLE_TRUSTED_MIN = 1.0
PASS_RATE_MIN = 0.50
MARGIN_OVER_NAIVE_POINTS = 30.0
COMPILE_RATE_MIN = 0.95
ALL_COLUMNS = ("oracle-untrusted", "oracle-trusted", "untrusted", "trusted", "naive")


def column_summary(cells: list[Any]) -> dict[str, Any]:
    """Totals of one column's cells (`cra.bench.repos.run.Cell`)."""
    n = len(cells)
    if n == 0:
        return {"tasks": 0}
    stages = total_stages(cell.stages for cell in cells)
    rounds = [c.rounds for c in cells if c.rounds is not None]
    baseline = [c.baseline_rounds for c in cells if c.baseline_rounds is not None]
    return {
        "tasks": n,
        "passed": sum(c.passed for c in cells),
        "pass_rate": round(sum(c.passed for c in cells) / n, 4),
        "compile_rate": round(sum(c.compiled is True for c in cells) / n, 4),
        # Of those that passed: how many cra itself had confirmed by a test run that passed (the rest it
        # accepted without running any test: "tests not run", "no tests found").
        "passed_with_cra_tests": sum(c.passed and c.cra_tests_passed is True for c in cells),
        "seconds_per_task": round(statistics.fmean(c.seconds for c in cells), 2),
        "tokens_in_per_task": round(statistics.fmean(c.tokens_in for c in cells), 1),
        "tokens_out_per_task": round(statistics.fmean(c.tokens_out for c in cells), 1),
        "rounds": sum(rounds) if rounds else None,
        "baseline_rounds": sum(baseline) if baseline else None,
        "stages": {k: msgspec.to_builtins(v) for k, v in sorted(stages.items())},
    }


def summarize_suite(rows: list[Any], columns: list[str]) -> dict[str, Any]:
    """The report object for `rows` (`cra.bench.repos.run.TaskRow`); `columns` as the user chose them."""
    by_column: dict[str, list[Any]] = {}
    for row in rows:
        for cell in row.cells:
            by_column.setdefault(cell.column, []).append(cell)
    summaries = {col: column_summary(by_column[col]) for col in ALL_COLUMNS if col in by_column}
    rejections = [{"task": row.task, "column": cell.column, "kind": cell.cra_kind, "message": cell.cra_verdict}
                  for row in rows for cell in row.cells if cell.column.startswith("oracle") and not cell.passed]
    return {
        "columns_requested": list(columns),
        "columns": summaries,
        "targets": targets(summaries),
        "oracle_rejections": rejections,
        "not_run": [{"task": row.task, "reason": row.error} for row in rows if row.error],
        "rows": [msgspec.to_builtins(row) for row in rows],
    }


def _target(target: str, value: Any, met: bool | None) -> dict[str, Any]:
    return {"target": target, "value": value, "met": met}


def targets(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Issue #13's targets against the column summaries; `met` is None where the column was not run."""
    def rate(column: str, key: str) -> float | None:
        s = summaries.get(column, {})
        return s.get(key) if s.get("tasks") else None

    out: dict[str, dict[str, Any]] = {}
    ou, ot = rate("oracle-untrusted", "pass_rate"), rate("oracle-trusted", "pass_rate")
    out["oracle_untrusted_accept"] = _target(f">= {ORACLE_UNTRUSTED_MIN:.0%}", ou,
                                             None if ou is None else ou >= ORACLE_UNTRUSTED_MIN)
    out["oracle_trusted_accept"] = _target(f">= {ORACLE_TRUSTED_MIN:.0%}", ot,
                                           None if ot is None else ot >= ORACLE_TRUSTED_MIN)
    pu, naive = rate("untrusted", "pass_rate"), rate("naive", "pass_rate")
    out["untrusted_pass_rate"] = _target(f">= {PASS_RATE_MIN:.0%}", pu, None if pu is None else pu >= PASS_RATE_MIN)
    margin = None if pu is None or naive is None else round(100 * (pu - naive), 1)
    out["untrusted_minus_naive_points"] = _target(f">= {MARGIN_OVER_NAIVE_POINTS:g}", margin,
                                                  None if margin is None else margin >= MARGIN_OVER_NAIVE_POINTS)
    for column in ("untrusted", "trusted"):
        c = rate(column, "compile_rate")
        out[f"{column}_compile_rate"] = _target(f">= {COMPILE_RATE_MIN:.0%}", c,
                                                None if c is None else c >= COMPILE_RATE_MIN)
    ran = [summaries[c] for c in ("untrusted", "trusted") if summaries.get(c, {}).get("tasks")]
    counted = [s["baseline_rounds"] for s in ran if s.get("baseline_rounds") is not None]
    if not ran:
        out["rounds_on_baseline_failures"] = _target("= 0", None, None)
    elif not counted:  # counted only against the oracle column: say so rather than report an unmeasured 0
        out["rounds_on_baseline_failures"] = _target("= 0", "not measured", None)
    else:
        out["rounds_on_baseline_failures"] = _target("= 0", sum(counted), sum(counted) == 0)
    return out


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, float) else ("–" if value is None else str(value))


def _mark(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    mark = "pass" if cell["passed"] else ("TIMEOUT" if cell.get("judge") == "timeout" else "fail")
    extra = f" r{cell['rounds']}" if cell.get("rounds") else ""
    return f"{mark}{extra} {cell['seconds']:.0f}s"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"repos suite: {report['tasks_run']}/{report['tasks_requested']} tasks, columns "
             f"{','.join(report['columns_requested'])}, wall {report['wall_seconds']} s"
             + (" (stopped by the time budget)" if report.get("stopped_by_time_budget") else ""), "",
             "| column | tasks | pass | of which cra's tests ran and passed | compile | s/task | tok in/task | "
             "tok out/task | rounds |", "|---|---|---|---|---|---|---|---|---|"]
    for column, s in report["columns"].items():
        if not s.get("tasks"):
            continue
        lines.append(f"| {column} | {s['tasks']} | {s['passed']} ({s['pass_rate']:.0%}) | "
                     f"{s['passed_with_cra_tests']} | {s['compile_rate']:.0%} | "
                     f"{s['seconds_per_task']} | {s['tokens_in_per_task']} | {s['tokens_out_per_task']} | "
                     f"{_pct(s['rounds'])} |")
    present = [c for c in ALL_COLUMNS if c in report["columns"]]
    lines += ["", "| task | " + " | ".join(present) + " | reason (first failing column) |",
              "|---|" + "---|" * len(present) + "---|"]
    for row in report["rows"]:
        cells = {c["column"]: c for c in row["cells"]}
        failing = next((c for c in row["cells"] if not c["passed"]), None)
        reason = row["error"] or ((failing["reason"] or failing["cra_verdict"]) if failing else "")
        reason = " ".join(reason.split())[:160].replace("|", "\\|")
        lines.append(f"| {row['library']}:{row['function']} | "
                     + " | ".join(_mark(cells.get(c)) for c in present) + f" | {reason} |")
    runs = [(row, c) for row in report["rows"] for c in row["cells"] if not c["column"].startswith("oracle")]
    if runs:
        lines += ["", "| task | column | passed | compiled | s | rounds (on baseline failures) | tokens in/out by stage "
                      "| cra's verdict |", "|---|---|---|---|---|---|---|---|"]
        for row, c in runs:
            tokens = ", ".join(f"{k} {v['tokens_in']}/{v['tokens_out']}" for k, v in sorted(c["stages"].items()))
            rounds = "–" if c["rounds"] is None else str(c["rounds"])
            if c.get("baseline_rounds") is not None:
                rounds += f" ({c['baseline_rounds']})"
            verdict = " ".join((c["cra_verdict"] or c["reason"]).split())[:140].replace("|", "\\|")
            lines.append(f"| {row['library']}:{row['function']} | {c['column']} | {c['passed']} | {c['compiled']} | "
                         f"{c['seconds']:.0f} | {rounds} | {tokens} | {verdict} |")
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for name, t in report["targets"].items():
        value = t["value"] if name.endswith("points") and t["value"] is not None else _pct(t["value"])
        lines.append(f"| {name} {t['target']} | {value} | {'–' if t['met'] is None else t['met']} |")
    if report["oracle_rejections"]:
        lines += ["", "Oracle rejections (cra's validation refused the original body):"]
        for r in report["oracle_rejections"]:
            lines.append(f"- {r['task']} [{r['column']}] {r['kind']}: {' '.join(r['message'].split())[:200]}")
    return "\n".join(lines)
