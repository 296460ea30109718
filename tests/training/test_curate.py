"""`cra curate-data` core: outcome-labelled pairs only, labels by stage signal, dedup, split, manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from curation_data import DAY, T0, YES_NO, LogFacts, add, decision_messages

from cra.pipeline.calllog import CallLog, log_path
from cra.training.curate import CurateOptions, CurationError, curate, in_valid_split, open_log, parse_since


def read_pairs(out: Path) -> list[dict[str, Any]]:
    pairs = []
    for path in sorted(out.glob("*.jsonl")):
        pairs += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pairs


def run(facts: LogFacts, out: Path, **options: Any) -> tuple[Any, list[dict[str, Any]]]:
    log = open_log(facts.root)
    try:
        manifest = curate(log, out, CurateOptions(**options))
    finally:
        log.close()
    return manifest, read_pairs(out)


def test_only_successful_calls_of_tasks_with_an_outcome_become_pairs(call_log: LogFacts, tmp_path: Path) -> None:
    manifest, pairs = run(call_log, tmp_path / "out", min_label="any", valid_fraction=0.0)
    ids = call_log.ids
    exported = {p["meta"]["call_id"] for p in pairs}
    assert exported == {ids["impl_ok"], ids["impl_bad"], ids["scope_ok"], ids["scope_bad"], ids["doc_rej"],
                        ids["doc_ok"], ids["tests_ok"]}
    assert manifest.skipped.no_outcome == 1  # t_open
    assert manifest.skipped.failed == 3  # timeout, cancelled, engine error
    assert manifest.skipped.invalid_decision == 1  # "maybe" is not a label
    assert manifest.pairs == len(pairs) == 7


def test_labels_follow_each_stages_training_signal(call_log: LogFacts, tmp_path: Path) -> None:
    _, pairs = run(call_log, tmp_path / "out", min_label="any", valid_fraction=0.0)
    ids = call_log.ids
    label = {p["meta"]["call_id"]: p["meta"]["label"] for p in pairs}
    assert label[ids["impl_ok"]] == "positive"  # compiled, tests passed, applied
    assert label[ids["impl_bad"]] == "negative"  # did not compile
    assert label[ids["scope_bad"]] == "unknown"  # the edit was never accepted: the file's use is unknown
    assert label[ids["doc_rej"]] == "negative"  # documentation edit rejected
    assert label[ids["doc_ok"]] == "positive"  # documentation edit applied
    assert label[ids["tests_ok"]] == "positive"  # the generated tests compiled
    # Same scope answer in an accepted and a rejected task: contradictory votes leave it unknown.
    assert label[ids["scope_ok"]] == "unknown"
    scope = next(p for p in pairs if p["meta"]["call_id"] == ids["scope_ok"])
    assert scope["meta"]["label_votes"] == {"negative": 1, "positive": 1}


def test_positive_min_label_keeps_only_confirmed_pairs(call_log: LogFacts, tmp_path: Path) -> None:
    manifest, pairs = run(call_log, tmp_path / "out", valid_fraction=0.0)
    ids = call_log.ids
    assert {p["meta"]["call_id"] for p in pairs} == {ids["impl_ok"], ids["doc_ok"], ids["tests_ok"]}
    assert {p["meta"]["label"] for p in pairs} == {"positive"}
    assert manifest.skipped.label == 5  # impl_bad, scope (2 votes), scope_bad, doc_rej
    assert not (tmp_path / "out" / "scope.train.jsonl").exists()  # no positive scope pair: no file


def test_known_min_label_adds_negatives_but_not_unknowns(call_log: LogFacts, tmp_path: Path) -> None:
    _, pairs = run(call_log, tmp_path / "out", min_label="known", valid_fraction=0.0)
    assert sorted(p["meta"]["label"] for p in pairs) == ["negative", "negative", "positive", "positive",
                                                         "positive"]


def test_pairs_are_chat_format_with_the_response_as_assistant_turn(call_log: LogFacts, tmp_path: Path) -> None:
    _, pairs = run(call_log, tmp_path / "out", min_label="any", valid_fraction=0.0)
    by_id = {p["meta"]["call_id"]: p for p in pairs}
    impl = by_id[call_log.ids["impl_ok"]]
    # The pre-filled assistant turn and its continuation become one answer.
    assert [m["role"] for m in impl["messages"]] == ["system", "user", "assistant"]
    assert impl["messages"][-1]["content"] == "```c\nint clamp(int x)\n{\n  return x < 0 ? 0 : x;\n}\n"
    assert impl["meta"]["outcome"] == {"action": "implement", "compiled": True, "tests_passed": True,
                                       "edit_status": "applied"}
    assert impl["meta"]["adapter"] == "a6-implement"
    assert impl["meta"]["task_id"] == "t_ok" and impl["meta"]["stage"] == "implement"
    doc = by_id[call_log.ids["doc_ok"]]
    assert doc["messages"][-1] == {"role": "assistant", "content": "/** Wrap x. */"}
    assert [m["role"] for m in doc["messages"]] == ["system", "user", "assistant"]


def test_decision_pairs_answer_with_the_chosen_label(call_log: LogFacts, tmp_path: Path) -> None:
    _, pairs = run(call_log, tmp_path / "out", min_label="any", valid_fraction=0.0, stages=["scope"])
    assert {p["meta"]["stage"] for p in pairs} == {"scope"}
    answers = {p["meta"]["call_id"]: p["messages"][-1] for p in pairs}
    assert answers[call_log.ids["scope_bad"]] == {"role": "assistant", "content": "no"}
    assert all(p["meta"]["choices"] == ["yes", "no"] for p in pairs)


def test_identical_pairs_collapse_into_one(call_log: LogFacts, tmp_path: Path) -> None:
    manifest, pairs = run(call_log, tmp_path / "out", valid_fraction=0.0, stages=["documentation"])
    assert len(pairs) == 1
    assert pairs[0]["meta"]["label_votes"] == {"positive": 3}  # t_doc1 twice, t_doc2 once
    assert manifest.stages["documentation"].duplicates == 2


def test_manifest_counts_match_the_files(call_log: LogFacts, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest, _ = run(call_log, out, min_label="any", valid_fraction=0.5)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert set(on_disk["stages"]) == {"implement", "scope", "documentation", "test_generation"}
    for stage, counts in on_disk["stages"].items():
        train = (out / f"{stage}.train.jsonl").read_text().splitlines()
        valid = (out / f"{stage}.valid.jsonl").read_text().splitlines()
        assert (counts["train"], counts["valid"]) == (len(train), len(valid))
        labels: dict[str, int] = {}
        for line in train + valid:
            label = json.loads(line)["meta"]["label"]
            labels[label] = labels.get(label, 0) + 1
        assert counts["labels"] == labels
    assert on_disk["stages"]["documentation"]["labels"] == {"negative": 1, "positive": 1}
    assert on_disk["pairs"] == manifest.pairs == 7
    assert on_disk["options"]["valid_fraction"] == 0.5


def _many_prompts(root: Path, n: int) -> None:
    log = CallLog.for_workspace(root)
    log.start_task("implement", "a.c", "f", task_id="big")
    for i in range(n):
        add(log, "big", "scope_dependency", decision_messages(f"Is header_{i}.h relevant?"), "yes", grammar=YES_NO)
        if i % 10 == 0:  # a second answer to the same prompt must land on the same side
            add(log, "big", "scope_dependency", decision_messages(f"Is header_{i}.h relevant?"), "no",
                grammar=YES_NO)
    log.record_outcome("big", "implement", "a.c", "f", compiled=True, tests_passed=True, edit_status="applied")
    log.close()


def test_split_is_deterministic_disjoint_and_keeps_prompts_together(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _many_prompts(root, 300)
    facts = LogFacts(root=root, ids={})
    first, _ = run(facts, tmp_path / "a", valid_fraction=0.25)
    second, _ = run(facts, tmp_path / "b", valid_fraction=0.25)
    for name in ("scope_dependency.train.jsonl", "scope_dependency.valid.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first.stages == second.stages

    def prompts(name: str) -> list[str]:
        lines = (tmp_path / "a" / name).read_text().splitlines()
        return [json.dumps(json.loads(line)["messages"][:-1]) for line in lines]

    train, valid = prompts("scope_dependency.train.jsonl"), prompts("scope_dependency.valid.jsonl")
    assert not set(train) & set(valid)
    assert len(train) + len(valid) == 330
    assert 0.15 < len(set(valid)) / 300 < 0.35  # hash split near the asked fraction
    assert first.stages["scope_dependency"].labels == {"positive": 330}


def test_valid_fraction_zero_puts_everything_in_train(call_log: LogFacts, tmp_path: Path) -> None:
    manifest, _ = run(call_log, tmp_path / "out", min_label="any", valid_fraction=0.0)
    assert all(c.valid == 0 for c in manifest.stages.values())
    assert not in_valid_split("f" * 64, 0.999) and in_valid_split("0" * 64, 0.001)


def test_since_and_model_filters(call_log: LogFacts, tmp_path: Path) -> None:
    manifest, pairs = run(call_log, tmp_path / "a", min_label="any", valid_fraction=0.0, since=T0 + 4.5 * DAY)
    assert {p["meta"]["call_id"] for p in pairs} == {call_log.ids["doc_ok"], call_log.ids["tests_ok"]}
    # Before day 4.5: both implement calls, four scope calls (one of them invalid) and the rejected doc.
    assert manifest.skipped.filtered == 7
    _, pairs = run(call_log, tmp_path / "b", min_label="any", valid_fraction=0.0, model="qwen2.5-coder-0.5b")
    assert {p["meta"]["stage"] for p in pairs} == {"scope"}


def test_parse_since_accepts_dates_and_ages() -> None:
    assert parse_since("2026-01-02T00:00:00+00:00") == T0 + DAY
    assert parse_since("36h", now=T0 + 2 * DAY) == T0 + 0.5 * DAY
    assert parse_since("7d", now=T0 + 7 * DAY) == T0
    with pytest.raises(CurationError, match="--since 'last tuesday'"):
        parse_since("last tuesday")


def test_a_previous_export_is_replaced_only_with_force(call_log: LogFacts, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(call_log, out, min_label="any", valid_fraction=0.0)
    assert (out / "scope.train.jsonl").exists()
    with pytest.raises(CurationError, match="--force"):
        run(call_log, out, valid_fraction=0.0)
    assert (out / "scope.train.jsonl").exists()  # nothing lost by the refusal
    run(call_log, out, valid_fraction=0.0, force=True)
    assert not (out / "scope.train.jsonl").exists()  # the stale stage file of the old export is gone
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(CurationError, match="notes.txt"):
        run(call_log, foreign, valid_fraction=0.0, force=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_bad_options_are_refused_before_writing(call_log: LogFacts, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(CurationError, match="--valid-fraction 1.0"):
        run(call_log, out, valid_fraction=1.0)
    with pytest.raises(CurationError, match="--stage 'implementation'"):
        run(call_log, out, stages=["implementation"])
    assert not out.exists()


def test_missing_log_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(CurationError, match="no call log at"):
        open_log(tmp_path)
    assert not (tmp_path / ".cra").exists()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = log_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"these are not the calls you are looking for\n" * 200)
    with pytest.raises(CurationError, match="cannot open the call log"):
        open_log(tmp_path)
    assert path.read_bytes().startswith(b"these are not")  # untouched


def test_a_damaged_database_is_a_clear_error(call_log: LogFacts, tmp_path: Path) -> None:
    path = log_path(call_log.root)
    size = path.stat().st_size
    assert size > 8192 and not path.with_name("calls.db-wal").exists()
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (size - 4096)  # keep the header page, wreck every table page
    path.write_bytes(bytes(data))
    with pytest.raises(CurationError, match=r"calls\.db.*malformed"):  # at open or when the tables are read
        log = open_log(call_log.root)
        try:
            curate(log, tmp_path / "out", CurateOptions())
        finally:
            log.close()
    assert path.read_bytes() == bytes(data)  # the damaged log is left as it was, for recovery


def test_a_failed_forced_export_keeps_the_previous_one(call_log: LogFacts, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(call_log, out, min_label="any", valid_fraction=0.0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    path = log_path(call_log.root)
    data = bytearray(path.read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    with pytest.raises(CurationError, match="malformed"):
        run(call_log, out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []
