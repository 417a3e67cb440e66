"""`python -m tokentango.status SWEEP_DIR [--json] [--watch SECONDS]`: which jobs of a sweep
are pending, running, interrupted, failed or done (tokentango.status)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from tokentango.cli import fail
from tokentango.status import count_states, job_states


def format_rows(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any, digits: str = "") -> str:
        return "-" if value is None else format(value, digits)

    lines = [f"{'job':>4} {'slurm id':<12} {'state':<12} {'step':>6} {'test acc':>8}  "
             "run folder / note"]  # fmt: skip
    for r in rows:
        where = " ".join(x for x in (r["run_folder"], f"({r['note']})" if r["note"] else "") if x)
        accuracy = cell(r["test_accuracy"], ".4f")
        lines.append(f"{r['num']:>4} {cell(r['job_id']):<12} {r['state']:<12} "
                     f"{cell(r['step']):>6} {accuracy:>8}  {where}")  # fmt: skip
    counts = count_states(rows)
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items()) or "no jobs yet")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tokentango.status",
        description="Which jobs of a sweep are pending, running, interrupted, failed or done: "
        "from SLURM's queue (jobs submitted with hydra/launcher=slurm) and the run folders.",
    )  # fmt: skip
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the sweep folder")
    parser.add_argument("--json", action="store_true", help="one JSON object per job")
    parser.add_argument("--watch", type=float, metavar="SECONDS",
                        help="repeat every SECONDS until no job is pending or running")  # fmt: skip
    args = parser.parse_args(argv)
    while True:
        try:
            rows = job_states(args.sweep_dir)
        except FileNotFoundError as err:
            return fail(err)
        if args.json:
            print("\n".join(json.dumps(r) for r in rows))
        else:
            print(format_rows(rows), flush=True)
        active = any(r["state"] in ("pending", "running") for r in rows)
        if not args.watch or not active:
            return 0
        time.sleep(args.watch)
        print()
