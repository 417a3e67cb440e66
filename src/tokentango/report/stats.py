"""The report's numbers: per run, per group (pandas) and between groups (scipy.stats)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tokentango.report.runs import (
    TRAIN_ROWS,
    Group,
    ReportError,
    Run,
    column_name,
    format_value,
    is_baseline,
    setting_order,
)

# results.json fields that only some runs have: a column where any finished run has one.
OPTIONAL_METRICS = ("masked_test_accuracy",)
VALIDATION = "best_val_accuracy"  # what the tuned view chooses by (never the test split)


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
    # A baseline's evaluation steps are not training steps: no convergence for it.
    trained = run.ok and not is_baseline(run)
    step, seconds = convergence(run.metrics, target) if trained else (math.nan, math.nan)
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
    values |= {key: as_number(res[key]) for key in OPTIONAL_METRICS if key in res}
    return values


def optional_metrics(groups: Sequence[Group]) -> list[str]:
    """The OPTIONAL_METRICS that some finished run of `groups` has."""
    return [key for key in OPTIONAL_METRICS
            if any(key in (r.results or {}) for g in groups for r in g.ok_runs)]  # fmt: skip


def validation_accuracy(run: Run) -> float:
    """A finished run's best validation accuracy: results.json `best_val_accuracy`, else the
    best `val_accuracy` in metrics.jsonl; NaN if none."""
    if not run.ok:
        return math.nan
    value = as_number((run.results or {}).get(VALIDATION))
    if 0.0 <= value <= 1.0:
        return value
    found = [v for v in (as_number(m.get("val_accuracy")) for m in run.metrics) if v == v]
    return max(found) if found else math.nan


def validation_mean(group: Group) -> float:
    values = [v for v in map(validation_accuracy, group.ok_runs) if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def split_domains(group: Group) -> str:
    """results.json `split_domains` of the group's first run that has it, as train/val/test
    (a count, or the length of a list of domains); "" if none has it."""
    for run in group.runs:
        value = (run.results or {}).get("split_domains")
        if value is None:
            continue
        if isinstance(value, dict):
            order = [k for k in ("train", "val", "test") if k in value] or list(value)
            value = [value[k] for k in order]
        if isinstance(value, list | tuple):
            return "/".join(str(len(v)) if isinstance(v, list | tuple) else format_value(v)
                            for v in value)  # fmt: skip
        return format_value(value)
    return ""


MEAN_ONLY = ("train_seconds", "samples_per_second", "steps_to_target", "seconds_to_target",
             "final_cls_loss", "final_mlm_loss")  # fmt: skip


def secondary_metrics(metric: str) -> list[str]:
    return [m for m in ("test_accuracy", "test_f1") if m != metric]


def run_table(groups: Sequence[Group], metric: str = "test_accuracy",
              target: float = 0.80) -> pd.DataFrame:  # fmt: skip
    """One row per run (all statuses): its group, settings, seed and numbers."""
    rows = []
    marks = any(map(is_baseline, groups))
    for group in groups:
        for run in group.runs:
            rows.append({
                "row": "run", "group": group.label, **group.settings, **group.implied,
                **({"baseline": is_baseline(run)} if marks else {}),
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
    optional = optional_metrics(groups)
    per_run = pd.DataFrame(
        [{"group": i, **run_values(r, metric, target)} for i, g in enumerate(groups)
         for r in g.ok_runs],
        columns=["group", *dict.fromkeys([metric, "test_accuracy", "test_f1", *MEAN_ONLY,
                                          *optional])],
    )  # fmt: skip
    aggregations = {key: ["mean"] for key in (*MEAN_ONLY, *optional)}
    aggregations |= {extra: ["mean", "std"] for extra in secondary_metrics(metric)}
    aggregations[metric] = ["mean", "std", "min", "max"]  # last: the metric may be any of them
    stats = per_run.groupby("group").agg(aggregations)
    stats.columns = [f"{key}_{how}" for key, how in stats.columns]
    stats = stats.reindex(range(len(groups)))  # groups without a finished run: NaN
    reached = per_run.groupby("group")["steps_to_target"].count().reindex(range(len(groups)))
    marks = any(map(is_baseline, groups))
    domains = [split_domains(g) for g in groups]
    rows = []
    for i, group in enumerate(groups):
        ok = group.ok_runs
        rows.append({
            "row": "group", "group": group.label, **group.settings, **group.implied,
            **({"baseline": is_baseline(group)} if marks else {}),
            "runs": f"{len(ok)} of {len(group.runs)}", "n": len(ok), "N": len(group.runs),
            "seeds": " ".join(format_value(r.seed) for r in ok),
            **stats.loc[i].to_dict(), "reached": f"{int(reached.fillna(0)[i])}/{len(ok)}",
            **({"split_domains": domains[i]} if any(domains) else {}),
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
        a, b = sorted((g1, g2), key=lambda g: setting_order(col, g.settings[col]))
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


# --- tuned on validation --------------------------------------------------------------------


def best_by_validation(groups: Sequence[Group], keys: Sequence[str]) -> list[Group]:
    """For each combination of the other settings, the group whose value of `keys` has the
    highest mean best validation accuracy over its finished seeds (ties: the smaller value).

    `keys` are setting columns (`optimizer.lr`; a dotted choice key such as
    `optimizer._target_` names its column `optimizer`). Each chosen group comes back with
    `settings` = the other settings (so `compare` pairs the chosen groups), `tuned` = the chosen
    values and `tried` = how many values its combination had. Test accuracy plays no part.
    Raises ReportError for a key that is not a varying setting.
    """
    columns = list(groups[0].settings) if groups else []
    wanted = list(dict.fromkeys(column_name(k) for k in keys))
    for key, col in zip(keys, wanted, strict=False):
        if col not in columns:
            implied = groups and col in groups[0].implied
            why = "only follows another choice (one value each)" if implied else \
                "is not a setting that varies across the runs"  # fmt: skip
            raise ReportError(f"--tune {key}: {why}; the settings that vary: "
                              f"{', '.join(columns) or 'none (only the seed)'}")  # fmt: skip
    others = [c for c in columns if c not in wanted]
    combos: dict[tuple, list[Group]] = {}
    for group in groups:
        combos.setdefault(tuple(group.settings[c] for c in others), []).append(group)
    chosen = []
    for members in combos.values():
        scored = [(validation_mean(g), g) for g in members]
        scored = [(v, g) for v, g in scored if not math.isnan(v)]
        if not scored:
            continue
        top = max(v for v, _ in scored)
        ties = [g for v, g in scored if math.isclose(v, top, rel_tol=0, abs_tol=1e-12)]
        best = min(ties, key=lambda g: tuple(setting_order(c, g.settings[c]) for c in wanted))
        chosen.append(Group(label=best.label, settings={c: best.settings[c] for c in others},
                            implied=best.implied, runs=best.runs,
                            tuned={c: best.settings[c] for c in wanted},
                            tried=len(members)))  # fmt: skip
    return chosen


@dataclass
class Tuned:
    """The tuned view: the chosen groups, their summary rows and their comparisons."""

    keys: list[str]  # the tuned setting columns
    groups: list[Group]
    summary: pd.DataFrame  # summarize()'s columns plus the chosen values, tried, val mean
    comparisons: pd.DataFrame


def tune(groups: Sequence[Group], keys: Sequence[str], metric: str = "test_accuracy",
         target: float = 0.80) -> Tuned:  # fmt: skip
    """best_by_validation, summarized (rows `row: tuned`) and compared among the chosen."""
    chosen = best_by_validation(groups, keys)
    columns = list(dict.fromkeys(column_name(k) for k in keys))
    summary = summarize(chosen, metric, target)
    if chosen:
        summary["row"] = "tuned"
        for col in reversed(columns):  # after the other settings
            summary.insert(2 + len(chosen[0].settings), col, [g.tuned[col] for g in chosen])
        summary["tried"] = [g.tried for g in chosen]
        summary[f"{VALIDATION}_mean"] = [validation_mean(g) for g in chosen]
    return Tuned(keys=columns, groups=chosen, summary=summary,
                 comparisons=compare(chosen, metric))  # fmt: skip


# --- data-size curve ------------------------------------------------------------------------


def train_rows(run: Run) -> float:
    """Rows the run trained on: results.json `train_rows`, else its `data.train_rows`."""
    value = as_number((run.results or {}).get("train_rows"))
    return value if not math.isnan(value) else as_number(run.config.get(TRAIN_ROWS))


def rows_label(value: Any, groups: Sequence[Group]) -> str:
    """`data.train_rows` as a reader wants it: null (all rows) as "all (N)", N the count used."""
    if value is not None:
        return format_value(value)
    counts = sorted({int(n) for g in groups for r in g.ok_runs
                     if not math.isnan(n := train_rows(r))})  # fmt: skip
    return f"all ({'/'.join(map(str, counts))})" if counts else "all"


def data_scaling(groups: Sequence[Group], metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per group when `data.train_rows` varies (else empty): its line (the other
    settings), baseline or not, the setting's value and label, the mean rows used, and the
    metric's mean/std/n over finished runs."""
    col = column_name(TRAIN_ROWS)
    if not groups or col not in groups[0].settings:
        return pd.DataFrame()
    rows = []
    for i, group in enumerate(groups):
        other = ", ".join(f"{c}={format_value(v)}" for c, v in group.settings.items() if c != col)
        values = [v for _, v in metric_by_seed(group, metric)]
        used = [n for n in map(train_rows, group.ok_runs) if not math.isnan(n)]
        value = group.settings[col]
        rows.append({
            "group": i, "line": (other or "all runs") + " (baseline)" * is_baseline(group),
            "baseline": is_baseline(group), "setting": value,
            "rows_label": rows_label(value, [g for g in groups if g.settings[col] == value]),
            "train_rows": float(np.mean(used)) if used else math.nan,
            "mean": float(np.mean(values)) if values else math.nan,
            "std": float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan,
            "n": len(values),
        })  # fmt: skip
    return pd.DataFrame(rows)
