"""report.md: Markdown tables and the report's text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tokentango.report.runs import (
    TRAIN_ROWS,
    Group,
    Run,
    column_name,
    format_value,
    is_baseline,
)
from tokentango.report.search import OBJECTIVE, Trial, best_trial
from tokentango.report.stats import (
    VALIDATION,
    Tuned,
    as_number,
    rows_label,
    secondary_metrics,
)


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
    columns = {c: c for c in settings}
    if "baseline" in summary:
        columns["baseline"] = "baseline"
    if "split_domains" in summary:
        columns["split_domains"] = "domains train/val/test"
    columns["runs"] = "runs (n of N)"
    for how in ("mean", "std", "min", "max"):
        columns[f"{metric}_{how}"] = f"{metric} {how}"
    if "masked_test_accuracy_mean" in summary and metric != "masked_test_accuracy":
        columns["masked_test_accuracy_mean"] = "masked test acc mean"
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
        view[c] = [setting_cell(c, g.settings[c], groups) for g in groups]
    if "baseline" in view:
        view["baseline"] = ["yes" if b else "" for b in view["baseline"]]
    if not settings:
        view.insert(0, "group", summary["group"])
    return view


def setting_cell(column: str, value: Any, groups: Sequence[Group]) -> str:
    """A setting as a table shows it; `data.train_rows` null as "all (N)"."""
    if column == column_name(TRAIN_ROWS) and value is None:
        return rows_label(None, [g for g in groups if g.settings.get(column) is None])
    return format_value(value)


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
                    target: float, trials: Sequence[Trial] = (), tuned: Tuned | None = None,
                    scaling: pd.DataFrame | None = None) -> str:  # fmt: skip
    """The whole report.md text (plots linked relative to the report); `trials`, an Optuna
    search's, add its best trial; `tuned` (stats.tune) and `scaling` (stats.data_scaling)
    their sections."""
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
    if "masked_test_accuracy_mean" in summary:
        probs = sorted({r.results["mask_prob"] for g in groups for r in g.ok_runs
                        if isinstance((r.results or {}).get("mask_prob"), int | float)})
        share = " or ".join(f"{p:.0%}" for p in probs) or "a share"
        lines += [f"masked test acc: test accuracy on BERT-masked input ({share} of the tokens "
                  "masked with the run's mask settings, as in MLM training); '-' where no run "
                  "of the group measured it.", ""]  # fmt: skip
    if "split_domains" in summary:
        lines += ["domains train/val/test: how many news domains each split holds (the "
                  "group's first run; disjoint with data.split=domain).", ""]  # fmt: skip
    lines += baseline_lines(groups)
    implied = [g for g in groups if any(v is not None for v in g.implied.values())]
    if implied:
        lines += ["Settings that come with a choice above (not compared on their own):", ""]
        lines += [
            f"- {g.label}: "
            + ", ".join(f"{k}={format_value(v)}" for k, v in g.implied.items() if v is not None)
            for g in implied
        ]
        lines.append("")
    lines += best_trial_lines(trials)
    lines += ["## Comparisons", "", *comparison_lines(comparisons, metric)]
    lines += tuned_lines(tuned, metric)
    lines += scaling_lines(scaling, metric)
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


def comparison_lines(comparisons: pd.DataFrame, metric: str) -> list[str]:
    """A comparisons table (stats.compare) with its legend."""
    if comparisons.empty:
        return ["No pair of groups differs in exactly one setting.", ""]
    view = comparisons[["setting", "a", "b", "same", "test", "n_a", "n_b", "mean_a",
                        "mean_b", "diff", "ci_low", "ci_high", "p_value"]]  # fmt: skip
    view = view.assign(p_value=[_cell(p, 4) if math.isnan(p) or p >= 1e-4 else f"{p:.1e}"
                                for p in view["p_value"]])  # fmt: skip
    view = view.rename(columns={"same": "with", "diff": "diff (B-A)", "a": "A", "b": "B",
                                "ci_low": "95% CI low", "ci_high": "95% CI high",
                                "p_value": "p"})  # fmt: skip
    return [markdown_table(view), "",
            f"diff = mean `{metric}` of B minus A. paired: t-test paired by seed (both "
            "groups hold the same seeds); welch: Welch's t-test; the CI is 95% for "
            "the difference.", ""]  # fmt: skip


def tuned_lines(tuned: Tuned | None, metric: str) -> list[str]:
    """The "Tuned on validation" section (nothing without --tune)."""
    if tuned is None:
        return []
    keys = ", ".join(tuned.keys)
    lines = [f"## Tuned on validation: {keys}", "",
             f"For each combination of the other settings, the value of {keys} whose group "
             f"has the highest mean validation accuracy (`{VALIDATION}`) over its finished "
             "seeds (ties: the smaller value); test accuracy plays no part in the choice. "
             "Tried: how many values the combination had.", ""]  # fmt: skip
    if not tuned.groups:
        return [*lines, "No group has a finished run with a validation accuracy.", ""]
    frame = tuned.summary
    others = list(tuned.groups[0].settings)
    view = pd.DataFrame({c: [format_value(v) for v in frame[c]] for c in others})
    for c in tuned.keys:
        view[f"{c} (chosen)"] = [setting_cell(c, g.tuned[c], tuned.groups) for g in tuned.groups]
    view["tried"] = frame["tried"].tolist()
    view["val mean"] = frame[f"{VALIDATION}_mean"].tolist()
    view[f"{metric} mean"] = frame[f"{metric}_mean"].tolist()
    view[f"{metric} std"] = frame[f"{metric}_std"].tolist()
    view["n"] = frame["n"].tolist()
    if "baseline" in frame:
        view.insert(len(others), "baseline", ["yes" if b else "" for b in frame["baseline"]])
    lines += [markdown_table(view), ""]
    if others:
        lines += ["Comparisons among the chosen groups:", "",
                  *comparison_lines(tuned.comparisons, metric)]  # fmt: skip
    return [*lines, "![tuned](tuned.png)", ""]


def scaling_lines(scaling: pd.DataFrame | None, metric: str) -> list[str]:
    """The "by training rows" section: rows trained on x settings, mean +- std."""
    if scaling is None or scaling.empty:
        return []
    name = "Test accuracy" if metric == "test_accuracy" else f"`{metric}`"
    order = scaling.assign(key=[(s is None, s if s is not None else 0) for s in
                                scaling["setting"]]).sort_values("key", kind="stable")  # fmt: skip
    labels = list(dict.fromkeys(order["rows_label"]))
    lines = list(dict.fromkeys(scaling["line"]))
    cells = {(r.rows_label, r.line): r for r in scaling.itertuples()}
    table = pd.DataFrame({"training rows": labels} | {
        line: [_mean_std(cells.get((label, line))) for label in labels] for line in lines
    })  # fmt: skip
    return [f"## {name} by training rows", "",
            markdown_table(table), "",
            f"Mean ± std of `{metric}` over finished seeds (n in brackets); training rows "
            f"is `{TRAIN_ROWS}`, null (all rows) shown as all (the rows used).", "",
            "![data scaling](data_scaling.png)", ""]  # fmt: skip


def _mean_std(point: Any) -> str:
    if point is None or point.n == 0:
        return "-"
    if point.n < 2:
        return f"{point.mean:.4f} (1)"
    return f"{point.mean:.4f} ± {point.std:.4f} ({point.n})"


def baseline_lines(groups: Sequence[Group]) -> list[str]:
    """What the baseline rows are (nothing without one)."""
    models = sorted({str(r.config.get("model.name") or (r.results or {}).get("model"))
                     for g in groups if is_baseline(g) for r in g.runs})  # fmt: skip
    if not models:
        return []
    return [f"baseline: a reference model ({', '.join(models)}: TF-IDF + logistic regression "
            "on the same rows and tokens), no BERT encoder; the comparisons include it. Its "
            "evaluation steps are not training steps: no convergence, no losses; the "
            "validation plot draws it as a dashed line at its mean best validation "
            "accuracy.", ""]  # fmt: skip
