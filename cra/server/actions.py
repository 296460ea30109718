"""Which cra code actions apply at a position: deterministic, no model, no pipeline call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lsprotocol import types

from cra.pipeline.actions import ACTION_TITLES, ACTIONS

from .symbols import DEFINITION, FunctionSite, find_function, function_at

KIND_PREFIX = "refactor.rewrite.cra"
COMMAND_PREFIX = "cra."
# Commands beyond the actions: insert a generated docstring (hover), mark the workspace trusted.
INSERT_DOC_COMMAND = "cra.insertDoc"
TRUST_COMMAND = "cra.trust"
ACTION_COMMANDS: dict[str, str] = {action: COMMAND_PREFIX + action for action in ACTIONS}
ALL_COMMANDS: tuple[str, ...] = (*ACTION_COMMANDS.values(), INSERT_DOC_COMMAND, TRUST_COMMAND)
# Offered when a generated doc comment (from hover) is cached for the function under the cursor.
INSERT_DOC_KIND = f"{KIND_PREFIX}.insertDoc"
CODE_ACTION_KINDS: tuple[str, ...] = (*(f"{KIND_PREFIX}.{action}" for action in ACTIONS), INSERT_DOC_KIND)
# Whole-file actions need no function under the cursor.
FILE_ACTIONS = ("plan", "scaffold")


def action_for_command(command: str) -> str | None:
    """The action name a `cra.<action>` command runs, or None for other commands."""
    action = command.removeprefix(COMMAND_PREFIX)
    return action if command.startswith(COMMAND_PREFIX) and action in ACTIONS else None


def actions_for_function(site: FunctionSite | None, sites: Sequence[FunctionSite]) -> list[str]:
    """The actions that make sense for the function under the cursor (None: outside any function)."""
    chosen: list[str] = []
    if site is not None:
        definition = find_function(list(sites), site.name)
        has_body = definition is not None and definition.kind == DEFINITION
        if not has_body or definition.is_stub:  # type: ignore[union-attr]
            chosen.append("implement")
        else:
            chosen.append("tests")
        chosen.append("document")
    chosen.extend(FILE_ACTIONS)
    return chosen


def kind_wanted(kind: str, only: Sequence[str] | None) -> bool:
    # LSP kinds are hierarchical: asking for "refactor" includes "refactor.rewrite.cra.implement".
    return not only or any(kind == want or kind.startswith(want + ".") for want in only)


def code_actions(uri: str, version: int | None, sites: Sequence[FunctionSite], line: int,
                 available: Iterable[str], only: Sequence[str] | None = None) -> list[types.CodeAction]:
    """Code actions for `line` of a C document: each carries its `cra.<action>` command, no edit."""
    site = function_at(list(sites), line)
    usable = set(available)
    offered: list[types.CodeAction] = []
    for action in actions_for_function(site, sites):
        kind = f"{KIND_PREFIX}.{action}"
        if action not in usable or not kind_wanted(kind, only):
            continue
        symbol = site.name if site is not None else None
        title = ACTION_TITLES[action] + (f" `{symbol}`" if symbol and action not in FILE_ACTIONS else "")
        argument = {"uri": uri, "symbol": symbol, "version": version}
        offered.append(types.CodeAction(
            title=title,
            kind=kind,
            command=types.Command(title=title, command=ACTION_COMMANDS[action], arguments=[argument]),
        ))
    return offered
