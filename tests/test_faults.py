"""Reliability: a diverging run fails cleanly and keeps its last good checkpoint, the report
and status read half-written folders without crashing, and nothing the project reads is
ever unpickled."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import TINY, read_metrics, read_results, run_cli, tiny, train_in_process
from tokentango import checkpoints, report, rundir
from tokentango.loop import NonFiniteLoss, train
from tokentango.status import job_states

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
], ids=["weights-before-a-checkpoint", "loss-between-checkpoints", "loss-before-any"])  # fmt: skip
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


# --- half-written run folders ---------------------------------------------------------

# Run folder -> (what is wrong with it, what the report says of it: status, words of the reason).
HALF_WRITTEN = {
    "1_only_hydra": ("killed before its first evaluation", "unfinished", "no results.json"),
    "2_torn_metrics": ("metrics.jsonl cut mid-line", "unfinished", "step 50"),
    "3_results_list": ("results.json a list", "failed", "unreadable results.json"),
    "4_results_no_keys": ("results.json without status", "failed", "status None"),
    "5_accuracy_string": ("test_accuracy a string", "failed", "test_accuracy '0.8' is not"),
    "6_future_version": ("results.json of a later format", "failed", "format_version 99"),
    "7_bad_config": ("unreadable .hydra/config.yaml", "failed", "unreadable .hydra/config"),
    "8_empty_results": ("results.json empty", "failed", "unreadable results.json"),
}


def half_written_sweep(root: Path) -> Path:
    """A sweep folder holding one good run and each way a run folder is found half-written
    (a run killed mid-write, a file of another version)."""
    from tests.test_report import curve, make_run

    make_run(root, "0_good", seed=1)
    for name in HALF_WRITTEN:
        make_run(root, name, seed=int(name[0]), status="unfinished", metrics=[])
    torn = json.dumps(curve([0.6])[0]) + "\n" + json.dumps(curve([0.6, 0.7])[1])[:25]
    (root / "2_torn_metrics" / rundir.METRICS_FILE).write_text(torn)
    results = {
        "3_results_list": "[1, 2, 3]",
        "4_results_no_keys": json.dumps({"run_name": "x"}),
        "5_accuracy_string": json.dumps({"status": "completed", "test_accuracy": "0.8",
                                         "steps": "100", "seed": [5], "train_seconds": None}),
        "6_future_version": json.dumps({"format_version": 99, "status": "completed",
                                        "scores": {"test": {"accuracy": 0.8}}}),
        "7_bad_config": json.dumps({"status": "completed", "test_accuracy": 0.7, "steps": 1}),
        "8_empty_results": "",
    }  # fmt: skip
    for name, text in results.items():
        (root / name / rundir.RESULTS_FILE).write_text(text)
    (root / "7_bad_config" / rundir.CONFIG_FILE).write_bytes(b"\xff\xfe seed: [1, \n  : {")
    return root


def test_the_report_lists_half_written_runs_and_never_crashes(tmp_path: Path) -> None:
    sweep = half_written_sweep(tmp_path / "sweep")
    proc = run_cli("tokentango.report", str(sweep))
    runs = {run.name: run for run in report.find_runs([sweep])}
    assert runs["sweep/0_good"].status == "completed"
    for name, (why, status, reason) in HALF_WRITTEN.items():
        run = runs[f"sweep/{name}"]
        assert run.status == status, why
        assert reason in (run.error or ""), (why, run.error)
        assert name in proc.stdout.split("## Failed and unfinished runs")[1], why
    table = pd.read_csv(sweep / "report.csv")
    assert set(table["run"].dropna()) >= {f"sweep/{name}" for name in HALF_WRITTEN}


def test_status_reads_half_written_runs_and_never_crashes(tmp_path: Path) -> None:
    sweep = half_written_sweep(tmp_path / "sweep")
    jobs = [{"num": 0}, {"num": [1], "job_id": "7"}, {"num": "2", "job_id": "8"}, "9"]
    (sweep / "jobs.json").write_text(json.dumps(jobs))  # entries of another shape: not used
    for args in ([], ["--json"]):
        proc = run_cli("tokentango.status", str(sweep), *args)
        for name in HALF_WRITTEN:
            assert name in proc.stdout
    states = {row["run_folder"]: row["state"] for row in job_states(sweep)}
    assert states["0_good"] == states["5_accuracy_string"] == states["6_future_version"] == "done"
    assert states["1_only_hydra"] == states["2_torn_metrics"] == "unfinished"
    for name in ("3_results_list", "4_results_no_keys", "8_empty_results"):
        assert states[name] == "failed", name
