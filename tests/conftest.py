"""Shared fixtures: composed configs, a small generated corpus, and CLI runners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokentango.config import PROJECT_ROOT, compose_config  # noqa: F401 (re-exported)

SHARED_SAMPLE = PROJECT_ROOT.parent / "shared" / "data" / "news_sample.csv"

# A model and budget small enough that a real run takes seconds on 2 CPU cores.
TINY = [
    "model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.d_ff=32",
    "model.max_length=48", "model.vocab_size=400", "data.sample_rows=1500",
    "trainer.max_steps=12", "trainer.eval_every=4", "trainer.batch_size=16",
    "trainer.progress_bar=false",
]  # fmt: skip


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the whole session, so the tiny corpus is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def news_sample() -> Path:
    if not SHARED_SAMPLE.is_file():
        pytest.skip(f"{SHARED_SAMPLE} is absent")
    return SHARED_SAMPLE


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
    return json.loads((run_dir / "results.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
