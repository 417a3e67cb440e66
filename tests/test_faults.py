"""Reliability: a diverging run fails cleanly and keeps its last good checkpoint, the report
and status read half-written folders without crashing, and nothing the project reads is
ever unpickled."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, read_metrics, read_results, tiny, train_in_process
from tokentango import checkpoints, rundir
from tokentango.loop import NonFiniteLoss, train

# Adam at lr 1e6 on the tiny model: step 2's loss is ~1e9 and its update leaves NaN weights,
# step 3's loss is NaN (deterministic).
DIVERGES = ["optimizer.lr=1e6", "trainer.eval_every=1", "trainer.keep_last=10",
            "trainer.early_stopping=null"]  # fmt: skip


def failing_step(message: str) -> int:
    return int(re.search(r"step (\d+)", message).group(1))


def _checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(m["step"] for m in checkpoints.list_checkpoints(run_dir / rundir.CHECKPOINT_DIR))


def _finite_weights(path: Path) -> bool:
    payload = checkpoints.read_payload(path)
    return all(torch.isfinite(t).all() for t in payload["model"].values())


# --- a NaN or infinite loss -------------------------------------------------------------


@pytest.mark.parametrize("overrides, first_bad", [
    (DIVERGES, "weights are not finite after step 2"),  # caught before step 2's checkpoint
    ([*DIVERGES, "optimizer=sgd", "trainer.eval_every=3"], "loss is not finite at step 5"),
    ([*DIVERGES, "trainer.eval_every=4"], "loss is not finite at step 3"),
], ids=["weights-before-a-checkpoint", "loss-between-checkpoints", "loss-before-any"])
def test_a_diverging_run_stops_at_that_step_before_writing_its_broken_state(
    tmp_path: Path, data_dir: Path, overrides: list[str], first_bad: str
) -> None:
    """The error names the step, the loss and the learning rate, so a user sees at once
    what to lower; nothing of the broken state reaches metrics.jsonl or a checkpoint, and
    the newest checkpoint (the one a resume uses) is the last good one."""
    with pytest.raises(NonFiniteLoss) as raised:
        train(tiny(data_dir, *overrides), tmp_path, "diverges")
    message = str(raised.value)
    assert message.startswith(first_bad), message
    assert "optimizer.lr=1e+06" in message
    evaluated = [m["step"] for m in read_metrics(tmp_path)]
    saved = _checkpoint_steps(tmp_path)
    assert saved == evaluated and all(s < failing_step(message) for s in saved)
    assert all(math.isfinite(m["cls_loss"]) for m in read_metrics(tmp_path))
    if saved:
        assert f"the last good checkpoint is at step {saved[-1]}" in message
        newest = checkpoints.latest_checkpoint(tmp_path / rundir.CHECKPOINT_DIR)
        assert checkpoints.read_metadata(newest)["step"] == saved[-1]
        assert _finite_weights(newest)
    else:
        assert "no checkpoint was written" in message
    assert rundir.read_results(tmp_path) is None  # run.main records the failure


def test_a_diverging_job_fails_with_its_step_named_and_the_sweep_goes_on(
    tmp_path: Path, data_dir: Path
) -> None:
    sweep = tmp_path / "sweep"
    code = train_in_process("--multirun", "optimizer.lr=1e6,2e-3", "use_mlm=false", *TINY,
                            *DIVERGES[1:], f"hydra.sweep.dir={sweep}",
                            f"runtime.data_dir={data_dir}")  # fmt: skip
    assert code != 0  # Hydra reports the failed job at the end
    jobs = {read_results(p)["status"]: p for p in sweep.iterdir() if p.is_dir()}
    assert set(jobs) == {"failed", "completed"}
    failed = read_results(jobs["failed"])
    assert failed["error"].startswith("NonFiniteLoss: weights are not finite after step 2")
    assert "optimizer.lr=1e+06" in failed["error"]
    assert _checkpoint_steps(jobs["failed"]) == [1]
    assert _finite_weights(checkpoints.latest_checkpoint(jobs["failed"]))
    assert read_results(jobs["completed"])["steps"] == 12
