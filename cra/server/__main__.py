"""`python -m cra.server`: the language server (same as `cra lsp`); stdio unless `--tcp`."""

import sys

from cra.server.startup import fast_imports

with fast_imports():  # see cra.server.startup: about half the CPU time of the imports
    from cra.server.app import main

sys.exit(main())
