"""Pipeline fixtures: a config pointing every role at the tiny generated model, a real engine, a real call log,
and small C workspaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import Runner, make_runner

from cra.pipeline.calllog import CallLog
from cra.pipeline.engine import LocalEngine
from cra.training.synthetic import write_lora_for


@pytest.fixture(scope="session")
def long_tiny_adapter(gguf_dir: Path, long_tiny_model: Path) -> Path:
    return write_lora_for(long_tiny_model, gguf_dir / "tiny-8k-lora.gguf", rank=4, seed=1)


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    eng = LocalEngine()
    yield eng
    eng.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CallLog]:
    calllog = CallLog(tmp_path / "calls.db")
    yield calllog
    calllog.close()


POINT_H = """#ifndef POINT_H
#define POINT_H

typedef struct point { int x; int y; } Point;

int point_x(const Point *p);
#endif /* POINT_H */
"""

POINT_C = """#include "point.h"

int point_x(const Point *p)
{
    return p->x;
}

int point_y(const Point *p)
{
    return p->y;
}

/** Manhattan distance between two points. */
int point_distance(const Point *a, const Point *b)
{
    int dx = a->x - b->x;
    int dy = a->y - b->y;
    return (dx < 0 ? -dx : dx) + (dy < 0 ? -dy : dy);
}

/** Adds two numbers. */
int add(int a, int b)
{
    return 0;
}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "point.h").write_text(POINT_H)
    (root / "point.c").write_text(POINT_C)
    return root


@pytest.fixture
def run(engine: LocalEngine, log: CallLog, long_tiny_model: Path) -> Runner:
    return make_runner(engine, log, long_tiny_model)

