"""The CLI's progress display (`cra run`, `cra check`): plain lines off a terminal, a live line on one."""

from __future__ import annotations

import io

from cra.clients.headless import ProgressEvent
from cra.clients.progress import ProgressView, split_stage, tokens_per_second


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def report(message: str, percent: int | None = None, **extra: object) -> ProgressEvent:
    value = {"kind": "report", "message": message, **({"percentage": percent} if percent is not None else {}),
             **extra}
    return ProgressEvent(kind="report", message=message, percent=percent, value=value)


def end(message: str) -> ProgressEvent:
    return ProgressEvent(kind="end", message=message, value={"kind": "end", "message": message})


def run_view(events: list[tuple[float, ProgressEvent]], *, live: bool = False) -> str:
    clock, stream = Clock(), io.StringIO()
    with ProgressView(stream, "cra implement", live=live, clock=clock, interval=3600) as view:
        view(ProgressEvent(kind="begin", message="cra: Implement function", percent=0))
        for at, event in events:
            clock.now = 100.0 + at
            view(event)
    return stream.getvalue()


def test_plain_lines_one_per_stage_change_with_each_attempts_verdict() -> None:
    shown = run_view([(0.5, report("locate", 5)), (0.6, report("context", 15)), (0.7, report("context", 15)),
                      (1.0, report("implement", 35)), (3.0, report("validate", 75)), (4.0, report("adjust", 85)),
                      (5.0, report("implement", 85)), (7.25, report("validate", 85)), (8.0, end("done"))])
    assert shown.splitlines() == [
        "cra implement: locate (5%, 0.5 s)",
        "cra implement: context (15%, 0.6 s)",
        "cra implement: implement (35%, 1.0 s)",
        "cra implement: validate (75%, 3.0 s)",
        "cra implement: attempt 1: failed",
        "cra implement: adjust (85%, 4.0 s)",
        "cra implement: implement (85%, 5.0 s)",
        "cra implement: validate (85%, 7.2 s)",
        "cra implement: attempt 2: passed",
        "cra implement: done (8.0 s)",
    ]
    assert "\r" not in shown and "\x1b" not in shown


def test_a_verdict_the_server_states_is_shown_once_and_tokens_per_second_when_reported() -> None:
    shown = run_view([(1.0, report("implement", 35, tokensPerSecond=41.25)),
                      (2.0, report("adjust: attempt 1 failed: expected ';'", 85)), (3.0, report("implement", 85)),
                      (4.0, end("failed"))])
    assert shown.splitlines() == [
        "cra implement: implement (35%, 1.0 s, 41.2 tok/s)",
        "cra implement: attempt 1: failed: expected ';'",
        "cra implement: adjust (85%, 2.0 s)",  # the verdict is its own line, not repeated in the stage's
        "cra implement: implement (85%, 3.0 s)",
        "cra implement: attempt 2: failed",
        "cra implement: failed (4.0 s)",
    ]


def test_a_cancelled_run_gets_no_verdict() -> None:
    shown = run_view([(1.0, report("implement", 35)), (2.0, end("cancelled"))])
    assert shown.splitlines()[-1] == "cra implement: cancelled (2.0 s)"
    assert "attempt" not in shown


def test_live_mode_redraws_one_status_line_and_prints_verdicts_above_it() -> None:
    shown = run_view([(1.0, report("implement", 35, tokens_per_s=12.0)), (2.0, report("adjust", 85)),
                      (3.0, end("failed"))], live=True)
    assert "\r\x1b[2K" in shown
    assert "cra implement: implement (35%, 1.0 s, 12.0 tok/s)" in shown
    lines = [line.rsplit("\r\x1b[2K", 1)[-1] for line in shown.split("\n")]
    assert "cra implement: attempt 1: failed" in lines and "cra implement: failed (3.0 s)" in lines
    assert shown.endswith("\n")  # the status line is gone once the run ended


def test_helpers() -> None:
    assert split_stage("validate") == ("validate", "")
    assert split_stage("adjust: attempt 1 failed: x") == ("adjust", "attempt 1 failed: x")
    assert tokens_per_second({"tokensPerSecond": 3}) == 3.0
    assert tokens_per_second({"tokens_per_s": True}) is None and tokens_per_second({}) is None
