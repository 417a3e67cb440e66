"""The report's numbers: per run, per group (pandas) and between groups (scipy.stats)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tokentango.report.runs import Group, Run, format_value, sort_key


def as_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def convergence(metrics: Sequence[dict[str, Any]], target: float) -> tuple[float, float]:
    """(step, elapsed_seconds) of the first evaluation with val_accuracy >= target; NaN if none."""
    for record in metrics:
        acc = as_number(record.get("val_accuracy"))
        if not math.isnan(acc) and acc >= target:
            return as_number(record.get("step")), as_number(record.get("elapsed_seconds"))
    return math.nan, math.nan


def _final(metrics: Sequence[dict[str, Any]], key: str) -> float:
    for record in reversed(metrics):
        value = as_number(record.get(key))
        if not math.isnan(value):
            return value
    return math.nan


def run_values(run: Run, metric: str, target: float) -> dict[str, Any]:
    """The numbers the report shows for one run (NaN where the run has none)."""
    res = run.results if run.ok and run.results else {}
    step, seconds = convergence(run.metrics, target) if run.ok else (math.nan, math.nan)
    values = {
        metric: as_number(res.get(metric)),
        "test_accuracy": as_number(res.get("test_accuracy")),
        "test_f1": as_number(res.get("test_f1")),
        "train_seconds": as_number(res.get("train_seconds")),
        "samples_per_second": as_number(res.get("samples_per_second")),
        "steps": as_number(res.get("steps")),
        "steps_to_target": step,
        "seconds_to_target": seconds,
        "final_cls_loss": _final(run.metrics, "cls_loss"),
        "final_mlm_loss": _final(run.metrics, "mlm_loss"),
    }
    return values


MEAN_ONLY = ("train_seconds", "samples_per_second", "steps_to_target", "seconds_to_target",
             "final_cls_loss", "final_mlm_loss")  # fmt: skip


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


def summarize(groups: Sequence[Group], metric: str = "test_accuracy",
              target: float = 0.80) -> pd.DataFrame:  # fmt: skip
    """One row per group: n of N, the metric's mean/std/min/max, timing, convergence, losses.

    n counts finished runs (completed or early-stopped), N every run of the group. Timing,
    losses and convergence are means over the finished runs; convergence means only over the
    runs that reached `target` ("reached" says how many).
    """
    per_run = pd.DataFrame(
        [{"group": i, **run_values(r, metric, target)} for i, g in enumerate(groups)
         for r in g.ok_runs],
        columns=["group", *dict.fromkeys([metric, "test_accuracy", "test_f1", *MEAN_ONLY])],
    )  # fmt: skip
    aggregations = {key: ["mean"] for key in MEAN_ONLY}
    aggregations |= {extra: ["mean", "std"] for extra in secondary_metrics(metric)}
    aggregations[metric] = ["mean", "std", "min", "max"]  # last: the metric may be any of them
    stats = per_run.groupby("group").agg(aggregations)
    stats.columns = [f"{key}_{how}" for key, how in stats.columns]
    stats = stats.reindex(range(len(groups)))  # groups without a finished run: NaN
    reached = per_run.groupby("group")["steps_to_target"].count().reindex(range(len(groups)))
    rows = []
    for i, group in enumerate(groups):
        ok = group.ok_runs
        rows.append({
            "row": "group", "group": group.label, **group.settings, **group.implied,
            "runs": f"{len(ok)} of {len(group.runs)}", "n": len(ok), "N": len(group.runs),
            "seeds": " ".join(format_value(r.seed) for r in ok),
            **stats.loc[i].to_dict(), "reached": f"{int(reached.fillna(0)[i])}/{len(ok)}",
        })  # fmt: skip
    return pd.DataFrame(rows)


# --- comparisons ----------------------------------------------------------------------------


def metric_by_seed(group: Group, metric: str) -> list[tuple[Any, float]]:
    pairs = []
    for run in group.ok_runs:
        value = as_number((run.results or {}).get(metric))
        if not math.isnan(value):
            pairs.append((run.seed, value))
    return pairs


def difference_test(a: Sequence[tuple[Any, float]],
                    b: Sequence[tuple[Any, float]]) -> dict[str, Any]:  # fmt: skip
    """mean(b) - mean(a) with a 95% CI and a two-sided p-value (scipy.stats).

    Paired by seed (`ttest_rel`) when both sides hold the same seeds once each, so
    seed-to-seed noise cancels; Welch otherwise (`ttest_ind(equal_var=False)`); the CI is
    each test's own `confidence_interval` for the difference.
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
    if test == "too few runs":
        return out | {"ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
                      "dof": math.nan}  # fmt: skip
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # constant samples: scipy warns and returns NaN
        if paired:
            order_b = dict(b)
            result = stats.ttest_rel([order_b[s] for s in seeds_a], xa)
        else:
            result = stats.ttest_ind(xb, xa, equal_var=False)
        ci = result.confidence_interval(0.95)
    return out | {"ci_low": float(ci.low), "ci_high": float(ci.high),
                  "p_value": float(result.pvalue), "dof": float(result.df)}  # fmt: skip


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
        a, b = sorted((g1, g2), key=lambda g: sort_key(g.settings[col]))
        fixed = ", ".join(f"{c}={format_value(v)}" for c, v in a.settings.items() if c != col)
        rows.append({
            "setting": col, "a": format_value(a.settings[col]),
            "b": format_value(b.settings[col]), "same": fixed, "group_a": a.label,
            "group_b": b.label, "metric": metric,
            **difference_test(metric_by_seed(a, metric), metric_by_seed(b, metric)),
        })  # fmt: skip
    columns = ["setting", "a", "b", "same", "group_a", "group_b", "metric", "test", "n_a", "n_b",
               "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value", "dof"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
