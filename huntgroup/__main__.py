"""``python -m huntgroup``: the same command line as the ``huntgroup`` script."""

import sys

from huntgroup.cli import main

if __name__ == "__main__":
    sys.exit(main())
