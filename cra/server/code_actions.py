"""`textDocument/codeAction` and `codeAction/resolve`: which cra actions apply under the cursor.

Answered from the document's parsed functions (`documents.DocumentSites`) and the action catalogue (`actions`):
no model, no pipeline call, no wait for the pipeline's import or the workspace index.
"""

from __future__ import annotations

from lsprotocol import types

from . import actions as cra_actions
from .docgen import insert_doc_action
from .documents import DocumentError, is_c_document
from .server import CraLanguageServer


async def code_action(ls: CraLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    document = ls.workspace.get_text_document(uri)
    if not is_c_document(uri, document.language_id):
        return None
    try:
        version, _, sites = await ls.documents.sites(uri, quick=True)  # never waits for the C parser to load
    except (DocumentError, OSError, UnicodeDecodeError):
        return None  # already reported once when the document was opened
    line = params.range.start.line
    offered = cra_actions.code_actions(uri, version, sites, line, ls.offered_actions(), params.context.only)
    if uri.startswith("file:"):
        insert = insert_doc_action(ls, uri, version, sites, line, params.context.only)
        if insert is not None:
            offered.append(insert)
    return offered or None


def resolve(ls: CraLanguageServer, action: types.CodeAction) -> types.CodeAction:
    # Our actions are command-only and complete; Neovim 0.7 still resolves them: hand them back unchanged.
    return action


def register(server: CraLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=list(cra_actions.CODE_ACTION_KINDS), resolve_provider=True))(code_action)
    server.feature(types.CODE_ACTION_RESOLVE)(resolve)
