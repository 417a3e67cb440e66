"""The explorer's logic (`notebooks/explore.py`, a marimo app): plain functions over the
report, checkpoint, evaluation and prediction stages, so the notebook's cells stay glue and
tests can call every step without marimo.

Nothing here computes a figure of its own: the sweep views are `tokentango.report`'s
(`group_runs` -> `summarize` / `compare` / `run_table` / `tune` / `data_scaling` and the
report's plots), the checkpoint list is `checkpoints list`'s (`filter_checkpoints`), the
evaluation is `python -m tokentango.evaluate`'s (`evaluate_checkpoint`) and the predictions
are `python -m tokentango.predict`'s (`predict_texts`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tokentango import rundir
from tokentango.config import default_experiments_dir
from tokentango.report import (
    Group,
    ReportError,
    Run,
    data_scaling,
    find_runs,
    is_baseline,
    run_table,
    summarize,
    tune,
)
from tokentango.report import compare as compare_groups
from tokentango.report.plots import (
    data_scaling_figure,
    losses_figure,
    metric_bars_figure,
    new_figure,
    no_data,
    val_accuracy_figure,
)
from tokentango.report.runs import format_value, setting_order

ENV_VAR = "TOKENTANGO_EXPERIMENTS"  # the experiments folder, when not given as --experiments
SWEEPS, RUNS = "sweeps", "runs"
METRICS = ("test_accuracy", "test_f1", "masked_test_accuracy")
TRAIN_FIRST = (
    "Nothing to explore yet in `{dir}`: no sweep or run folders. Train first, e.g. one run\n\n"
    "    uv run python -m tokentango.train\n\n"
    "or a sweep (seeds x MLM on and off, a few minutes on a laptop)\n\n"
    "    uv run python -m tokentango.train --multirun seed=1,2,3 use_mlm=true,false\n\n"
    "then press Refresh."
)


def experiments_dir(given: str | Path | None = None) -> Path:
    """The experiments folder: `given` (the app's --experiments), else $TOKENTANGO_EXPERIMENTS,
    else `runtime.experiments_dir` as conf/ sets it."""
    chosen = given or os.environ.get(ENV_VAR)
    return Path(chosen).expanduser() if chosen else default_experiments_dir()


# --- folders ----------------------------------------------------------------------------


@dataclass
class Folder:
    """A sweep (`sweeps/<name>`) or a single run (`runs/<name>`) under the experiments folder."""

    label: str  # sweeps/<name> or runs/<name>
    path: Path
    kind: str  # SWEEPS or RUNS


def list_folders(experiments: str | Path) -> list[Folder]:
    """The sweep and run folders under `experiments` (sweeps first), newest first by name
    (Hydra names them by start time). A sweep that has just started and holds no run folder
    yet is listed too: loading it says so."""
    root = Path(experiments)
    folders = []
    for kind in (SWEEPS, RUNS):
        parent = root / kind
        if not parent.is_dir():
            continue
        names = sorted((p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
                       key=lambda p: p.name, reverse=True)  # fmt: skip
        folders += [Folder(f"{kind}/{p.name}", p, kind) for p in names]
    return folders


def empty_message(experiments: str | Path, folders: Sequence[Folder]) -> str | None:
    """What to run first, when there is nothing to explore; None otherwise."""
    return None if folders else TRAIN_FIRST.format(dir=experiments)


@dataclass
class Loaded:
    """Runs read from the chosen folders, and why a folder gave none."""

    runs: list[Run] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_runs(paths: Sequence[str | Path]) -> Loaded:
    """Every run folder below `paths` (the report's `find_runs`, one folder at a time so a
    sweep without run folders yet only says so); a run reached twice is read once."""
    loaded, seen = Loaded(), set()
    for path in paths:
        try:
            runs = find_runs([path])
        except ReportError as err:
            loaded.problems.append(str(err))
            continue
        for run in runs:
            if run.path.resolve() not in seen:
                seen.add(run.path.resolve())
                loaded.runs.append(run)
    return loaded


def problem_runs(runs: Sequence[Run]) -> pd.DataFrame:
    """The runs without final figures (failed, interrupted, unfinished): name, status, why."""
    rows = [{"run": r.name, "status": r.status, "error": r.error or "",
             "last step": r.metrics[-1]["step"] if r.metrics else None}
            for r in runs if not r.ok]  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "status", "error", "last step"])


def jobs(folders: Sequence[str | Path]) -> pd.DataFrame:
    """`python -m tokentango.status` for each chosen sweep folder: one row per job."""
    from tokentango.status import job_states

    rows = []
    for folder in folders:
        try:
            states = job_states(folder)
        except (FileNotFoundError, OSError):
            continue
        rows += [{"sweep": Path(folder).name, **row} for row in states]
    return pd.DataFrame(rows)


# --- sweep views ------------------------------------------------------------------------


def setting_choices(groups: Sequence[Group]) -> dict[str, dict[str, Any]]:
    """For each setting that varies (a column of the report), its values in the report's
    order: {column: {shown value: value}}. Baseline groups do not add values."""
    choices: dict[str, dict[str, Any]] = {}
    trained = [g for g in groups if not is_baseline(g)] or list(groups)
    for column in groups[0].settings if groups else []:
        values = sorted({g.settings[column] for g in trained},
                        key=lambda v: setting_order(column, v))  # fmt: skip
        choices[column] = {format_value(v): v for v in values}
    return choices


def filter_groups(groups: Sequence[Group], chosen: dict[str, Sequence[Any]],
                  baseline: bool = True,
                  known: dict[str, dict[str, Any]] | None = None) -> list[Group]:  # fmt: skip
    """The groups whose value of each column is among `chosen[column]` (a column not in
    `chosen` is not filtered). With `known` (setting_choices of when the filters were made),
    a value the filters did not offer yet (a running sweep's new job) is kept. Baseline groups
    are kept when `baseline` is true, whatever the filters on the encoders' settings (model,
    objective, optimizer: they are the reference row, not a setting), but filtered on the
    data's (`data.*`, `train_frac`), which a baseline shares with the encoders it stands by."""
    offered = {c: list(values.values()) for c, values in (known or {}).items()}
    kept = []
    for group in groups:
        if is_baseline(group) and not baseline:
            continue
        columns = [c for c in chosen if c in group.settings
                   and (not is_baseline(group) or _data_setting(c))]  # fmt: skip
        if all(_allowed(group.settings[c], chosen[c], offered.get(c)) for c in columns):
            kept.append(group)
    return kept


def _data_setting(column: str) -> bool:
    return column.startswith("data.") or column == "train_frac"


def _allowed(value: Any, chosen: Sequence[Any], offered: Sequence[Any] | None) -> bool:
    return value in chosen or (offered is not None and value not in offered)


def excluded_values(
    choices: dict[str, dict[str, Any]], chosen: dict[str, Sequence[str]],
    before: dict[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:  # fmt: skip
    """What the filters leave out, per column (shown values): remembered instead of what they
    keep, so a value that appears later (a running sweep's new job) starts out shown. Columns
    the filters do not offer now keep what `before` said."""
    excluded = {c: list(v) for c, v in (before or {}).items() if c not in choices}
    for column, values in choices.items():
        kept = set(chosen.get(column, values))
        excluded[column] = [v for v in values if v not in kept]
    return excluded


def tune_choices(groups: Sequence[Group]) -> list[str]:
    """Settings `--tune` can choose by validation: the varying columns."""
    return list(groups[0].settings) if groups else []


@dataclass
class SweepViews:
    """What `python -m tokentango.report` writes, as tables and figures."""

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    runs: pd.DataFrame
    figures: dict[str, Figure]
    tuned: pd.DataFrame | None = None
    tuned_comparisons: pd.DataFrame | None = None
    scaling: pd.DataFrame | None = None
    tune_error: str | None = None


def sweep_views(groups: Sequence[Group], metric: str = "test_accuracy", target: float = 0.80,
                tune_key: str | None = None) -> SweepViews:  # fmt: skip
    """The report's tables and plots for `groups`; with `tune_key`, its --tune view."""
    views = SweepViews(
        summary=summarize(groups, metric, target), comparisons=compare_groups(groups, metric),
        runs=run_table(groups, metric, target),
        figures={"validation accuracy": val_accuracy_figure(groups, target),
                 metric: metric_bars_figure(groups, metric),
                 "losses": losses_figure(groups)},
    )  # fmt: skip
    scaling = data_scaling(groups, metric)
    if not scaling.empty:
        views.scaling = scaling
        views.figures["data size"] = data_scaling_figure(groups, scaling, metric)
    if tune_key:
        try:
            tuned = tune(groups, [tune_key], metric, target)
        except ReportError as err:
            views.tune_error = str(err)
        else:
            views.tuned, views.tuned_comparisons = tuned.summary, tuned.comparisons
            views.figures[f"tuned: {tune_key}"] = metric_bars_figure(
                tuned.groups, metric, f"{metric}, tuned on validation: {tune_key}")
    return views


def plot_rows(figures: dict[str, Figure]) -> list[list[Figure]]:
    """The figures two to a row, a figure of two plots (the losses) on a row of its own."""
    rows: list[list[Figure]] = []
    for figure in figures.values():
        wide = len(figure.axes) > 1
        if wide or not rows or len(rows[-1]) == 2 or len(rows[-1][0].axes) > 1:
            rows.append([figure])
        else:
            rows[-1].append(figure)
    return rows


def rounded(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A table for the page: floats rounded, list and tuple cells as text."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].round(digits)
        elif frame[column].map(lambda v: isinstance(v, list | tuple)).any():
            frame[column] = frame[column].map(format_value)
    return frame


def metric_first(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The summary with the group, its settings, n of N and the metric's columns first (the
    report's order otherwise)."""
    lead = [c for c in summary.columns if c.startswith(f"{metric}_")]
    settings = list(summary.columns[: list(summary.columns).index("runs")]) \
        if "runs" in summary.columns else []  # fmt: skip
    first = [c for c in settings if c != "row"] + ["runs"] * ("runs" in summary) + lead
    return summary[first + [c for c in summary.columns if c not in first]]


# --- checkpoints ------------------------------------------------------------------------

LISTED = ("timestamp", "run_name", "step", "epoch", "val_accuracy", "optimizer", "use_mlm",
          "path")  # fmt: skip
HIDDEN_META = ("config", "loop", "cls_losses", "mlm_losses", "state")


def checkpoint_rows(metas: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """`checkpoints list`'s columns, one row per checkpoint, in the given order."""
    rows = [{k: (m.get(k) if k != "timestamp" else str(m.get(k, ""))[:19]) for k in LISTED}
            for m in metas]  # fmt: skip
    return pd.DataFrame(rows, columns=list(LISTED))


def checkpoint_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """`checkpoints show` without the bulky parts (config, loop state, per-step losses), plus
    the run's folder and the loss count."""
    shown = {k: v for k, v in meta.items() if k not in HIDDEN_META}
    shown["losses recorded"] = len(meta.get("cls_losses") or [])
    run = checkpoint_run_dir(meta)
    shown["run folder"] = str(run) if run else None
    return shown


def checkpoint_run_dir(meta: dict[str, Any]) -> Path | None:
    """The run folder a checkpoint belongs to (where it sits, else where it was written)."""
    return rundir.run_dir_of_checkpoint(Path(meta["path"]), meta.get("run_dir"))


def run_results(run_dir: str | Path | None) -> dict[str, Any] | None:
    """A run folder's results.json (None: no folder, or a run without results yet)."""
    return rundir.read_results(Path(run_dir)) if run_dir else None


def selected_index(metas: Sequence[dict[str, Any]], path: str | None) -> int:
    """Where the checkpoint at `path` is in a listing (to keep it picked across a refresh);
    0 (the first) when it is not there."""
    return next((i for i, m in enumerate(metas) if m["path"] == path), 0)


def run_curves_figure(run_dir: str | Path | None, title: str = "") -> Figure:
    """One run's metrics.jsonl: losses (classification, MLM) and validation accuracy against
    step; a run still going shows what it has so far."""
    fig, (loss_ax, acc_ax) = new_figure(2)
    metrics = rundir.read_metrics(Path(run_dir)) if run_dir else []
    steps = [m["step"] for m in metrics]
    for key, label in (("cls_loss", "classification"), ("mlm_loss", "MLM")):
        points = [(s, m[key]) for s, m in zip(steps, metrics, strict=True)
                  if isinstance(m.get(key), int | float)]  # fmt: skip
        if points:
            loss_ax.plot(*zip(*points, strict=True), marker=".", label=label)
    accuracy = [(s, m["val_accuracy"]) for s, m in zip(steps, metrics, strict=True)
                if isinstance(m.get("val_accuracy"), int | float)]  # fmt: skip
    if accuracy:
        acc_ax.plot(*zip(*accuracy, strict=True), marker=".", color="tab:green")
    for ax, what in ((loss_ax, "losses"), (acc_ax, "validation accuracy")):
        if not ax.lines:
            no_data(ax, f"{what} in {rundir.METRICS_FILE}")
    if loss_ax.lines:
        loss_ax.legend(fontsize="small")
    loss_ax.set(xlabel="step", ylabel="loss", title=f"{title} losses".strip())
    acc_ax.set(xlabel="step", ylabel="validation accuracy",
               title=f"{title} validation accuracy".strip())  # fmt: skip
    return fig


def confusion_figure(confusion: dict[str, Any], title: str = "Confusion matrix") -> Figure:
    """A labelled confusion matrix (evaluate's `confusion_matrix`: labels, matrix with true
    labels down and predictions across) with counts in the cells."""
    fig, (ax,) = new_figure()
    fig.set_size_inches(4.2, 3.6)
    labels, matrix = confusion["labels"], confusion["matrix"]
    ax.imshow(matrix, cmap="Blues")
    top = max((v for row in matrix for v in row), default=0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > top / 2 else "black")  # fmt: skip
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return fig


def source_vs_masked(path: str | Path, split: str = "test", fraction: float = 1.0,
                     seed: int = 0, step: Callable[[str], None] | None = None,
                     **kwargs: Any) -> dict[str, dict[str, Any]]:  # fmt: skip
    """`python -m tokentango.evaluate` on `split`, on the source text and on BERT-masked input
    (the run's mask_prob, seeded): {"source": metrics, "masked": metrics}. `step(name)` is
    called after each of the two evaluations (a progress bar's tick)."""
    from tokentango.evaluate import evaluate_checkpoint

    out = {}
    for name, masked in (("source", False), ("masked", True)):
        out[name] = evaluate_checkpoint(Path(path), split, fraction, masked=masked, seed=seed,
                                        **kwargs)  # fmt: skip
        if step is not None:
            step(name)
    return out


def evaluation_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per input (source, masked): accuracy, precision, recall, F1, rows, mask_prob."""
    return pd.DataFrame([{"input": name, **{k: r.get(k) for k in
                          ("accuracy", "precision", "recall", "f1", "n", "mask_prob")}}
                         for name, r in results.items()])  # fmt: skip


# --- predictions ------------------------------------------------------------------------


def csv_texts(data: bytes, column: str = "content", limit: int | None = None) -> list[str]:
    """The texts of an uploaded CSV's `column` (as `predict --csv` reads a file); ValueError
    saying what is wrong with it."""
    from tokentango.cli.predict import BINARY_PROBE, refuse_binary
    from tokentango.config import ConfigError

    try:
        refuse_binary("upload", Path("the uploaded file"), data[:BINARY_PROBE])
    except ConfigError as err:
        raise ValueError(str(err)) from err
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, nrows=limit)
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"cannot read the CSV: {err}") from err
    if column not in frame.columns:
        raise ValueError(f"the CSV has no column {column!r}; its columns: "
                         f"{', '.join(map(str, frame.columns))}")  # fmt: skip
    if frame.empty:
        raise ValueError("the CSV has no rows: nothing to classify")
    return frame[column].fillna("").tolist()


def predictions(checkpoint: str | Path, texts: Sequence[str]) -> pd.DataFrame:
    """`python -m tokentango.predict`: label and P(fake) per text (blank texts left out, as
    the command refuses them), with the text's start."""
    from tokentango.predict import predict_texts

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return pd.DataFrame(columns=["label", "p_fake", "p_reliable", "text"])
    rows = predict_texts(checkpoint, list(texts))
    return pd.DataFrame([{"label": r["label"], "p_fake": r["p_fake"],
                          "p_reliable": round(1.0 - r["p_fake"], 4),
                          "text": " ".join(t.split())[:120]}
                         for r, t in zip(rows, texts, strict=True)])  # fmt: skip

