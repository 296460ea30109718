"""Edit application: an `ActionResult` becomes a versioned `WorkspaceEdit` that never clobbers text the user typed
meanwhile, sent with `workspace/applyEdit`; the editor's answer is recorded in the call log.

The pipeline computes its edits against the text the job started from. When the document changed while the job
ran, the edits are moved onto the target symbol's new location if the symbol's text is intact
(`ActionResult.anchor_text`); otherwise the edit is refused.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from cra.pipeline.actions import ACTION_TITLES, ActionResult, TextEditOut

if TYPE_CHECKING:
    from .server import CraLanguageServer


class EditRefused(Exception):
    """The result cannot be applied safely; the message tells the user why and what to do."""


def offset_at(text: str, line: int, character: int) -> int:
    """String offset of an LSP position (0-based line, UTF-16 column) in `text`."""
    start = 0
    for _ in range(line):
        newline = text.find("\n", start)
        if newline < 0:
            raise EditRefused(f"edit position line {line} is past the end of the document")
        start = newline + 1
    end = text.find("\n", start)
    line_text = text[start:] if end < 0 else text[start:end]
    units = 0
    for index, char in enumerate(line_text):
        if units >= character:
            return start + index
        units += 2 if ord(char) > 0xFFFF else 1
    if units < character:
        raise EditRefused(f"edit position {line}:{character} is past the end of its line")
    return start + len(line_text)


def position_at(text: str, offset: int) -> types.Position:
    """LSP position (UTF-16 column) of a string offset in `text`."""
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    column = sum(2 if ord(c) > 0xFFFF else 1 for c in text[line_start:offset])
    return types.Position(line=line, character=column)


def minimal_edit(old: str, new: str) -> TextEditOut:
    """One edit turning `old` into `new`: the span between their common prefix and common suffix."""
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]:
        suffix += 1
    start, end = position_at(old, prefix), position_at(old, len(old) - suffix)
    return TextEditOut(start_line=start.line, start_char=start.character, end_line=end.line,
                       end_char=end.character, new_text=new[prefix:len(new) - suffix])


def result_edits(result: ActionResult, job_text: str) -> list[TextEditOut]:
    """The result's edits on the target; derived from `new_text` when the pipeline gave only the full text."""
    if result.edits:
        return list(result.edits)
    if result.new_text is not None and result.new_text != job_text:
        return [minimal_edit(job_text, result.new_text)]
    return []


def _spans(edits: list[TextEditOut], text: str) -> list[tuple[int, int, str]]:
    return [(offset_at(text, e.start_line, e.start_char), offset_at(text, e.end_line, e.end_char), e.new_text)
            for e in edits]


def reanchor(edits: list[TextEditOut], job_text: str, current_text: str, anchor_text: str | None,
             symbol: str | None) -> list[types.TextEdit]:
    """Move edits computed on `job_text` onto `current_text`, via the intact anchor (the symbol's old text)."""
    what = f"`{symbol}`" if symbol else "the edited code"
    if not anchor_text:
        raise EditRefused(f"the document changed while cra worked on {what}; the result was not applied "
                          "(run the action again)")
    old_at = job_text.find(anchor_text)
    new_at = current_text.find(anchor_text)
    if old_at < 0 or new_at < 0:
        raise EditRefused(f"{what} was edited while cra worked on it; the result was not applied so your "
                          "changes are kept (run the action again)")
    if current_text.find(anchor_text, new_at + 1) >= 0:
        raise EditRefused(f"the document changed while cra worked on {what} and its text now appears more "
                          "than once; the result was not applied (run the action again)")
    shift = new_at - old_at
    moved: list[types.TextEdit] = []
    for start, end, new_text in _spans(edits, job_text):
        if start < old_at or end > old_at + len(anchor_text):
            raise EditRefused(f"the document changed while cra worked on {what} and the result reaches "
                              "outside it; not applied (run the action again)")
        moved.append(types.TextEdit(
            range=types.Range(start=position_at(current_text, start + shift),
                               end=position_at(current_text, end + shift)),
            new_text=new_text,
        ))
    return moved


def target_edit(result: ActionResult, *, uri: str, job_text: str, job_version: int | None,
                current_text: str, current_version: int | None) -> types.TextDocumentEdit | None:
    """The versioned edit of the target document, re-anchored if it changed; None when there is nothing to do."""
    edits = result_edits(result, job_text)
    if not edits:
        return None
    if current_text == job_text:
        for start, end, _ in _spans(edits, job_text):  # validates every position
            if end < start:
                raise EditRefused("the pipeline produced an edit whose end precedes its start; not applied")
        text_edits = [types.TextEdit(range=types.Range(start=types.Position(line=e.start_line, character=e.start_char),
                                                       end=types.Position(line=e.end_line, character=e.end_char)),
                                     new_text=e.new_text) for e in edits]
        # Same text: the version the job started from may have been bumped by a no-op change; use the current one.
        version = current_version if current_version is not None else job_version
    else:
        text_edits = reanchor(edits, job_text, current_text, result.anchor_text, result.symbol)
        version = current_version
    return types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=text_edits,
    )


def new_file_changes(result: ActionResult, target_path: str) -> list[types.CreateFile | types.TextDocumentEdit]:
    """CreateFile + content edit for each extra file; an existing file is never overwritten."""
    changes: list[types.CreateFile | types.TextDocumentEdit] = []
    base = os.path.dirname(target_path)
    for extra in result.files:
        path = extra.path if os.path.isabs(extra.path) else os.path.join(base, extra.path)
        if os.path.exists(path):
            raise EditRefused(f"{path} already exists; cra does not overwrite it (rename or remove it and run "
                              "the action again)")
        uri = Path(path).resolve().as_uri()
        changes.append(types.CreateFile(uri=uri))
        changes.append(types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
            edits=[types.TextEdit(range=types.Range(start=types.Position(line=0, character=0),
                                                    end=types.Position(line=0, character=0)),
                                  new_text=extra.text)],
        ))
    return changes


def workspace_edit(result: ActionResult, *, uri: str, target_path: str, job_text: str, job_version: int | None,
                   current_text: str, current_version: int | None) -> types.WorkspaceEdit | None:
    changes: list[types.TextDocumentEdit | types.CreateFile] = []
    edit = target_edit(result, uri=uri, job_text=job_text, job_version=job_version,
                       current_text=current_text, current_version=current_version)
    if edit is not None:
        changes.append(edit)
    changes.extend(new_file_changes(result, target_path))
    return types.WorkspaceEdit(document_changes=changes) if changes else None


async def apply_edit(ls: CraLanguageServer, edit: types.WorkspaceEdit, label: str) -> tuple[bool, str | None]:
    """Send `workspace/applyEdit`: (applied, the client's reason when it did not)."""
    try:
        response = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=label))
    except JsonRpcException as exc:  # the client answered with an error: nothing was applied
        return False, f"the editor answered with an error: {exc}"
    if response.applied:
        return True, None
    return False, response.failure_reason or "no reason given"


def accepted_status(ls: CraLanguageServer) -> str:
    """The label of an edit the client accepted: "applied"; "proposed" for a client that writes the file itself
    after answering (the headless `cra run` says so at initialize and records "applied" once its write happened,
    so a process killed in between never leaves "applied" on a file that was not written)."""
    options = ls.init_options if isinstance(ls.init_options, dict) else {}
    return "proposed" if options.get("clientWritesFiles") is True else "applied"


async def apply_result(ls: CraLanguageServer, result: ActionResult, *, uri: str, path: str, job_text: str,
                       job_version: int | None) -> tuple[bool, str | None]:
    """Send an action's result to the editor: (applied, why not when it was refused or not sent)."""
    from .documents import DocumentError, read_source_file

    document = ls.workspace.get_text_document(uri)
    root = ls.workspace_root(path)
    try:
        if ls.documents.is_open(uri):
            current_text = document.source
        else:  # not `document.source`: pygls would read whatever the path now is on the event loop
            try:
                current_text = await asyncio.to_thread(read_source_file, path, ls.settings.max_document_bytes)
            except DocumentError as exc:
                raise EditRefused(f"cannot check the target file before editing it: {exc}") from None
        edit = workspace_edit(result, uri=uri, target_path=path, job_text=job_text, job_version=job_version,
                              current_text=current_text, current_version=document.version)
    except EditRefused as exc:
        ls.show(str(exc), types.MessageType.Warning)
        ls.runner.set_edit_status(root, result.task_id, "rejected", f"not sent to the editor: {exc}")
        return False, str(exc)
    if edit is None:
        return False, None
    applied, reason = await apply_edit(ls, edit, ACTION_TITLES.get(result.action, "cra"))
    # The call log learns what became of the proposal: the training data's label.
    ls.runner.set_edit_status(root, result.task_id, accepted_status(ls) if applied else "rejected", reason)
    if not applied:
        return False, f"the editor did not apply the edit: {reason or 'no reason given'}"
    return True, None
