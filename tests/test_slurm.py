"""Sweeps on a real SLURM cluster (`hydra/launcher=slurm`): the one-node cluster that
scripts/local_slurm.sh starts on this machine (Debian's slurm-wlm and munge). Skipped, with
the reason, where no cluster answers and none can be started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, metric_values, read_results, run_cli
from tokentango import rundir
from tokentango.config import PROJECT_ROOT
from tokentango.status import read_jobs

START_SCRIPT = PROJECT_ROOT / "scripts" / "local_slurm.sh"


def _cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True)
    return out.returncode == 0 and any(
        state.strip() in ("idle", "mixed", "allocated") for state in out.stdout.splitlines()
    )


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    if _cluster_is_up():
        return
    if shutil.which("slurmctld") is None:
        pytest.skip("SLURM is not installed: as root, scripts/local_slurm.sh install && "
                    "scripts/local_slurm.sh start")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("no SLURM cluster answers and starting one needs root "
                    "(scripts/local_slurm.sh start)")  # fmt: skip
    started = subprocess.run([str(START_SCRIPT), "start"], capture_output=True, text=True)
    if started.returncode != 0 or not _cluster_is_up():
        pytest.skip(f"the local SLURM cluster did not start: {started.stderr.strip()[-500:]}")


def slurm_sweep(sweep: Path, data_dir: Path, *overrides: str) -> list[str]:
    return ["--multirun", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1", *TINY, "trainer.early_stopping=null",
            f"hydra.sweep.dir={sweep}", f"runtime.data_dir={data_dir}", *overrides]  # fmt: skip


def job_folders(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def status_rows(sweep: Path) -> list[dict]:
    out = run_cli("tokentango.status", str(sweep), "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


def test_a_slurm_sweep_runs_each_job_as_a_task_of_one_job_array(
    slurm_cluster: None, tmp_path: Path, data_dir: Path
) -> None:
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", *slurm_sweep(sweep, data_dir, "seed=1,2", "trainer.max_steps=8"))
    folders = job_folders(sweep)
    assert [p.name for p in folders] == ["0_seed=1", "1_seed=2"]
    for folder in folders:
        results = read_results(folder)
        assert results["status"] == "completed" and results["steps"] == 8
        assert "torch threads: 1" in (folder / "train.log").read_text()  # cpus_per_task
    jobs = read_jobs(sweep)
    array = {job["job_id"].split("_")[0] for job in jobs}
    assert [job["num"] for job in jobs] == [0, 1] and len(array) == 1
    assert (sweep / ".submitit").is_dir()  # submitit's scripts and logs, inside the sweep
    assert [(r["num"], r["state"], r["step"]) for r in status_rows(sweep)] == [
        (0, "done", 8), (1, "done", 8)]  # fmt: skip
    report = run_cli("tokentango.report", str(sweep), "--out", str(tmp_path / "report"))
    assert "2 runs (2 finished)" in report.stdout


def test_a_job_past_its_time_limit_is_requeued_and_resumes_to_the_same_figures(
    slurm_cluster: None, tmp_path: Path, data_dir: Path
) -> None:
    """A one-minute limit with SLURM's signal 15 s before it: SLURM checks limits every
    30 s, so the signal comes 15 to 45 s into each job, after set-up (4-9 s here). The job
    checkpoints and says interrupted, submitit requeues it, and the requeued job continues
    from that checkpoint; it ends with the figures of a run that was never stopped. The run
    needs more than 45 s of training even on an idle machine (~250 steps/s on one thread),
    so the signal always comes before its end."""
    budget = ["seed=1", "trainer.max_steps=15000", "trainer.epochs=250",
              "trainer.eval_every=100", "runtime.threads=1"]  # fmt: skip
    # The run that is never stopped, meanwhile, on the other core.
    straight = tmp_path / "straight"
    reference = subprocess.Popen(
        [sys.executable, "-m", "tokentango.train", "--multirun", *TINY, *budget,
         "trainer.early_stopping=null", f"hydra.sweep.dir={straight}",
         f"runtime.data_dir={data_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", *slurm_sweep(
        sweep, data_dir, *budget, "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=15", "hydra.launcher.max_num_timeout=20"))  # fmt: skip
    _, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr[-2000:]

    (folder,) = job_folders(sweep)
    log = (folder / "train.log").read_text()
    resumed_at = [int(line.rsplit(" ", 1)[-1]) for line in log.splitlines()
                  if "resumed from" in line]  # fmt: skip
    assert resumed_at and all(step > 0 for step in resumed_at), log[-3000:]
    assert "SIGUSR2: stopping after this step" in log
    (expected_dir,) = job_folders(straight)
    assert metric_values(folder) == metric_values(expected_dir)
    results, expected = read_results(folder), read_results(expected_dir)
    for key in ("status", "test_accuracy", "confusion_matrix", "steps", "best_step"):
        assert results[key] == expected[key], key


def test_a_sweep_submitted_without_waiting_returns_and_status_follows_it(
    slurm_cluster: None, tmp_path: Path, data_dir: Path
) -> None:
    sweep = tmp_path / "sweep"
    submitted = run_cli("tokentango.train", *slurm_sweep(
        sweep, data_dir, "seed=1,2", "trainer.max_steps=30", "hydra.launcher.wait=false"))
    assert f"python -m tokentango.status {sweep}" in submitted.stdout
    first = status_rows(sweep)
    assert [r["num"] for r in first] == [0, 1]
    assert {r["state"] for r in first} <= {"pending", "running", "done"}
    assert {r["state"] for r in first} != {"done"}  # returned long before the jobs ended
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = status_rows(sweep)
        if all(r["state"] not in ("pending", "running") for r in rows):
            break
        time.sleep(3)
    assert [(r["state"], r["step"]) for r in rows] == [("done", 30), ("done", 30)]
    for folder in job_folders(sweep):
        assert read_results(folder)["status"] == rundir.COMPLETED
    table = run_cli("tokentango.status", str(sweep)).stdout
    assert table.splitlines()[-1] == "2 done"
