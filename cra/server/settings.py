"""Editor settings for cra, from initializationOptions, `workspace/didChangeConfiguration` or a pull."""

from __future__ import annotations

from typing import Any

import msgspec

SECTION = "cra"
# A C file larger than this is generated code or data, not something to edit with a small model.
DEFAULT_MAX_DOCUMENT_BYTES = 1_000_000


class SettingsError(Exception):
    """Settings sent by the editor that cra cannot use; the message names the key."""


class ServerSettings(msgspec.Struct, kw_only=True, rename="camel"):
    trust: bool | None = None
    # Overrides layered over cra.toml, in its schema (e.g. {"models": {"coding": {"model": "x.gguf"}}}).
    config: dict[str, Any] = {}
    config_file: str | None = None  # replaces the workspace's cra.toml
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES


def section_of(payload: Any) -> dict[str, Any]:
    """The cra section of a settings payload: editors send either `{"cra": {...}}` or the section itself."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise SettingsError(f"cra settings must be an object, got {type(payload).__name__}")
    inner = payload.get(SECTION)
    if isinstance(inner, dict):
        return inner
    return payload


def parse_settings(*layers: Any) -> ServerSettings:
    """Merge settings layers (later wins, key by key) into validated `ServerSettings`."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(section_of(layer))
    known = {f.encode_name for f in msgspec.structs.fields(ServerSettings)}
    try:
        settings = msgspec.convert({k: v for k, v in merged.items() if k in known}, type=ServerSettings)
    except (msgspec.ValidationError, UnicodeEncodeError) as exc:  # UnicodeEncodeError: a lone surrogate in a string
        raise SettingsError(f"invalid cra setting: {exc}") from None
    if settings.max_document_bytes <= 0:
        raise SettingsError("invalid cra setting: `maxDocumentBytes` must be positive")
    return settings
