"""`python -m tokentango.prepare [overrides]`: build a run's data cache only; the command
line is tokentango.cli.prepare."""

import sys

from tokentango.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
