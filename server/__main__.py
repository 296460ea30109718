"""`python -m server`: the language server on stdio (same as `cra lsp`)."""

from server.app import main

main()
