"""`python -m ftlib.bench --quick --json PATH` (see `ftlib.bench.speed`)."""

import sys

from .speed import main

sys.exit(main())
