"""`python -m latentcast ...`: the same commands as the `latentcast` console script."""

import sys

from latentcast.server.cli import main

sys.exit(main())
