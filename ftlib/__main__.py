"""`python -m ftlib doctor`: the environment check of lesson 00."""

import sys

from .course.environment import main

sys.exit(main())
