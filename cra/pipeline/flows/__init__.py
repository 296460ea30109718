"""The actions' flows, by action name. A flow module defines `FLOW` (a `base.Flow` with its own states and typed
data); adding an action is a new module here and one name in `FLOW_MODULES`, nothing in the orchestrator."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from cra.pipeline.flows.base import Flow

FLOW_MODULES: tuple[str, ...] = ("plan", "scaffold", "implement", "tests", "document")


@cache
def flows() -> dict[str, Flow[Any]]:
    """Every flow, by its action name (the modules are imported on first use)."""
    found: dict[str, Flow[Any]] = {}
    for name in FLOW_MODULES:
        flow = importlib.import_module(f"{__name__}.{name}").FLOW
        if flow.action in found:
            raise TypeError(f"two flows for action {flow.action!r}")
        found[flow.action] = flow
    return found
