"""report.md: Markdown tables and the report's text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tokentango.report.runs import Group, Run, format_value
from tokentango.report.search import OBJECTIVE, Trial, best_trial
from tokentango.report.stats import as_number, secondary_metrics


def _cell(value: Any, digits: int = 4) -> str:
    if isinstance(value, float | np.floating):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, digits: dict[str, int] | None = None) -> str:
    """A GitHub Markdown table; floats rounded per column (default 4 places), NaN as '-'."""
    digits = digits or {}
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    # Column lists, not iterrows: a row Series would turn a None setting into NaN.
    columns = [frame[c].tolist() for c in frame.columns]
    for values in zip(*columns, strict=True):
        cells = [_cell(v, digits.get(c, 4)) for c, v in zip(frame.columns, values, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _group_view(summary: pd.DataFrame, groups: Sequence[Group], metric: str) -> pd.DataFrame:
    settings = list(groups[0].settings) if groups else []
    columns = {c: c for c in settings} | {"runs": "runs (n of N)"}
    for how in ("mean", "std", "min", "max"):
        columns[f"{metric}_{how}"] = f"{metric} {how}"
    for extra in secondary_metrics(metric):
        columns[f"{extra}_mean"] = f"{extra} mean"
    columns |= {
        "train_seconds_mean": "train s", "samples_per_second_mean": "samples/s",
        "steps_to_target_mean": "steps to target", "seconds_to_target_mean": "s to target",
        "reached": "reached", "final_cls_loss_mean": "final cls loss",
        "final_mlm_loss_mean": "final mlm loss",
    }  # fmt: skip
    view = summary[list(columns)].rename(columns=columns)
    for c in settings:  # from the groups, as written in a config: 0.0001, null, [0.9, 0.999]
        view[c] = [format_value(g.settings[c]) for g in groups]
    if not settings:
        view.insert(0, "group", summary["group"])
    return view


_VIEW_DIGITS = {"train s": 1, "samples/s": 1, "steps to target": 1, "s to target": 1}


def best_trial_lines(trials: Sequence[Trial]) -> list[str]:
    """The "Best trial" section of an Optuna search (nothing without trials)."""
    if not trials:
        return []
    done = sum(t.run.ok for t in trials)
    lines = ["## Best trial", "",
             f"Optuna search: {len(trials)} trials ({done} finished, {len(trials) - done} "
             f"failed or unfinished). The best is the one with the highest validation "
             f"accuracy (`{OBJECTIVE}`, the value the study maximizes); test accuracy plays no "
             "part in the choice.", ""]  # fmt: skip
    best = best_trial(trials)
    if best is None:
        return [*lines, "No trial finished.", ""]
    results = best.run.results or {}
    params = ", ".join(f"{k}={format_value(v)}" for k, v in best.params.items()) or "-"
    number = "-" if best.number is None else best.number
    return [*lines,
            f"**Trial {number}**: validation accuracy {_cell(best.value)} (step "
            f"{results.get('best_step', '-')}), test accuracy "
            f"{_cell(as_number(results.get('test_accuracy')))}", "",
            f"- parameters: {params}",
            f"- run folder: `{best.run.path}`", ""]  # fmt: skip


def render_markdown(dirs: Sequence[str | Path], runs: Sequence[Run], groups: Sequence[Group],
                    summary: pd.DataFrame, comparisons: pd.DataFrame, metric: str,
                    target: float, trials: Sequence[Trial] = ()) -> str:  # fmt: skip
    """The whole report.md text (plots linked relative to the report); `trials`, an Optuna
    search's, add its best trial."""
    done = sum(r.ok for r in runs)
    lines = [
        "# Sweep report", "",
        "Folders: " + ", ".join(f"`{d}`" for d in dirs), "",
        f"{len(runs)} runs ({done} finished) in {len(groups)} groups; grouped by every "
        f"setting that varies except the seed. Metric: `{metric}`; convergence target: "
        f"validation accuracy >= {target:g}.", "",
        "## Groups", "",
        markdown_table(_group_view(summary, groups, metric), _VIEW_DIGITS), "",
        "n of N: finished runs of all runs in the group. Timing, losses and convergence are "
        "means over finished runs; steps and seconds to target only over the runs that "
        "reached it.", "",
    ]  # fmt: skip
    implied = [g for g in groups if g.implied]
    if implied:
        lines += ["Settings that come with a choice above (not compared on their own):", ""]
        lines += [
            f"- {g.label}: "
            + ", ".join(f"{k}={format_value(v)}" for k, v in g.implied.items() if v is not None)
            for g in implied
        ]
        lines.append("")
    lines += best_trial_lines(trials)
    lines += ["## Comparisons", ""]
    if comparisons.empty:
        lines += ["No pair of groups differs in exactly one setting.", ""]
    else:
        view = comparisons[["setting", "a", "b", "same", "test", "n_a", "n_b", "mean_a",
                            "mean_b", "diff", "ci_low", "ci_high", "p_value"]]  # fmt: skip
        view = view.assign(p_value=[_cell(p, 4) if math.isnan(p) or p >= 1e-4 else f"{p:.1e}"
                                    for p in view["p_value"]])  # fmt: skip
        view = view.rename(columns={"same": "with", "diff": "diff (B-A)", "a": "A", "b": "B",
                                    "ci_low": "95% CI low", "ci_high": "95% CI high",
                                    "p_value": "p"})  # fmt: skip
        lines += [markdown_table(view), "",
                  f"diff = mean `{metric}` of B minus A. paired: t-test paired by seed (both "
                  "groups hold the same seeds); welch: Welch's t-test; the CI is 95% for "
                  "the difference.", ""]  # fmt: skip
    bad = [(g, r) for g in groups for r in g.runs if not r.ok]
    lines += ["## Failed and unfinished runs", ""]
    if bad:
        table = pd.DataFrame([{"run": r.name, "group": g.label, "status": r.status,
                               "error": (r.error or "").strip().split("\n")[0]}
                              for g, r in bad])  # fmt: skip
        lines += [markdown_table(table), ""]
    else:
        lines += ["None.", ""]
    lines += [
        "## Plots", "",
        "![val accuracy](val_accuracy.png)", "",
        f"![{metric}](test_accuracy.png)", "",
        "![losses](losses.png)", "",
    ]  # fmt: skip
    return "\n".join(lines)
