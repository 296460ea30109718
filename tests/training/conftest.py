"""Fixtures of the adapters tests: a real call log with known tasks, calls and outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from curation_data import LogFacts, build_call_log


@pytest.fixture()
def call_log(tmp_path: Path) -> LogFacts:
    return build_call_log(tmp_path)
