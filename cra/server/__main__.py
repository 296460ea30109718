"""`python -m server`: the language server on stdio (same as `cra lsp`)."""

from cra.server.app import main

main()
