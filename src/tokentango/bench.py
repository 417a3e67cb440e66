"""`python -m tokentango.bench`: training, evaluation and start-up speed on this machine;
the command line is tokentango.cli.bench."""

import sys

from tokentango.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
