"""``python -m obj``: the command line (see obj.cli)."""

import sys

from .cli import run

sys.exit(run())
