"""hydra-optuna-sweeper's sweeper, made to resume a study in its sweep folder.

The plugin's own sweeper already tells Optuna a failed trial FAILED and goes on when
`max_failure_rate` allows it (the preset sets 1.0). What it lacks for a study whose storage
is a file in the sweep folder, rerun with `hydra.sweep.dir=<that folder>` to add trials:

- the folder must exist before the study is opened (Hydra's launcher makes it later, and
  SQLite will not create a file in a missing folder);
- a rerun numbers its jobs from 0 again, while the study numbers its trials on: the jobs are
  numbered as the trials instead, so a job folder (`<job number>_<overrides>`) is the trial's
  and a resumed study's trials land in new folders, never in an earlier trial's;
- a seeded sampler built afresh repeats the draws it made in the first run (TPE samples at
  random for its first `n_startup_trials`): a resumed study's sampler is seeded with the seed
  plus the trials already in the study, which is reproducible and draws new points.

A search in which no trial finishes ends with an error that says so. Hydra's plugin scan
imports this module at every start, so it imports nothing of optuna (1-2 s) itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SearchSweeper(OptunaSweeper):
    """OptunaSweeper whose job numbers are the study's trial numbers (see the module)."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:  # fmt: skip
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.config = config

    def sweep(self, arguments: list[str]) -> Any:
        impl = self.sweeper
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        done = len(stored_trials(impl.storage, impl.study_name))
        impl.job_idx = done
        sampler = self.config.hydra.sweeper.sampler
        if done and sampler.get("seed") is not None:
            impl.sampler = instantiate(sampler, seed=sampler.seed + done)
            log.info("Resuming study %s after %d trials: sampler seed %d + %d",
                     impl.study_name, done, sampler.seed, done)  # fmt: skip
        try:
            return impl.sweep(arguments)
        except ValueError as err:  # the plugin asks for the best trial at the end, and
            # optuna's answer when none finished is "Record does not exist."
            trials = stored_trials(impl.storage, impl.study_name)
            if trials and not any(t.state.name == "COMPLETE" for t in trials):
                raise RuntimeError(f"no trial of study {impl.study_name} finished; each trial's "
                                   f"results.json in {sweep_dir} says why") from err  # fmt: skip
            raise


def stored_trials(storage: Any, study_name: str | None) -> list[Any]:
    """The stored study's trials, in any state (their count is the next trial's number);
    none for a study not stored yet, in memory, or without a name (always a new study)."""
    if storage is None or study_name is None:
        return []
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # optuna 2.x: no study of that name in the storage
        return []
    return study.get_trials(deepcopy=False)
