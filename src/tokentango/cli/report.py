"""`python -m tokentango.report DIR [DIR ...] [--out DIR] [--metric NAME] [--target ACC]
[--tune KEY [KEY ...]]`: summarize sweep run folders into report.md, report.csv and plots."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tokentango.cli import defaults_of, fail
from tokentango.report import ReportError, check_metric, find_runs, write_report


def main(argv: Sequence[str] | None = None) -> int:
    d = defaults_of(write_report)
    parser = argparse.ArgumentParser(
        prog="python -m tokentango.report",
        description="Summarize sweep run folders into report.md, report.csv and plots.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="sweep or run folders, searched at any depth")  # fmt: skip
    parser.add_argument("--out", help="where to write the report (default: the first DIR)")
    parser.add_argument("--metric", default=d["metric"],
                        help="numeric results.json field to summarize and compare")  # fmt: skip
    parser.add_argument("--target", type=float, default=d["target"],
                        help="validation accuracy that counts as converged "
                        f"({d['target']})")  # fmt: skip
    parser.add_argument("--tune", nargs="+", default=[], metavar="KEY",
                        help="for each combination of the other settings, keep the value of "
                        "KEY (a setting column, e.g. optimizer.lr) with the best mean "
                        "validation accuracy and compare those (tuned.png)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.dirs)
        check_metric(runs, args.metric)
        text = write_report(args.out or args.dirs[0], args.dirs, runs, args.metric,
                            args.target, args.tune)  # fmt: skip
    except ReportError as err:
        return fail(err)
    print(text)
    return 0
