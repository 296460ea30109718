"""Shared constants for the language-server tests: the server command and a small C file with known lines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMAND = [sys.executable, "-m", "server"]
SERVER_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

STUB_SOURCE = """\
#include <stddef.h>

/* Adds two numbers. */
int add(int a, int b) {
    return a + b;
}

int clamp(int value, int low, int high) {
    /* TODO */
    return 0;
}

int scale(int value);
"""
# 0-based lines inside each function of STUB_SOURCE.
LINE_IN_ADD = 4
LINE_IN_CLAMP = 9
LINE_OF_SCALE = 12
LINE_OUTSIDE = 1
