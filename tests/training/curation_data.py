"""A real call log with a known mix of tasks, calls and outcomes, shared by the curation and audit tests."""

from __future__ import annotations

from pathlib import Path

import msgspec

from cra.pipeline.calllog import CallLog, CallRecord

SYSTEM = {"role": "system", "content": "You are an expert C programmer."}
DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z; the calls of the fixture are spread over the following days


class LogFacts(msgspec.Struct):
    """What the fixture wrote, by name, so tests assert against it instead of repeating magic ids."""

    root: Path
    ids: dict[str, int]


def implement_messages(name: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": f"Context:\n```c\nint {name}(int x);\n```\n\nImplement `{name}`."},
            {"role": "assistant", "content": f"```c\nint {name}(int x)\n{{\n"}]


def decision_messages(question: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": "Task: implement clamp."}, {"role": "user", "content": question}]


def doc_messages(name: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": f"Write the Doxygen comment for `{name}`."}]


def add(log: CallLog, task: str | None, stage: str, messages: list[dict[str, str]], response: str | None, *,
        day: float = 1.0, grammar: str | None = None, model: str = "qwen2.5-coder-1.5b", adapter: str | None = None,
        error: str | None = None, cancelled: bool = False, finish: str = "stop", tokens_in: int | None = 100,
        tokens_out: int | None = 20, duration: float | None = 1.0) -> int:
    return log.log_call(CallRecord(
        task_id=task, stage=stage, role="coding", model_name=model, model_hash="fp:x", adapter_name=adapter,
        messages=messages, response=response, grammar=grammar, tokens_in=tokens_in, tokens_out=tokens_out,
        finish_reason=finish, error=error, cancelled=cancelled, started_at=T0 + day * DAY, duration_s=duration))


YES_NO = "labels: yes | no"


def build_call_log(tmp_path: Path) -> LogFacts:
    """Tasks (outcome → expected signal):
    t_ok     implement, compiled+tests passed+applied  → implement positive, scope positive
    t_bad    implement, did not compile                 → implement negative, scope unknown (edit not answered)
    t_open   implement, no outcome yet                  → nothing exported
    t_rej    document, edit rejected                    → documentation negative, scope negative
    t_doc1/2 document, edit applied                     → documentation positive (3 identical calls → 1 pair)
    t_tests  tests, compiled, no tests ran, proposed    → test_generation positive
    """
    root = tmp_path / "ws"
    log = CallLog.for_workspace(root)
    ids: dict[str, int] = {}
    for task, action in [("t_ok", "implement"), ("t_bad", "implement"), ("t_open", "implement"),
                         ("t_rej", "document"), ("t_doc1", "document"), ("t_doc2", "document"),
                         ("t_tests", "tests")]:
        log.start_task(action, "src/clamp.c", "clamp", task_id=task)

    ids["impl_ok"] = add(log, "t_ok", "implement", implement_messages("clamp"), "  return x < 0 ? 0 : x;\n}\n",
                         adapter="implement:a6-implement", tokens_in=300, tokens_out=40, duration=2.0)
    ids["impl_timeout"] = add(log, "t_ok", "implement", implement_messages("clamp_slow"), None,
                              error="Timeout: 300 s", finish="timeout", tokens_in=None, tokens_out=None,
                              duration=4.0)
    ids["scope_ok"] = add(log, "t_ok", "scope", decision_messages("Is util.h relevant?"), "yes", grammar=YES_NO,
                          model="qwen2.5-coder-0.5b", tokens_in=50, tokens_out=1, duration=0.5)
    ids["scope_cancelled"] = add(log, "t_ok", "scope", decision_messages("Is main.c relevant?"), None,
                                 grammar=YES_NO, model="qwen2.5-coder-0.5b", error="Cancelled: by user",
                                 cancelled=True, finish="cancelled", tokens_in=None, tokens_out=None, duration=0.1)
    ids["scope_invalid"] = add(log, "t_ok", "scope", decision_messages("Is io.h relevant?"), "maybe",
                               grammar=YES_NO, model="qwen2.5-coder-0.5b", tokens_in=50, tokens_out=1,
                               duration=0.5)

    ids["impl_bad"] = add(log, "t_bad", "implement", implement_messages("clamp"), "  return x <<< 0;\n}\n",
                          tokens_in=300, tokens_out=30, duration=3.0, day=2.0)
    ids["impl_error"] = add(log, "t_bad", "implement", implement_messages("clamp"), None,
                            error="EngineError: decode failed", finish="error", tokens_in=None, tokens_out=None,
                            duration=None, day=2.0)
    ids["scope_bad"] = add(log, "t_bad", "scope", decision_messages("Is limits.h relevant?"), "no",
                           grammar=YES_NO, model="qwen2.5-coder-0.5b", tokens_in=50, tokens_out=1, duration=0.5,
                           day=2.0)

    ids["impl_open"] = add(log, "t_open", "implement", implement_messages("wrap"), "  return x;\n}\n", day=3.0)

    ids["doc_rej"] = add(log, "t_rej", "documentation", doc_messages("clamp"), "/** Clamp. */", day=4.0)
    # The same scope question and answer as in t_ok, but this task's edit was rejected: the votes disagree.
    ids["scope_conflict"] = add(log, "t_rej", "scope", decision_messages("Is util.h relevant?"), "yes",
                                grammar=YES_NO, model="qwen2.5-coder-0.5b", tokens_in=50, tokens_out=1,
                                duration=0.5, day=4.0)

    doc_ok = doc_messages("wrap")
    ids["doc_ok"] = add(log, "t_doc1", "documentation", doc_ok, "/** Wrap x. */", day=5.0)
    ids["doc_dup1"] = add(log, "t_doc1", "documentation", doc_ok, "/** Wrap x. */", day=5.0)
    ids["doc_dup2"] = add(log, "t_doc2", "documentation", doc_ok, "/** Wrap x. */", day=6.0)

    ids["tests_ok"] = add(log, "t_tests", "test_generation", doc_messages("test clamp"),
                          "void test_clamp(void) { assert(clamp(-1) == 0); }", day=7.0)

    log.record_outcome("t_ok", "implement", "src/clamp.c", "clamp", compiled=True, tests_passed=True,
                       edit_status="proposed")
    log.set_edit_status("t_ok", "applied")
    log.record_outcome("t_bad", "implement", "src/clamp.c", "clamp", compiled=False, tests_passed=None,
                       edit_status="failed", reason="compile error")
    log.record_outcome("t_rej", "document", "src/clamp.c", "clamp", compiled=None, tests_passed=None,
                       edit_status="proposed")
    log.set_edit_status("t_rej", "rejected", "not what I wanted")
    for task in ("t_doc1", "t_doc2"):
        log.record_outcome(task, "document", "src/clamp.c", "wrap", compiled=None, tests_passed=None,
                           edit_status="applied")
    log.record_outcome("t_tests", "tests", "src/clamp.c", "clamp", compiled=True, tests_passed=None,
                       edit_status="proposed")
    log.close()
    return LogFacts(root=root, ids=ids)
