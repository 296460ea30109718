"""`python -m cra.server`: the language server (same as `cra lsp`); stdio unless `--tcp`."""

import sys

from cra.server.app import main

sys.exit(main())
