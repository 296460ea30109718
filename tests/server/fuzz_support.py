"""Shared pieces of the fuzz suite (test_fuzz_*.py): hypothesis settings, JSON strategies, one live server."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cra.bench.robustness import KEYS, STRINGS, Case, CaseOutcome, Session, run_case

# Bounded and repeatable: a fixed number of examples, the same ones on every run, no timing-based failures.
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
                         st.sampled_from(STRINGS))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner,
                                                 max_size=4)), max_leaves=16)
_DELETE = object()


def mutations(value: Any) -> st.SearchStrategy[Any]:
    """`value` with one subtree replaced by a random JSON value, or removed."""
    if isinstance(value, dict) and value:
        def replace(key: str) -> st.SearchStrategy[Any]:
            return st.one_of(json_values, mutations(value[key]), st.just(_DELETE)).map(
                lambda new: {**{k: v for k, v in value.items() if k != key},
                             **({} if new is _DELETE else {key: new})})
        return st.sampled_from(sorted(value)).flatmap(replace)
    if isinstance(value, list) and value:
        return st.integers(min_value=0, max_value=len(value) - 1).flatmap(
            lambda i: mutations(value[i]).map(lambda new: [*value[:i], new, *value[i + 1:]]))
    return json_values


def check(session: Session, case: Case) -> CaseOutcome:
    """Run the case; fail with what broke: the process died, the normal request after it was not answered, or a
    request of the case was never answered."""
    outcome = run_case(session, case)
    sent = b"".join(case.chunks)[:300]
    assert not outcome.crashed, f"the server died on {sent!r}"
    assert not outcome.hung, f"the server stopped answering after {sent!r}"
    assert not outcome.unanswered, f"requests {outcome.unanswered} never answered: {sent!r}"
    assert outcome.liveness_error is None, f"a normal request failed after {sent!r}: {outcome.liveness_error}"
    return outcome
