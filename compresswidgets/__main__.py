"""``python -m compresswidgets``: the command line (see :mod:`compresswidgets.cli`)."""

import sys

from compresswidgets.cli import main

sys.exit(main())
