"""`cra audit`: per-stage failed-call and downstream failure rates, tokens and latency from a real call log."""

from __future__ import annotations

from pathlib import Path

import pytest
from curation_data import DAY, T0, LogFacts, add, implement_messages

from cra.pipeline.calllog import CallLog
from cra.training.audit import AuditError, audit
from cra.training.curate import open_log


def report_for(facts: LogFacts, **kwargs: object):  # type: ignore[no-untyped-def]
    log = open_log(facts.root)
    try:
        return audit(log, **kwargs)  # type: ignore[arg-type]
    finally:
        log.close()


def test_implement_rates(call_log: LogFacts) -> None:
    rows = {r.stage: r for r in report_for(call_log).stages}
    impl = rows["implement"]
    assert (impl.code, impl.calls, impl.tasks) == ("A6", 5, 3)  # t_ok, t_bad, t_open
    assert impl.failed_calls == 2 and impl.failed_call_rate == pytest.approx(0.4)  # timeout + engine error
    assert impl.tasks_with_outcome == 2 and impl.failed_tasks == 1  # t_bad did not compile
    assert impl.downstream_failure_rate == pytest.approx(0.5)
    assert (impl.signal_known, impl.signal_negative) == (2, 1)
    assert impl.mean_tokens_in == pytest.approx((300 + 300 + 100) / 3)  # failed calls have no token counts
    assert impl.mean_tokens_out == pytest.approx((40 + 30 + 20) / 3)
    assert impl.mean_latency_s == pytest.approx((2.0 + 4.0 + 3.0 + 1.0) / 4)


def test_decision_and_documentation_rates(call_log: LogFacts) -> None:
    rows = {r.stage: r for r in report_for(call_log).stages}
    scope = rows["scope"]
    assert (scope.calls, scope.tasks, scope.failed_calls) == (5, 3, 1)
    # t_bad did not compile, t_rej's edit was rejected, t_ok went through.
    assert scope.downstream_failure_rate == pytest.approx(2 / 3)
    # The scope signal needs the editor's answer: t_bad's "failed" edit says nothing, so 1 of 2 known is negative.
    assert (scope.signal_known, scope.signal_negative) == (2, 1)
    doc = rows["documentation"]
    assert (doc.calls, doc.tasks, doc.failed_calls, doc.failed_call_rate) == (4, 3, 0, 0.0)
    assert doc.downstream_failure_rate == pytest.approx(1 / 3)
    assert rows["test_generation"].downstream_failure_rate == 0.0
    assert set(rows) == {"implement", "scope", "documentation", "test_generation"}  # stages without calls: no row


def test_total_row_covers_every_call(call_log: LogFacts) -> None:
    report = report_for(call_log)
    assert report.total.calls == 15 == sum(r.calls for r in report.stages)
    assert report.total.failed_calls == 3
    assert report.total.tasks == 7


def test_stage_filter_since_and_by_adapter(call_log: LogFacts) -> None:
    only = report_for(call_log, stages=["implement"], since=T0 + 1.5 * DAY)
    assert [r.stage for r in only.stages] == ["implement"]
    assert only.stages[0].calls == 3  # day 1 calls are before --since
    grouped = report_for(call_log, stages=["implement"], by_adapter=True)
    by = {r.adapter: r for r in grouped.stages}
    assert set(by) == {"-", "implement:a6-implement"}
    assert by["implement:a6-implement"].calls == 1 and by["implement:a6-implement"].downstream_failure_rate == 0.0
    assert by["-"].calls == 4


def test_rates_are_none_without_data(tmp_path: Path) -> None:
    log = CallLog.for_workspace(tmp_path)
    add(log, None, "routing", implement_messages("f"), "include", grammar="labels: include | exclude")
    report = audit(log)
    log.close()
    (routing,) = report.stages
    assert routing.tasks == 0 and routing.downstream_failure_rate is None and routing.signal_negative_rate is None
    assert routing.failed_call_rate == 0.0


def test_unknown_stage_is_refused(call_log: LogFacts) -> None:
    with pytest.raises(AuditError, match="--stage 'implementation'"):
        report_for(call_log, stages=["implementation"])
