"""Decisions: label probabilities from one forward pass; batched decisions equal one-by-one decisions."""

from __future__ import annotations

import math

import pytest

from cra.pipeline.engine import AdapterSpec, InvalidRequestError, LocalEngine, Message, ModelSpec

PREFIX = [Message(role="system", content="Judge each symbol: is it relevant to the task? Answer yes or no.")]
QUESTIONS = ["int add(int a, int b)", "static void log(void)", "x", "struct point { int x; int y; };", "add"]


def test_probabilities_sum_to_one(engine: LocalEngine, tiny: ModelSpec) -> None:
    for labels in [("yes", "no"), ("a", "b", "c", "d"), ("keep it", "drop")]:
        d = engine.decide(tiny, (), [*PREFIX, Message(role="user", content="add")], labels)
        assert set(d.probs) == set(labels)
        assert math.isclose(sum(d.probs.values()), 1.0, abs_tol=1e-9)
        assert d.label in labels and d.prob == max(d.probs.values())
        assert all(0.0 < p < 1.0 for p in d.probs.values())


def test_batched_equals_one_by_one(
    engine: LocalEngine, tiny: ModelSpec, lora_a: AdapterSpec
) -> None:
    for adapters in [(), (lora_a,)]:
        batched = engine.decide_batch(tiny, adapters, PREFIX, QUESTIONS, labels=("yes", "no"))
        fresh = LocalEngine()
        singles = [
            fresh.decide(tiny, adapters, [*PREFIX, Message(role="user", content=q)], ("yes", "no")) for q in QUESTIONS
        ]
        fresh.close()
        assert len(batched) == len(QUESTIONS)
        for b, s in zip(batched, singles):
            assert b.label == s.label
            for label in ("yes", "no"):
                assert abs(b.probs[label] - s.probs[label]) < 1e-4
    # the decisions differ between questions (the batch does not smear them together)
    assert len({round(d.probs["yes"], 6) for d in batched}) > 1


def test_batch_larger_than_sequence_slots(tiny: ModelSpec) -> None:
    engine = LocalEngine(n_seq_max=3)
    questions = [f"symbol_{i}" for i in range(7)]
    batched = engine.decide_batch(tiny, (), PREFIX, questions)
    singles = [engine.decide(tiny, (), [*PREFIX, Message(role="user", content=q)], ("yes", "no")) for q in questions]
    for b, s in zip(batched, singles):
        assert abs(b.probs["yes"] - s.probs["yes"]) < 1e-4
    assert singles[1].stats.cached_tokens > 10  # the shared prefix stayed in the cache after the batch
    engine.close()


def test_adapter_changes_decision_probabilities(engine: LocalEngine, tiny: ModelSpec, lora_a: AdapterSpec) -> None:
    msgs = [*PREFIX, Message(role="user", content="add")]
    base = engine.decide(tiny, (), msgs, ("yes", "no"))
    tuned = engine.decide(tiny, (lora_a,), msgs, ("yes", "no"))
    again = engine.decide(tiny, (), msgs, ("yes", "no"))
    assert abs(base.probs["yes"] - tuned.probs["yes"]) > 1e-3
    assert again.probs == base.probs


def test_invalid_labels(engine: LocalEngine, tiny: ModelSpec) -> None:
    msgs = [Message(role="user", content="q")]
    with pytest.raises(InvalidRequestError, match="same token"):
        engine.decide(tiny, (), msgs, ("yes", "yellow"))  # both start with byte 'y'
    with pytest.raises(InvalidRequestError, match="at least two"):
        engine.decide(tiny, (), msgs, ("yes",))
    with pytest.raises(InvalidRequestError, match="distinct"):
        engine.decide(tiny, (), msgs, ("no", "no"))
    assert engine.decide_batch(tiny, (), msgs, []) == []
