"""Register a trained adapter: the route (base model, stage) → adapter file in the user config's `[adapters]`
routing table, so the router serves it with no code change.

The user's file may hold comments and hand-written settings, so it is edited in place, not rewritten: the line
goes into the base model's existing `[adapters."<base>"]` table (replacing that stage's old route) or a new table
is appended. The result is parsed and validated before it replaces the file; anything unexpected (say, the table
written inline) leaves the file untouched and says what to add by hand.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from pathlib import Path

from cra.pipeline.config import ConfigError, load_config, user_config_path
from cra.pipeline.stages.registry import STAGE_SPECS


class RouteError(Exception):
    """The route cannot be written; the message says what to do instead."""


def register_adapter(base_model: str, stage: str, adapter: str | Path, *, config_file: Path | None = None) -> Path:
    """Add or replace `adapters."<base_model>".<stage> = "<adapter>"`; returns the config file written."""
    if stage not in STAGE_SPECS:
        raise RouteError(f"unknown stage {stage!r}")
    path = config_file or user_config_path()
    adapter = str(Path(adapter).resolve())
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        current = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RouteError(f"{path}: invalid TOML ({exc}); fix it, then register again") from None
    if current.get("adapters", {}).get(base_model, {}).get(stage) == adapter:
        return path
    updated = _with_route(text, base_model, stage, adapter)
    try:
        parsed = tomllib.loads(updated)
    except tomllib.TOMLDecodeError:
        parsed = {}
    if parsed.get("adapters", {}).get(base_model, {}).get(stage) != adapter:
        raise RouteError(f"{path}: cannot place the route automatically; add it by hand:\n"
                         f"  [adapters.{_key(base_model)}]\n  {stage} = {json.dumps(adapter)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(updated)
        _validate(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _validate(candidate: Path) -> None:
    """The whole config must still load with the new layer in it."""
    try:
        load_config(None, path=candidate, user=False)
    except ConfigError as exc:
        raise RouteError(f"the updated config would not load: {exc}") from None


def _key(name: str) -> str:
    return json.dumps(name)  # a TOML basic string is a JSON string for the characters paths and names use


def _with_route(text: str, base_model: str, stage: str, adapter: str) -> str:
    line = f"{stage} = {json.dumps(adapter)}"
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*adapters\s*\.\s*(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
    for i, raw in enumerate(lines):
        m = header.match(raw)
        if not m or _unquote(m.group(1)) != base_model:
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("[")), len(lines))
        own = re.compile(rf"^\s*(\"{re.escape(stage)}\"|'{re.escape(stage)}'|{re.escape(stage)})\s*=")
        for j in range(i + 1, end):
            if own.match(lines[j]):
                lines[j] = line
                return "\n".join(lines) + "\n"
        lines.insert(i + 1, line)
        return "\n".join(lines) + "\n"
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{sep}[adapters.{_key(base_model)}]\n{line}\n"


def _unquote(key: str) -> str:
    if key.startswith('"'):
        return str(json.loads(key))
    return key.strip("'")
