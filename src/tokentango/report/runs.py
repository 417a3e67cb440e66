"""Reading run folders and grouping them: `find_runs` -> `group_runs`."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from tokentango import rundir
from tokentango.config import REPORT_IGNORES, is_runtime_key, upgrade_flat

# A node's `_target_` or `name` names a choice (optimizer=sgd, model=original); the other keys
# of that node that follow from the choice are shown as implied, not as separate settings.
CHOICE_LEAVES = ("_target_", "name")
# Models that are reference points, not BERT encoders (model.name): no training steps, no losses.
BASELINE_MODELS = ("tfidf_lr",)
TRAIN_ROWS = "data.train_rows"  # the data-size setting; results.json `train_rows` is the count
# Settings whose null means "all" (data.train_rows): ordered after every number.
NULL_MEANS_ALL = (TRAIN_ROWS,)


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
    status: str  # completed | early_stopped | failed | interrupted | unfinished
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in rundir.FINISHED

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

    tuned: dict[str, Any] = field(default_factory=dict)  # column -> value chosen on validation
    tried: int = 0  # how many values of the tuned setting were tried

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.ok]


def is_baseline(item: Run | Group) -> bool:
    """A run of a baseline model (config `model.name`, or results.json `baseline`/`model`);
    a group whose runs are."""
    if isinstance(item, Group):
        return any(is_baseline(r) for r in item.runs)
    results = item.results or {}
    return (item.config.get("model.name") in BASELINE_MODELS or results.get("baseline") is True
            or results.get("model") in BASELINE_MODELS)  # fmt: skip


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """Dotted key -> value for every leaf; interpolations resolved where they can be.

    A run folder's config may hold an interpolation or a resolver this process does not
    know, so each leaf is resolved on its own and falls back to the raw string. Keys of
    earlier versions are then named as today, after resolving, so their
    interpolations (`${paths.root}`) still resolve (`upgrade_flat`).
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
    return upgrade_flat(flat)


def read_run(path: Path, name: str | None = None) -> Run:
    """One run folder; never raises for a broken run, it becomes a failed one."""
    path = Path(path)
    error = None
    try:
        config = flatten_config(OmegaConf.load(path / rundir.CONFIG_FILE))
    except Exception as err:  # never let one broken folder stop the report
        config, error = {}, f"unreadable {rundir.CONFIG_FILE}: {err}"
    try:
        overrides = [str(o) for o in OmegaConf.load(path / rundir.OVERRIDES_FILE)]
    except Exception:  # overrides are informative only
        overrides = []
    metrics = rundir.read_metrics(path)
    results = rundir.read_results(path)
    if results is None and not (path / rundir.RESULTS_FILE).is_file():
        status = "unfinished"
        last = f" (last evaluation at step {metrics[-1]['step']})" if metrics else ""
        error = error or f"no {rundir.RESULTS_FILE}{last}"
    elif results is None:
        status, error = rundir.FAILED, error or f"unreadable {rundir.RESULTS_FILE}"
    elif results.get("status") == rundir.INTERRUPTED:  # stopped by a signal: resumable
        status = rundir.INTERRUPTED
        error = error or (f"{results.get('signal', 'a signal')} at step {results.get('steps')} "
                          f"of {results.get('total_steps')}; rerun the sweep to resume it")
    else:
        status = results.get("status")
        if status not in rundir.FINISHED:
            error = error or str(results.get("error") or f"status {status!r}")
            status = rundir.FAILED
        elif (shape := unusable_results(results)) is not None:
            status, error = rundir.FAILED, error or shape
    if status in rundir.FINISHED and error:  # a config we cannot read cannot be grouped
        status = rundir.FAILED
    return Run(path=path, name=name or path.name, config=config, overrides=overrides,
               results=results, metrics=metrics, status=status, error=error)  # fmt: skip


def unusable_results(results: dict[str, Any]) -> str | None:
    """Why a finished run's results.json cannot be summarized (written by another version,
    or by hand), or None: its `test_accuracy` must be a fraction."""
    accuracy = results.get("test_accuracy")
    if isinstance(accuracy, int | float) and not isinstance(accuracy, bool) \
            and 0.0 <= accuracy <= 1.0:  # fmt: skip
        return None
    version = results.get("format_version")
    of = f"{rundir.RESULTS_FILE} of another version (format_version {version!r})" \
        if version is not None else f"{rundir.RESULTS_FILE} of another shape"  # fmt: skip
    return f"{of}: test_accuracy {accuracy!r} is not a fraction"


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
            if rundir.is_run_dir(here_path):
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
                subdirs[:] = sorted(d for d in subdirs if d != rundir.HYDRA_DIR)
        if not found:
            raise ReportError(f"{given}: no run folders (none holds .hydra/config.yaml)")
    return runs


def _ignored(key: str) -> bool:
    """Keys that never make two runs different experiments: the seed (pooled over), the
    run's name and start, and everything under `runtime` (speed and folders only) and
    `tracking` (where the figures are also written)."""
    return key in REPORT_IGNORES or is_runtime_key(key)


def sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, bool | int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def setting_order(column: str, value: Any) -> tuple:
    """sort_key for a setting's value; null after every number where it means "all"."""
    if value is None and column in NULL_MEANS_ALL:
        return (1, math.inf, "")
    return sort_key(value)


def column_name(key: str) -> str:
    """Table column for a dotted key: a choice reads as its group, as on the command line
    (`optimizer._target_` as `optimizer`, `model.name` as `model`)."""
    node, _, leaf = key.rpartition(".")
    return node if node and leaf in CHOICE_LEAVES else key


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
    follows optimizer=adam|sgd; data.max_length follows model=original|small, whose preset
    sets it), a map key -> the choice key that sets it. Top-level keys (use_mlm, train_frac)
    are always settings of their own.
    """
    keys = sorted({k for r in runs for k in r.config if not _ignored(k)})
    varying = [k for k in keys if len({r.config.get(k) for r in runs}) > 1]
    choices = [k for k in varying if k.rsplit(".", 1)[-1] in CHOICE_LEAVES and "." in k]
    implied: dict[str, str] = {}
    for key in varying:
        for choice in choices:
            if key == choice or key in choices or "." not in key:
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
    order = [column_name(k) for k in keys]
    for values in sorted(by_key, key=lambda vs: tuple(map(setting_order, order, vs))):
        members = sorted(by_key[values], key=lambda r: (sort_key(r.seed), r.name))
        settings = {column_name(k): display_value(k, v) for k, v in zip(keys, values, strict=True)}
        label = ", ".join(f"{c}={format_value(v)}" for c, v in settings.items()) or "all runs"
        if any(is_baseline(r) for r in members):
            label += " (baseline)"
        first = members[0].config
        groups.append(Group(label=label, settings=settings,
                            implied={k: first.get(k) for k in implied}, runs=members))  # fmt: skip
    return groups
