"""Fixtures for the language-server tests: a real `python -m server` subprocess driven by pytest-lsp."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_support import STUB_SOURCE


@pytest.fixture()
def c_workspace(tmp_path: Path) -> Path:
    (tmp_path / "math.c").write_text(STUB_SOURCE)
    return tmp_path
