"""Workspace trust: until the user trusts the workspace, no command named by its config or build files runs."""

from __future__ import annotations

import threading
from typing import Any

import msgspec


class WorkspaceTrust:
    """Trust granted by initializationOptions/settings (`trust: true`) or by the `cra.trust` command.

    Settings can both grant and withdraw trust; the command grants it for the rest of the session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._from_settings = False
        self._from_command = False

    def apply_setting(self, value: bool | None) -> None:
        """`None` means the settings do not mention trust: keep what they said before."""
        if value is not None:
            with self._lock:
                self._from_settings = bool(value)

    def grant(self) -> None:
        with self._lock:
            self._from_command = True

    @property
    def trusted(self) -> bool:
        with self._lock:
            return self._from_settings or self._from_command

    def describe(self) -> str:
        if self.trusted:
            return "workspace trusted: build and test commands from its config may run"
        return ("workspace not trusted: cra compiles with its own gcc flags and runs no command named by "
                "cra.toml or build files (run the `cra.trust` command or set `cra.trust` to allow them)")


def restrict_untrusted(config: Any, trusted: bool) -> Any:
    """The config with every workspace-named command removed unless the workspace is trusted."""
    if trusted or not config.validation.test_command:
        return config
    validation = msgspec.structs.replace(config.validation, test_command="")
    return msgspec.structs.replace(config, validation=validation)
