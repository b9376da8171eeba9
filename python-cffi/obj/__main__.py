"""``python -m obj``: the command line (see obj.cli)."""

import sys

from .cli import main

sys.exit(main())
