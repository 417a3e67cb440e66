"""Shared fixtures: composed configs, a small generated corpus, one real sweep, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokentango import rundir
from tokentango.config import PROJECT_ROOT, compose_config

# The reliability table's recorder (tests/reliability.py) and pytester, which tests it.
pytest_plugins = ["pytester", "tests.reliability"]

SHARED_SAMPLE = PROJECT_ROOT.parent / "shared" / "data" / "news_sample.csv"

# A model and budget small enough that a real run takes seconds on 2 CPU cores.
TINY = [
    "model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.d_ff=32",
    "data.max_length=48", "data.vocab_size=400", "data.sample_rows=1500",
    "trainer.max_steps=12", "trainer.eval_every=4", "trainer.batch_size=16",
    "runtime.progress_bar=false",
]  # fmt: skip


def compose(*overrides: str, with_hydra: bool = False):
    """The config `python -m tokentango.train <overrides>` would run: the one place tests
    compose (through tokentango.config.compose_config, as notebooks and benchmarks do)."""
    return compose_config(list(overrides), with_hydra=with_hydra)


def tiny(data_dir: Path, *overrides: str):
    """TINY composed onto the session's data folder, plus `overrides`."""
    return compose(*TINY, f"runtime.data_dir={data_dir}", *overrides)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the whole session, so the tiny corpus is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One real 4-job sweep (seeds 1, 2 x use_mlm true, false) through the CLI, shared by
    the train, report and resume tests that only read it."""
    sweep = tmp_path_factory.mktemp("sweep") / "sweep"
    run_cli("tokentango.train", *tiny_sweep_command(sweep, data_dir))
    return sweep


def tiny_sweep_command(sweep: Path, data_dir: Path) -> list[str]:
    return ["--multirun", "seed=1,2", "use_mlm=true,false", *TINY, "trainer.max_steps=8",
            "trainer.early_stopping=null", f"hydra.sweep.dir={sweep}",
            f"runtime.data_dir={data_dir}"]  # fmt: skip


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One tiny real run (in-process, 12 steps, every checkpoint kept) in a run folder as
    the CLI lays it out; shared by the tests that only read it."""
    from tokentango.loop import train

    run_dir = tmp_path_factory.mktemp("trained") / "runs" / "2026-01-01_00-00-00_tiny-run-000000"
    (run_dir / rundir.HYDRA_DIR).mkdir(parents=True)
    train(tiny(data_dir, "trainer.keep_last=10"), run_dir, "tiny-run-000000")
    return run_dir


@pytest.fixture
def news_sample() -> Path:
    if not SHARED_SAMPLE.is_file():
        pytest.skip(f"{SHARED_SAMPLE} is absent")
    return SHARED_SAMPLE


def train_in_process(*args: str) -> int:
    """`python -m tokentango.train args...` inside this process (no interpreter start-up):
    returns the exit status. Output goes to capsys as usual."""
    from hydra.core.global_hydra import GlobalHydra

    from tokentango import run

    argv = sys.argv
    sys.argv = ["tokentango.train", *args]
    try:
        run.cli()
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()


def run_cli(module: str, *args: str, check: bool = True, cwd: Path | None = None):
    """Run `python -m <module> args...` as a user would; returns the CompletedProcess."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=900,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {args} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def read_results(run_dir: Path) -> dict:
    results = rundir.read_results(run_dir)
    assert results is not None, f"{run_dir} has no readable results.json"
    return results


def read_metrics(run_dir: Path) -> list[dict]:
    return rundir.read_metrics(run_dir)


def metric_values(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field: what must repeat exactly."""
    return [{k: v for k, v in m.items() if k != "elapsed_seconds"} for m in read_metrics(run_dir)]
