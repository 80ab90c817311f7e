"""`python -m ftlib doctor`: the environment check of lesson 00."""

import sys

from .environment import main

sys.exit(main())
