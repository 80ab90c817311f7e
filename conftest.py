"""The one place that makes a test run strict: a lesson claim that a run does not show fails it.

pytest loads this file before it collects anything, for `make test`, `make notebooks`, nbval
and CI alike; notebook kernels started by nbval inherit the environment. A student's own
run leaves FTLIB_STRICT unset, so `ftlib.claim` explains a claim the run did not show and
the notebook goes on.
"""

import os

os.environ.setdefault("FTLIB_STRICT", "1")
