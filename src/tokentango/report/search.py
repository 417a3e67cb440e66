"""An Optuna search among the runs: which runs are its trials, and its best trial.

Read from the run folders alone (each trial's `.hydra/hydra.yaml` names the sweeper that
launched it and the job number, which tokentango's search sweeper makes the trial's
number), not from the study's database: the report needs no optuna, and a study that was
interrupted, or whose database is gone, still shows its best trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from tokentango import rundir
from tokentango.config import parse_overrides
from tokentango.report.runs import Run
from tokentango.report.stats import as_number

# What a search maximizes (tokentango.run returns it): the test split never chooses.
OBJECTIVE = "best_val_accuracy"


@dataclass
class Trial:
    """A run that an Optuna sweeper launched."""

    run: Run
    number: int | None  # the trial's number in its study (Hydra's job number)
    params: dict[str, Any]  # the searched settings (the overrides that vary) -> value

    @property
    def value(self) -> float:
        """The value the study was told (NaN for a trial that did not finish)."""
        return as_number((self.run.results or {}).get(OBJECTIVE)) if self.run.ok else math.nan


def search_trial(run: Run) -> Trial | None:
    """The run as an Optuna search's trial; None when another sweeper (or none) ran it."""
    try:
        hydra = OmegaConf.load(run.path / rundir.HYDRA_FILE).hydra
        # hydra-optuna-sweeper's sweeper, or one built on it (tokentango's): Optuna's sampler.
        targets = [OmegaConf.select(hydra, f"{node}._target_", default=None)
                   for node in ("sweeper", "sweeper.sampler")]  # fmt: skip
        if not any("optuna" in str(target).lower() for target in targets if target):
            return None
        task = [str(o) for o in hydra.overrides.task]
        fixed = set(OmegaConf.select(hydra, "job.config.override_dirname.exclude_keys",
                                     default=None) or [])  # fmt: skip
        number = OmegaConf.select(hydra, "job.num", default=None)
    except Exception:  # no or an unreadable hydra.yaml: not a trial we can place
        return None
    params = {}
    for override in parse_overrides(task):
        key = override.key_or_group
        if key not in fixed:
            params[key] = run.config.get(key, override.value())
    return Trial(run=run, number=number, params=params)


def search_trials(runs: Sequence[Run]) -> list[Trial]:
    """The runs that are trials of an Optuna search, in trial order."""
    trials = [t for t in (search_trial(r) for r in runs) if t is not None]
    return sorted(trials, key=lambda t: (t.number is None, t.number or 0, t.run.name))


def best_trial(trials: Sequence[Trial]) -> Trial | None:
    """The finished trial with the highest validation accuracy (the earlier on a tie);
    None when none finished."""
    finished = [t for t in trials if not math.isnan(t.value)]
    return max(finished, key=lambda t: t.value, default=None)
