"""The report's plots (and the project's one plotting style: `new_figure`).

Each `*_figure` function returns a matplotlib Figure (the explorer shows it as it is);
each `plot_*` draws the same figure into a PNG file, as the report writes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tokentango.report.runs import Group, is_baseline
from tokentango.report.stats import (
    as_number,
    metric_by_seed,
    train_rows,
    validation_mean,
)

BASELINE_COLOR, BAR_COLOR = "tab:orange", "tab:blue"


def new_figure(ncols: int = 1) -> tuple[Figure, list]:
    """A figure with `ncols` axes on the Agg backend: every plot of the project is made so,
    without pyplot's global state."""
    fig = Figure(figsize=(6.5 * ncols, 4.2), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, without pyplot's global state
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _curves(group: Group, key: str) -> pd.DataFrame:
    """step x run table of `key` over the group's finished runs (NaN where a run has none)."""
    series = []
    for i, run in enumerate(group.ok_runs):
        points = {r["step"]: as_number(r.get(key)) for r in run.metrics}
        series.append(pd.Series(points, name=i, dtype=float))
    if not series:
        return pd.DataFrame()
    return pd.concat(series, axis=1).sort_index()


def _plot_band(ax: Any, groups: Sequence[Group], key: str) -> bool:
    drew = False
    for group in groups:
        table = _curves(group, key)
        if table.empty or table.isna().all().all():
            continue
        mean, std = table.mean(axis=1), table.std(axis=1, ddof=1)
        line = ax.plot(mean.index, mean.values, marker=".", label=group.label)[0]
        band = std.notna()
        if band.any():  # a band needs two runs at that step
            ax.fill_between(mean.index[band], (mean - std)[band], (mean + std)[band],
                            color=line.get_color(), alpha=0.2)  # fmt: skip
        drew = True
    return drew


def no_data(ax: Any, what: str) -> None:
    """`no <what>` in the middle of an empty plot."""
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)


def save(fig: Figure, path: Path) -> Path:
    """A plot as the report writes it: PNG at the report's resolution."""
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_val_accuracy(groups: Sequence[Group], path: Path, target: float = 0.80) -> Path:
    return save(val_accuracy_figure(groups, target), path)


def val_accuracy_figure(groups: Sequence[Group], target: float = 0.80) -> Figure:
    """Validation accuracy against step: mean per group, band = mean +- std over seeds; a
    baseline (its steps are not training steps) as a dashed line at its mean best accuracy."""
    fig, (ax,) = new_figure()
    trained = [g for g in groups if not is_baseline(g)]
    drew = _plot_band(ax, trained, "val_accuracy")
    baselines = [g for g in groups if is_baseline(g)]
    for i, group in enumerate(baselines):
        level = validation_mean(group)
        if level == level:  # not NaN
            color = BASELINE_COLOR if len(baselines) == 1 else f"C{(len(trained) + i) % 10}"
            ax.axhline(level, color=color, linestyle="--", linewidth=1.5,
                       label=f"{group.label} {level:.3f}")  # fmt: skip
            drew = True
    if drew:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
        ax.legend(fontsize="small")
    else:
        no_data(ax, "validation metrics")
    ax.set(xlabel="step", ylabel="validation accuracy",
           title="Validation accuracy (mean ± std over seeds)")  # fmt: skip
    return fig


def plot_metric_bars(groups: Sequence[Group], path: Path, metric: str = "test_accuracy",
                     title: str | None = None) -> Path:  # fmt: skip
    return save(metric_bars_figure(groups, metric, title), path)


def metric_bars_figure(groups: Sequence[Group], metric: str = "test_accuracy",
                       title: str | None = None) -> Figure:  # fmt: skip
    """One bar per group: the mean of `metric`, error bar = std over seeds, dots = runs; a
    baseline's bar in its own colour."""
    fig, (ax,) = new_figure()
    values = [[v for _, v in metric_by_seed(g, metric)] for g in groups]
    if any(values):
        x = np.arange(len(groups))
        means = [float(np.mean(v)) if v else 0.0 for v in values]
        stds = [float(np.std(v, ddof=1)) if len(v) >= 2 else 0.0 for v in values]
        colors = [BASELINE_COLOR if is_baseline(g) else BAR_COLOR for g in groups]
        ax.bar(x, means, yerr=stds, capsize=4, color=colors, alpha=0.7)
        for i, vals in enumerate(values):  # the runs themselves, so n and spread are visible
            ax.plot([i + 0.3] * len(vals), vals, "o", color="black", markersize=3, alpha=0.6)
        labels = [
            f"{g.label}\n({len(v)} of {len(g.runs)})" for g, v in zip(groups, values, strict=True)
        ]
        ax.set_xticks(x, labels, rotation=20 if len(groups) > 3 else 0, fontsize="small")
    else:
        no_data(ax, f"finished runs with {metric}")
    ax.set(ylabel=metric, title=title or f"{metric} per group (mean ± std over seeds)")
    return fig


def plot_losses(groups: Sequence[Group], path: Path) -> Path:
    return save(losses_figure(groups), path)


def losses_figure(groups: Sequence[Group]) -> Figure:
    """Classification and MLM loss against step, mean per group with a std band (baselines,
    which have no losses, left out)."""
    fig, axes = new_figure(2)
    trained = [g for g in groups if not is_baseline(g)]
    for ax, key, title in ((axes[0], "cls_loss", "Classification loss"),
                           (axes[1], "mlm_loss", "MLM loss")):  # fmt: skip
        if _plot_band(ax, trained, key):
            ax.legend(fontsize="small")
        else:
            no_data(ax, key.replace("_", " ") + " (no run used it)" * (key == "mlm_loss"))
        ax.set(xlabel="step", ylabel=key, title=title)
    return fig


def plot_data_scaling(groups: Sequence[Group], scaling: pd.DataFrame, path: Path,
                      metric: str = "test_accuracy") -> Path:  # fmt: skip
    return save(data_scaling_figure(groups, scaling, metric), path)


def data_scaling_figure(groups: Sequence[Group], scaling: pd.DataFrame,
                        metric: str = "test_accuracy") -> Figure:  # fmt: skip
    """`metric` against the rows trained on (log x): one line per combination of the other
    settings (`stats.data_scaling`'s `line`), mean with a +-std band, dots = runs; baselines
    dashed."""
    fig, (ax,) = new_figure()
    drew = False
    for line, points in scaling.groupby("line", sort=False):
        points = points.dropna(subset=["train_rows", "mean"]).sort_values("train_rows")
        if points.empty:
            continue
        dashed = bool(points["baseline"].any())
        drawn = ax.plot(points["train_rows"], points["mean"], marker="o", label=line,
                        linestyle="--" if dashed else "-")[0]  # fmt: skip
        band = points["std"].notna()
        if band.any():
            ax.fill_between(points["train_rows"][band], (points["mean"] - points["std"])[band],
                            (points["mean"] + points["std"])[band], color=drawn.get_color(),
                            alpha=0.15)  # fmt: skip
        for i in points["group"]:
            runs = groups[i].ok_runs
            xs = [train_rows(r) for r in runs]
            ys = [as_number((r.results or {}).get(metric)) for r in runs]
            ax.plot(xs, ys, ".", color=drawn.get_color(), alpha=0.5)
        drew = True
    if drew:
        ax.set_xscale("log")
        ax.legend(fontsize="small")
    else:
        no_data(ax, f"finished runs with {metric} and train_rows")
    ax.set(xlabel="training rows (log scale)", ylabel=metric,
           title=f"{metric} by training rows (mean ± std over seeds)")  # fmt: skip
    return fig
