"""`python -m tokentango.report DIR [DIR ...]`: the command line is tokentango.cli.report."""

import sys

from tokentango.cli.report import main

sys.exit(main())
