"""Sweep report: `python -m tokentango.report DIR [DIR ...] [--out DIR] [--metric NAME]
[--target ACC]`.

Run folders (any folder holding `.hydra/config.yaml`) -> runs grouped by every setting that
varies except the seed -> per-group statistics, convergence and pairwise tests -> report.md,
report.csv and PNG plots. Each stage is a plain function so it can be tested alone:
`find_runs` -> `group_runs` -> `run_table` / `summarize` / `compare` -> `plot_*` ->
`write_report`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, ListConfig, OmegaConf
from scipy import stats

RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = Path(".hydra") / "config.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
OK_STATUSES = ("completed", "early_stopped")

# Per-run identity and bookkeeping: they never make two runs different experiments.
IGNORED_KEYS = frozenset(
    {"seed", "run_name", "checkpoint", "checkpoint_dir", "device", "trainer.progress_bar"}
)
IGNORED_PREFIXES = ("paths.",)
# A node's `_target_` or `name` names a choice (optimizer=sgd, model=original); the other keys
# of that node that follow from the choice are shown as implied, not as separate settings.
CHOICE_LEAVES = ("_target_", "name")


class ReportError(Exception):
    """Input the report cannot use; main() prints it and exits with status 2."""


@dataclass
class Run:
    """One run folder as read from disk."""

    path: Path
    name: str  # readable and unique: the given folder's name plus the path below it
    config: dict[str, Any]  # flattened dotted keys -> hashable plain values
    overrides: list[str]
    results: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    status: str  # completed | early_stopped | failed | unfinished
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def seed(self) -> Any:
        seed = self.config.get("seed")
        if seed is None and self.results:
            seed = self.results.get("seed")
        return seed


@dataclass
class Group:
    """Runs that share every setting but the seed."""

    label: str
    settings: dict[str, Any]  # display column -> value, for the settings that vary
    implied: dict[str, Any] = field(default_factory=dict)  # dotted key -> value
    runs: list[Run] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.ok]


# --- reading --------------------------------------------------------------------------------


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """Dotted key -> value for every leaf; interpolations resolved where they can be.

    A run folder's config may hold `${paths.root}` or a custom resolver this process does
    not know, so each leaf is resolved on its own and falls back to the raw string.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
            return
        key = prefix[:-1]
        if isinstance(node, str) and "${" in node:
            try:
                resolved = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
                if not isinstance(resolved, DictConfig | ListConfig):
                    node = resolved
            except Exception:  # any resolver failure keeps the raw text
                pass
        flat[key] = _hashable(node if node != {} else None)

    walk(raw, "")
    return flat


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records; a torn or bad line (a run killed mid-write) is skipped."""
    records = []
    if not path.is_file():
        return records
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            records.append(record)
    return sorted(records, key=lambda r: r["step"])


def read_run(path: Path, name: str | None = None) -> Run:
    """One run folder; never raises for a broken run, it becomes a failed one."""
    path = Path(path)
    error = None
    try:
        config = flatten_config(OmegaConf.load(path / CONFIG_FILE))
    except Exception as err:  # never let one broken folder stop the report
        config, error = {}, f"unreadable .hydra/config.yaml: {err}"
    try:
        overrides = [str(o) for o in OmegaConf.to_container(OmegaConf.load(path / OVERRIDES_FILE))]
    except Exception:  # overrides are informative only
        overrides = []
    metrics = _read_metrics(path / METRICS_FILE)
    results = None
    if not (path / RESULTS_FILE).is_file():
        status = "unfinished"
        last = f" (last evaluation at step {metrics[-1]['step']})" if metrics else ""
        error = error or f"no results.json{last}"
    else:
        try:
            results = json.loads((path / RESULTS_FILE).read_text())
            if not isinstance(results, dict):
                raise ValueError("not a JSON object")
            status = results.get("status")
            if status not in OK_STATUSES:
                error = error or str(results.get("error") or f"status {status!r}")
                status = "failed"
        except (ValueError, OSError) as err:
            results, status = None, "failed"
            error = error or f"unreadable results.json: {err}"
    if status in OK_STATUSES and error:  # a config we cannot read cannot be grouped
        status = "failed"
    return Run(path=path, name=name or path.name, config=config, overrides=overrides,
               results=results, metrics=metrics, status=status, error=error)  # fmt: skip


def find_runs(dirs: Sequence[str | Path]) -> list[Run]:
    """Every run folder at any depth below `dirs`; raises ReportError for a bad folder."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for given in dirs:
        root = Path(given)
        if not root.is_dir():
            raise ReportError(f"{given}: no such folder")
        found = 0
        for here, subdirs, _ in os.walk(root):
            here_path = Path(here)
            if (here_path / CONFIG_FILE).is_file():
                subdirs.clear()  # a run folder holds no further runs
                found += 1
                real = here_path.resolve()
                if real in seen:  # the same run reached through two given folders
                    continue
                seen.add(real)
                rel = here_path.relative_to(root)
                name = root.resolve().name if rel == Path(".") else f"{root.resolve().name}/{rel}"
                runs.append(read_run(here_path, name))
            else:
                subdirs[:] = sorted(d for d in subdirs if d != ".hydra")
        if not found:
            raise ReportError(f"{given}: no run folders (none holds .hydra/config.yaml)")
    return runs


# --- grouping -------------------------------------------------------------------------------


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, bool | int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def column_name(key: str) -> str:
    """Table column for a dotted key: `optimizer._target_` reads as `optimizer`."""
    return key[: -len("._target_")] if key.endswith("._target_") else key


def display_value(key: str, value: Any) -> Any:
    """`torch.optim.Adam` -> `adam` for a `_target_`; everything else unchanged."""
    if key.endswith("_target_") and isinstance(value, str):
        return value.rsplit(".", 1)[-1].lower()
    return value


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting_keys(runs: Sequence[Run]) -> tuple[list[str], dict[str, str]]:
    """The settings that vary across `runs` (seed and bookkeeping excluded).

    Returns the independent keys and, for keys that only follow a choice (optimizer.betas
    follows optimizer=adam|sgd), a map key -> the choice key that sets it.
    """
    keys = sorted({k for r in runs for k in r.config if not _ignored(k)})
    varying = [k for k in keys if len({r.config.get(k) for r in runs}) > 1]
    choices = [k for k in varying if k.rsplit(".", 1)[-1] in CHOICE_LEAVES and "." in k]
    implied: dict[str, str] = {}
    for key in varying:
        for choice in choices:
            node = choice.rsplit(".", 1)[0] + "."
            if key == choice or not key.startswith(node) or key in choices:
                continue
            follows: dict[Any, set] = {}
            for r in runs:
                follows.setdefault(r.config.get(choice), set()).add(r.config.get(key))
            if all(len(values) == 1 for values in follows.values()):
                implied[key] = choice
                break
    return [k for k in varying if k not in implied], implied


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs grouped by every varying setting but the seed, in a stable sorted order."""
    keys, implied = setting_keys(runs)
    by_key: dict[tuple, list[Run]] = {}
    for run in runs:
        by_key.setdefault(tuple(run.config.get(k) for k in keys), []).append(run)
    groups = []
    for values in sorted(by_key, key=lambda vs: tuple(_sort_key(v) for v in vs)):
        members = sorted(by_key[values], key=lambda r: (_sort_key(r.seed), r.name))
        settings = {column_name(k): display_value(k, v) for k, v in zip(keys, values, strict=True)}
        label = ", ".join(f"{c}={format_value(v)}" for c, v in settings.items()) or "all runs"
        first = members[0].config
        groups.append(Group(label=label, settings=settings,
                            implied={k: first.get(k) for k in implied}, runs=members))  # fmt: skip
    return groups


# --- per-run and per-group numbers -----------------------------------------------------------


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def convergence(metrics: Sequence[dict[str, Any]], target: float) -> tuple[float, float]:
    """(step, elapsed_seconds) of the first evaluation with val_accuracy >= target; NaN if none."""
    for record in metrics:
        acc = _number(record.get("val_accuracy"))
        if not math.isnan(acc) and acc >= target:
            return _number(record.get("step")), _number(record.get("elapsed_seconds"))
    return math.nan, math.nan


def _final(metrics: Sequence[dict[str, Any]], key: str) -> float:
    for record in reversed(metrics):
        value = _number(record.get(key))
        if not math.isnan(value):
            return value
    return math.nan


def run_values(run: Run, metric: str, target: float) -> dict[str, Any]:
    """The numbers the report shows for one run (NaN where the run has none)."""
    res = run.results if run.ok and run.results else {}
    step, seconds = convergence(run.metrics, target) if run.ok else (math.nan, math.nan)
    values = {
        metric: _number(res.get(metric)),
        "test_accuracy": _number(res.get("test_accuracy")),
        "test_f1": _number(res.get("test_f1")),
        "train_seconds": _number(res.get("train_seconds")),
        "samples_per_second": _number(res.get("samples_per_second")),
        "steps": _number(res.get("steps")),
        "steps_to_target": step,
        "seconds_to_target": seconds,
        "final_cls_loss": _final(run.metrics, "cls_loss"),
        "final_mlm_loss": _final(run.metrics, "mlm_loss"),
    }
    return values


def secondary_metrics(metric: str) -> list[str]:
    return [m for m in ("test_accuracy", "test_f1") if m != metric]


def run_table(groups: Sequence[Group], metric: str = "test_accuracy",
              target: float = 0.80) -> pd.DataFrame:  # fmt: skip
    """One row per run (all statuses): its group, settings, seed and numbers."""
    rows = []
    for group in groups:
        for run in group.runs:
            rows.append({
                "row": "run", "group": group.label, **group.settings, **group.implied,
                "seed": run.seed, "run": run.name, "status": run.status,
                **run_values(run, metric, target), "error": run.error or "",
                "overrides": " ".join(run.overrides), "path": str(run.path),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _stat(values: Sequence[float], how: str) -> float:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if how == "std":
        return float(np.std(arr, ddof=1)) if len(arr) >= 2 else math.nan
    if not len(arr):
        return math.nan
    return float({"mean": np.mean, "min": np.min, "max": np.max}[how](arr))


def summarize(groups: Sequence[Group], metric: str = "test_accuracy",
              target: float = 0.80) -> pd.DataFrame:  # fmt: skip
    """One row per group: n of N, the metric's mean/std/min/max, timing, convergence, losses.

    n counts finished runs (completed or early-stopped), N every run of the group. Timing,
    losses and convergence are means over the finished runs; convergence means only over the
    runs that reached `target` ("reached" says how many).
    """
    rows = []
    for group in groups:
        ok = group.ok_runs
        vals = [run_values(r, metric, target) for r in ok]

        def col(key: str, vals: list[dict[str, Any]] = vals) -> list[float]:
            return [v[key] for v in vals]

        reached = sum(not math.isnan(v) for v in col("steps_to_target"))
        row: dict[str, Any] = {
            "row": "group", "group": group.label, **group.settings, **group.implied,
            "runs": f"{len(ok)} of {len(group.runs)}", "n": len(ok), "N": len(group.runs),
            "seeds": " ".join(format_value(r.seed) for r in ok),
        }  # fmt: skip
        for how in ("mean", "std", "min", "max"):
            row[f"{metric}_{how}"] = _stat(col(metric), how)
        for extra in secondary_metrics(metric):
            row[f"{extra}_mean"] = _stat(col(extra), "mean")
            row[f"{extra}_std"] = _stat(col(extra), "std")
        row |= {
            "train_seconds_mean": _stat(col("train_seconds"), "mean"),
            "samples_per_second_mean": _stat(col("samples_per_second"), "mean"),
            "steps_to_target_mean": _stat(col("steps_to_target"), "mean"),
            "seconds_to_target_mean": _stat(col("seconds_to_target"), "mean"),
            "reached": f"{reached}/{len(ok)}",
            "final_cls_loss_mean": _stat(col("final_cls_loss"), "mean"),
            "final_mlm_loss_mean": _stat(col("final_mlm_loss"), "mean"),
        }
        rows.append(row)
    return pd.DataFrame(rows)


# --- comparisons ----------------------------------------------------------------------------


def _metric_by_seed(group: Group, metric: str) -> list[tuple[Any, float]]:
    pairs = []
    for run in group.ok_runs:
        value = _number((run.results or {}).get(metric))
        if not math.isnan(value):
            pairs.append((run.seed, value))
    return pairs


def difference_test(a: Sequence[tuple[Any, float]],
                    b: Sequence[tuple[Any, float]]) -> dict[str, Any]:  # fmt: skip
    """mean(b) - mean(a) with a 95% CI and a two-sided p-value.

    Paired by seed (scipy ttest_rel; CI from the differences' mean and sem, n-1 dof) when
    both sides hold the same seeds once each, so seed-to-seed noise cancels; Welch otherwise
    (ttest_ind with equal_var=False; Welch-Satterthwaite dof).
    """
    seeds_a, seeds_b = [s for s, _ in a], [s for s, _ in b]
    xa, xb = np.array([v for _, v in a]), np.array([v for _, v in b])
    paired = (len(a) >= 2 and set(seeds_a) == set(seeds_b)
              and len(set(seeds_a)) == len(a) and len(set(seeds_b)) == len(b))  # fmt: skip
    test = "paired" if paired else "welch" if min(len(a), len(b)) >= 2 else "too few runs"
    out = {"test": test, "n_a": len(a), "n_b": len(b),
           "mean_a": float(xa.mean()) if len(a) else math.nan,
           "mean_b": float(xb.mean()) if len(b) else math.nan}  # fmt: skip
    out["diff"] = out["mean_b"] - out["mean_a"]
    low = high = p = dof = math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # constant samples: scipy warns and returns NaN
        if paired:
            order_b = dict(b)
            d = np.array([order_b[s] - v for s, v in a])
            dof = len(d) - 1
            sem = float(np.std(d, ddof=1) / math.sqrt(len(d)))
            half = float(stats.t.ppf(0.975, dof)) * sem
            low, high = float(d.mean()) - half, float(d.mean()) + half
            p = float(stats.ttest_rel(xb[[seeds_b.index(s) for s in seeds_a]], xa).pvalue)
        elif len(a) >= 2 and len(b) >= 2:
            va, vb = np.var(xa, ddof=1) / len(xa), np.var(xb, ddof=1) / len(xb)
            se = math.sqrt(va + vb)
            if se > 0:
                dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
                half = float(stats.t.ppf(0.975, dof)) * se
            else:
                half = 0.0
            low, high = out["diff"] - half, out["diff"] + half
            p = float(stats.ttest_ind(xb, xa, equal_var=False).pvalue)
    return out | {"ci_low": low, "ci_high": high, "p_value": p, "dof": float(dof)}


def compare(groups: Sequence[Group], metric: str = "test_accuracy") -> pd.DataFrame:
    """Every pair of groups that differ in exactly one setting: B - A on `metric`.

    A is the group with the smaller value of that setting (false before true, adam before
    sgd), so the MLM row reads "with MLM minus without".
    """
    rows = []
    for g1, g2 in itertools.combinations(groups, 2):
        differ = [c for c in g1.settings if g1.settings[c] != g2.settings.get(c)]
        if len(differ) != 1:
            continue
        col = differ[0]
        a, b = sorted((g1, g2), key=lambda g: _sort_key(g.settings[col]))
        fixed = ", ".join(f"{c}={format_value(v)}" for c, v in a.settings.items() if c != col)
        rows.append({
            "setting": col, "a": format_value(a.settings[col]),
            "b": format_value(b.settings[col]), "same": fixed, "group_a": a.label,
            "group_b": b.label, "metric": metric,
            **difference_test(_metric_by_seed(a, metric), _metric_by_seed(b, metric)),
        })  # fmt: skip
    columns = ["setting", "a", "b", "same", "group_a", "group_b", "metric", "test", "n_a", "n_b",
               "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value", "dof"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# --- plots ----------------------------------------------------------------------------------


def _new_figure(ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(6.5 * ncols, 4.2), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, without pyplot's global state
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _curves(group: Group, key: str) -> pd.DataFrame:
    """step x run table of `key` over the group's finished runs (NaN where a run has none)."""
    series = []
    for i, run in enumerate(group.ok_runs):
        points = {r["step"]: _number(r.get(key)) for r in run.metrics}
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


def _no_data(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)


def plot_val_accuracy(groups: Sequence[Group], path: Path, target: float = 0.80) -> Path:
    """Validation accuracy against step: mean per group, band = mean +- std over seeds."""
    fig, (ax,) = _new_figure()
    if _plot_band(ax, groups, "val_accuracy"):
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
        ax.legend(fontsize="small")
    else:
        _no_data(ax, "validation metrics")
    ax.set(xlabel="step", ylabel="validation accuracy",
           title="Validation accuracy (mean ± std over seeds)")  # fmt: skip
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_metric_bars(groups: Sequence[Group], path: Path, metric: str = "test_accuracy") -> Path:
    """One bar per group: the mean of `metric`, error bar = std over seeds, dots = runs."""
    fig, (ax,) = _new_figure()
    values = [[v for _, v in _metric_by_seed(g, metric)] for g in groups]
    if any(values):
        x = np.arange(len(groups))
        means = [_stat(v, "mean") if v else 0.0 for v in values]
        stds = [0.0 if math.isnan(s := _stat(v, "std")) else s for v in values]
        ax.bar(x, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.7)
        for i, vals in enumerate(values):  # the runs themselves, so n and spread are visible
            ax.plot([i + 0.3] * len(vals), vals, "o", color="black", markersize=3, alpha=0.6)
        labels = [
            f"{g.label}\n({len(v)} of {len(g.runs)})" for g, v in zip(groups, values, strict=True)
        ]
        ax.set_xticks(x, labels, rotation=20 if len(groups) > 3 else 0, fontsize="small")
    else:
        _no_data(ax, f"finished runs with {metric}")
    ax.set(ylabel=metric, title=f"{metric} per group (mean ± std over seeds)")
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_losses(groups: Sequence[Group], path: Path) -> Path:
    """Classification and MLM loss against step, mean per group with a std band."""
    fig, axes = _new_figure(2)
    for ax, key, title in ((axes[0], "cls_loss", "Classification loss"),
                           (axes[1], "mlm_loss", "MLM loss")):  # fmt: skip
        if _plot_band(ax, groups, key):
            ax.legend(fontsize="small")
        else:
            _no_data(ax, key.replace("_", " ") + " (no run used it)" * (key == "mlm_loss"))
        ax.set(xlabel="step", ylabel=key, title=title)
    fig.savefig(path, dpi=110)
    return Path(path)


# --- Markdown and files ---------------------------------------------------------------------


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


def render_markdown(dirs: Sequence[str | Path], runs: Sequence[Run], groups: Sequence[Group],
                    summary: pd.DataFrame, comparisons: pd.DataFrame, metric: str,
                    target: float) -> str:  # fmt: skip
    """The whole report.md text (plots linked relative to the report)."""
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


def write_report(out_dir: str | Path, dirs: Sequence[str | Path], runs: Sequence[Run],
                 metric: str = "test_accuracy", target: float = 0.80) -> str:  # fmt: skip
    """Group, summarize, compare and plot `runs`; write the files into `out_dir`.

    Returns the Markdown text written to report.md.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    summary = summarize(groups, metric, target)
    comparisons = compare(groups, metric)
    plot_val_accuracy(groups, out / "val_accuracy.png", target)
    plot_metric_bars(groups, out / "test_accuracy.png", metric)
    plot_losses(groups, out / "losses.png")
    table = pd.concat([run_table(groups, metric, target), summary], ignore_index=True)
    for column in ("seed", "steps", "n", "N", "steps_to_target"):  # 42, not 42.0, in the CSV
        if column in table and table[column].map(_integral).all():
            table[column] = table[column].astype("Int64")
    table.to_csv(out / "report.csv", index=False)
    text = render_markdown(dirs, runs, groups, summary, comparisons, metric, target)
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
    if finished and all(math.isnan(_number((r.results or {}).get(metric))) for r in finished):
        raise ReportError(f"--metric {metric}: no finished run has a numeric {metric!r} "
                          "in results.json")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tokentango.report",
        description="Summarize sweep run folders into report.md, report.csv and plots.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="sweep or run folders, searched at any depth")  # fmt: skip
    parser.add_argument("--out", help="where to write the report (default: the first DIR)")
    parser.add_argument("--metric", default="test_accuracy",
                        help="numeric results.json field to summarize and compare")  # fmt: skip
    parser.add_argument("--target", type=float, default=0.80,
                        help="validation accuracy that counts as converged (0.80)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.dirs)
        check_metric(runs, args.metric)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = write_report(args.out or args.dirs[0], args.dirs, runs, args.metric, args.target)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
