"""`python -m cli ARGS`: the `tokenflow` command, for environments without its console script."""

import sys

from cli.main import main

sys.exit(main())
