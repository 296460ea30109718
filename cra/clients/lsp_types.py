"""Client-side fixes to lsprotocol's converter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from cattrs import Converter
from lsprotocol import types


def _command_or_code_action(converter: Converter, obj: Any) -> types.Command | types.CodeAction:
    # A Command's `command` is the command id (a string); a CodeAction's `command` is a Command object.
    # lsprotocol tries Command first and decodes every command-carrying CodeAction as a bare Command.
    if isinstance(obj, dict) and isinstance(obj.get("command"), str):
        return converter.structure(obj, types.Command)
    return converter.structure(obj, types.CodeAction)


def install_code_action_hook(converter: Converter) -> None:
    """Make `textDocument/codeAction` results decode as CodeAction when they are CodeActions."""
    # typing.Union/Optional, not `|`: the converter's hooks match these exact runtime objects.
    union = Union[types.Command, types.CodeAction]  # noqa: UP007
    converter.register_structure_hook(union, lambda obj, _: _command_or_code_action(converter, obj))
    containers = (Optional[Sequence[union]], Sequence[union])  # noqa: UP045
    converter.register_structure_hook_func(
        lambda t: t in containers,
        lambda obj, _: None if obj is None else [_command_or_code_action(converter, item) for item in obj])
