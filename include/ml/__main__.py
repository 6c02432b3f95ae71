"""``python -m include.ml``: see :mod:`include.ml.cli`."""

import sys

from include.ml.cli import main

sys.exit(main())
