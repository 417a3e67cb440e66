"""`hydra/launcher=slurm`: hydra-submitit-launcher's SLURM launcher, plus a record of the
submitted jobs and a mode that submits and returns. (Hydra instantiates launchers only from
the `hydra_plugins` namespace, so it lives here; the preset is conf/hydra/launcher/slurm.yaml.)

Hydra's launchers wait, polling, until every job of a sweep ends; a cluster sweep would
tie up the user's shell for hours. With `hydra.launcher.wait=false` this launcher submits
the job array and returns at once. Either way it records the jobs in the sweep folder
(tokentango.status: job number, SLURM job id, overrides), where `python -m
tokentango.status` reads them with squeue and the run folders to say which jobs are
pending, running, interrupted, failed or done. Requeueing is submitit's: a job that gets
the time-limit or preemption signal checkpoints (tokentango.interrupt), then submitit
resubmits it with the same arguments and the run resumes from its newest checkpoint.
"""


import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from omegaconf import MISSING, OmegaConf

log = logging.getLogger("tokentango.launch")


@dataclass
class SlurmLauncherConf(SlurmQueueConf):
    """submitit_slurm's keys plus `wait`; the values are in conf/hydra/launcher/slurm.yaml."""

    _target_: str = "hydra_plugins.tokentango_launcher.slurm.SlurmLauncher"
    wait: bool = MISSING


ConfigStore.instance().store(name="tokentango_slurm_schema", node=SlurmLauncherConf)


class SlurmLauncher(SubmititSlurmLauncher):
    def __init__(self, wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.wait = wait

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:  # fmt: skip
        import submitit

        assert self.config is not None
        sweeper = str(self.config.hydra.sweeper.get("_target_", ""))
        if not self.wait and not sweeper.endswith("BasicSweeper"):
            raise ValueError(f"hydra.launcher.wait=false: {sweeper} needs each job's result "
                             "to choose the next; only a grid sweep can be submitted and left")
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params["max_num_timeout"],
        )  # fmt: skip
        # The plugin's own translation: queue-independent keys as they are, others slurm_*.
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            key if key in base else f"slurm_{key}": value for key, value in self.params.items()
            if key not in ("submitit_folder", "max_num_timeout")
        })  # fmt: skip
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        nums = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for num, overrides in zip(nums, job_overrides, strict=True):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        args = [(list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}",
                 Singleton.get_state())
                for num, overrides in zip(nums, job_overrides, strict=True)]  # fmt: skip
        jobs = executor.map_array(self, *zip(*args, strict=True))
        from tokentango.status import record_jobs

        record_jobs(sweep_dir, [
            {"num": num, "job_id": job.job_id, "overrides": list(overrides)}
            for num, job, overrides in zip(nums, jobs, job_overrides, strict=True)
        ])  # fmt: skip
        if self.wait:
            return wait_for(jobs, [list(o) for o in job_overrides], sweep_dir)
        print(f"submitted {len(jobs)} jobs to SLURM (array {jobs[0].job_id.split('_')[0]}); "
              f"see them with: python -m tokentango.status {sweep_dir}")  # fmt: skip
        # Hydra's sweep wants a return per job: none is known yet, and none is needed.
        return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED) for o in job_overrides]


def wait_for(jobs: Sequence[Any], overrides: list[list[str]], sweep_dir: Path,
             poll_s: float = 5.0, grace_s: float = 30.0) -> list[JobReturn]:  # fmt: skip
    """Each job's JobReturn once it has ended. submitit's own wait asks sacct, which a
    cluster without an accounting database lacks: it then warns at every poll and never
    sees a job that died without a result (it would wait forever). So: the result files,
    and squeue for jobs that have ended without one (`grace_s` after they leave the queue;
    the run folder says whether the run was interrupted). Without squeue, submitit's way."""
    from tokentango.status import in_queue, job_states, squeue

    results: dict[int, JobReturn] = {}
    gone_since: dict[int, float] = {}
    while len(results) < len(jobs):
        queue = squeue([job.job_id for job in jobs])
        for i, job in enumerate(jobs):
            if i in results:
                continue
            if job.paths.result_pickle.exists() or queue is None:
                try:
                    results[i] = job.results()[0]  # waits, when there is no queue to ask
                except Exception as err:  # submitit's: e.g. timed out too many times
                    results[i] = _failed(overrides[i], err)
            elif not in_queue(queue, job.job_id):
                if time.monotonic() - gone_since.setdefault(i, time.monotonic()) > grace_s:
                    rows = {row["job_id"]: row for row in job_states(sweep_dir)}
                    row = rows.get(job.job_id, {})
                    why = (f"interrupted ({row['note']}); rerun the sweep with "
                           f"hydra.sweep.dir={sweep_dir} to resume it"
                           if row.get("state") == "interrupted"
                           else f"ended without a result (killed?); see {job.paths.stderr}")
                    err = RuntimeError(f"SLURM job {job.job_id} {why}")
                    results[i] = _failed(overrides[i], err)
            else:
                gone_since.pop(i, None)
        if len(results) < len(jobs):
            time.sleep(poll_s)
    return [results[i] for i in range(len(jobs))]


def _failed(overrides: list[str], err: BaseException) -> JobReturn:
    return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=err)
