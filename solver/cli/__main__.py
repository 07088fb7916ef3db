"""`python -m solver.cli`: the same as `python -m solver` and `solver`."""

import sys

from solver.cli import main

sys.exit(main())
