"""Sweeps on other Hydra launchers, run for real: jobs in parallel processes share one data
cache (built once, by one job) and split the cores between them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import TINY, metric_values, read_results, run_cli


def test_a_joblib_sweep_runs_jobs_in_parallel_on_one_cache(tmp_path: Path,
                                                          tiny_sweep: Path) -> None:  # fmt: skip
    from joblib import cpu_count

    data_dir = tmp_path / "data"  # empty: the first jobs race to build the cache
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "seed=1,2", "use_mlm=true,false", *TINY, "trainer.max_steps=8",
            "trainer.early_stopping=null", f"hydra.sweep.dir={sweep}",
            f"runtime.data_dir={data_dir}")  # fmt: skip
    folders = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in folders] == [p.name for p in sorted(tiny_sweep.iterdir())
                                         if p.is_dir()]  # fmt: skip
    logs = [(folder / "train.log").read_text() for folder in folders]
    for folder in folders:
        assert read_results(folder)["status"] == "completed"
    # One job built the cache while the others waited on its lock, then opened it.
    assert sum("preprocessing" in log for log in logs) == 1
    assert len([p for p in (data_dir / "cache").iterdir() if p.is_dir()]) == 1
    # Each job's torch threads are its share of the cores: jobs x threads <= cores.
    threads = [int(re.search(r"torch threads: (\d+)", log).group(1)) for log in logs]
    assert threads == [max(1, cpu_count() // 2)] * len(folders)
    # The same jobs as the basic launcher's sweep: same names, same steps and evaluations.
    for folder in folders:
        basic = [{k: m[k] for k in ("step", "epoch", "samples")}
                 for m in metric_values(tiny_sweep / folder.name)]  # fmt: skip
        assert [{k: m[k] for k in ("step", "epoch", "samples")}
                for m in metric_values(folder)] == basic  # fmt: skip


def test_a_submitit_local_sweep_gives_each_job_its_cpus(tmp_path: Path, data_dir: Path) -> None:
    """hydra/launcher=submitit_local: every job in its own submitit process at once; the
    launcher's cpus_per_task sets each job's torch threads; submitit's files stay inside
    the sweep folder, and the report reads the sweep as any other."""
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", "--multirun", "hydra/launcher=submitit_local",
            "hydra.launcher.cpus_per_task=1", "seed=1,2", *TINY, "trainer.max_steps=8",
            "trainer.early_stopping=null", f"hydra.sweep.dir={sweep}",
            f"runtime.data_dir={data_dir}")  # fmt: skip
    folders = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in folders] == ["0_seed=1", "1_seed=2"]
    for folder in folders:
        results = read_results(folder)
        assert results["status"] == "completed" and results["steps"] == 8
        assert results["config"]["runtime"]["threads"] == 1
        assert "torch threads: 1" in (folder / "train.log").read_text()
    assert len(list((sweep / ".submitit").iterdir())) >= 2  # one folder per job, in the sweep
    report = run_cli("tokentango.report", str(sweep), "--out", str(tmp_path / "report"))
    assert "2 runs (2 finished)" in report.stdout
