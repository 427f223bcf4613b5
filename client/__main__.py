"""`python -m client generate|watch ...`."""

import sys

from client.cli import main

sys.exit(main())
