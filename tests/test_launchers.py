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
