"""Regenerate docs/reliability.md, the table of each fault or bad input, what happened and
what was kept, from the reliability tests' own results.

    uv run python benchmarks/reliability_table.py [--out docs/reliability.md] [--with-slow]

Runs the reliability test files once with the table plugin on (tests/reliability.py): each
test records what it observed, and only the rows of tests that passed reach the table, so
it says what the suite shows today, not what someone wrote down. Exits as pytest does: a
failing test is listed below the table and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability import COMMAND_ENV, OUT_ENV  # noqa: E402

# The tests that record rows (bad input, faults, signals, kills, write errors, cache races,
# checkpoints, pickles, predict).
FILES = ["tests/test_errors.py", "tests/test_faults.py", "tests/test_interrupt.py",
         "tests/test_checkpoints.py", "tests/test_kill.py"]  # fmt: skip
COMMAND = "uv run python benchmarks/reliability_table.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--with-slow", action="store_true",
                        help="also run the tests marked slow (left out by default)")  # fmt: skip
    args = parser.parse_args(argv)
    command = COMMAND + (" --with-slow" if args.with_slow else "")
    env = {**os.environ, OUT_ENV: str(args.out.absolute()), COMMAND_ENV: command}
    pytest_args = ["-q", "-p", "no:cacheprovider", *FILES, *(["-m", ""] if args.with_slow else [])]
    code = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT,
                          env=env).returncode  # fmt: skip
    print(f"wrote {args.out}" if args.out.exists() else f"{args.out} not written")
    return code


if __name__ == "__main__":
    sys.exit(main())
