"""Sweep report: `python -m tokentango.report DIR [DIR ...] [--out DIR] [--metric NAME]
[--target ACC] [--tune KEY [KEY ...]]`.

Run folders (any folder holding `.hydra/config.yaml`) -> runs grouped by every setting that
varies except the seed and `runtime` -> per-group statistics, convergence and pairwise tests
-> report.md, report.csv and PNG plots. Each stage is a plain function that a test can call
alone: `find_runs` -> `group_runs` -> `run_table` / `summarize` / `compare` -> `plot_*` ->
`write_report`; the runs of an Optuna search add its best trial (`search_trials`), `--tune`
the best value of a setting by validation (`best_by_validation` / `tune`), and a sweep over
`data.train_rows` a data-size curve (`data_scaling`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tokentango.report.markdown import markdown_table, render_markdown
from tokentango.report.plots import (
    plot_data_scaling,
    plot_losses,
    plot_metric_bars,
    plot_val_accuracy,
)
from tokentango.report.runs import (
    BASELINE_MODELS,
    Group,
    ReportError,
    Run,
    find_runs,
    flatten_config,
    group_runs,
    is_baseline,
    read_run,
    setting_keys,
)
from tokentango.report.search import Trial, best_trial, search_trials
from tokentango.report.stats import (
    Tuned,
    as_number,
    best_by_validation,
    compare,
    data_scaling,
    difference_test,
    run_table,
    summarize,
    tune,
)

__all__ = [
    "BASELINE_MODELS", "Group", "ReportError", "Run", "Trial", "Tuned", "best_by_validation",
    "best_trial", "check_metric", "compare", "data_scaling", "difference_test", "find_runs",
    "flatten_config", "group_runs", "is_baseline", "markdown_table", "read_run", "run_table",
    "search_trials", "setting_keys", "summarize", "tune", "write_report",
]  # fmt: skip


def write_report(out_dir: str | Path, dirs: Sequence[str | Path], runs: Sequence[Run],
                 metric: str = "test_accuracy", target: float = 0.80,
                 tune_keys: Sequence[str] = ()) -> str:  # fmt: skip
    """Group, summarize, compare and plot `runs`; write the files into `out_dir`.

    `tune_keys` (--tune) adds the best value of those settings by validation; a bad key
    raises ReportError before anything is written. Returns the text written to report.md.
    """
    groups = group_runs(runs)
    tuned = tune(groups, tune_keys, metric, target) if tune_keys else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(groups, metric, target)
    comparisons = compare(groups, metric)
    scaling = data_scaling(groups, metric)
    plot_val_accuracy(groups, out / "val_accuracy.png", target)
    plot_metric_bars(groups, out / "test_accuracy.png", metric)
    plot_losses(groups, out / "losses.png")
    parts = [run_table(groups, metric, target), summary]
    if tuned is not None:
        plot_metric_bars(tuned.groups, out / "tuned.png", metric,
                         f"{metric}, tuned on validation: {', '.join(tuned.keys)}")  # fmt: skip
        parts.append(tuned.summary)
    if not scaling.empty:
        plot_data_scaling(groups, scaling, out / "data_scaling.png", metric)
    table = pd.concat(parts, ignore_index=True)
    for column in ("seed", "steps", "n", "N", "steps_to_target", "tried"):  # 42, not 42.0
        if column in table and table[column].map(_integral).all():
            table[column] = table[column].astype("Int64")
    table.to_csv(out / "report.csv", index=False)
    text = render_markdown(dirs, runs, groups, summary, comparisons, metric, target,
                           search_trials(runs), tuned, scaling)  # fmt: skip
    (out / "report.md").write_text(text + "\n")
    return text


def _integral(value: Any) -> bool:
    """True for a whole number or a missing value (NaN/None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value == int(value)


def check_metric(runs: Iterable[Run], metric: str) -> None:
    """Raise ReportError if finished runs exist but none has a numeric `metric`."""
    finished = [r for r in runs if r.ok]
    if finished and all(math.isnan(as_number((r.results or {}).get(metric))) for r in finished):
        raise ReportError(f"--metric {metric}: no finished run has a numeric {metric!r} "
                          "in results.json")  # fmt: skip
