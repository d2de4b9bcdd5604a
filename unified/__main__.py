"""``python -m unified``: the same command as ``unified``."""

from __future__ import annotations

import sys

from unified.cli import main

if __name__ == "__main__":
    sys.exit(main())
