"""Resume: a killed run continues exactly, in its own folder, with its own config."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import (
    TINY,
    metric_values,
    read_metrics,
    read_results,
    tiny,
    tiny_sweep_command,
    train_in_process,
)
from tokentango import checkpoints, run, rundir
from tokentango.checkpoints import CheckpointError, read_metadata
from tokentango.config import RENAMED_KEYS
from tokentango.loop import train


def kill_after_checkpoint(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The next training run dies right after writing its n-th checkpoint."""
    real_save, saved = checkpoints.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        saved.append(real_save(*args, **kwargs))
        if len(saved) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)


@pytest.mark.parametrize("budget", [
    ["trainer.max_steps=24", "trainer.early_stopping=null"],
    # Past an epoch boundary (~58 batches an epoch) with live early-stopping counters.
    ["trainer.max_steps=100", "trainer.eval_every=10", "optimizer.lr=3e-3",
     "trainer.early_stopping.threshold=0.5", "trainer.early_stopping.patience=6"],
    # Mid warm-up and mid decay of a learning-rate schedule.
    ["trainer.max_steps=24", "trainer.early_stopping=null", "scheduler=cosine",
     "scheduler.warmup_steps=10"],
    # On a data.train_rows subsample: 4 steps an epoch, so the kill lands in epoch 3 of 6.
    ["data.train_rows=64", "trainer.max_steps=24", "trainer.epochs=10",
     "trainer.early_stopping=null"],
], ids=["within-an-epoch", "across-epochs-with-early-stopping", "lr-schedule",
        "train-rows-subsample"])  # fmt: skip
def test_killed_after_third_checkpoint_and_resumed_gives_identical_metrics(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, budget: list[str]
) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    expected = train(tiny(data_dir, *budget), straight, "r")
    assert expected["epochs_completed"] >= 1 or "trainer.max_steps=100" not in budget

    kill_after_checkpoint(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(data_dir, *budget), killed, "r")
    monkeypatch.undo()
    assert len(read_metrics(killed)) == 3
    latest = checkpoints.latest_checkpoint(killed / rundir.CHECKPOINT_DIR)
    resumed = train(tiny(data_dir, *budget), killed, "r", resume_from=latest)

    assert metric_values(killed) == metric_values(straight)
    for key in ("status", "test_accuracy", "confusion_matrix", "steps", "best_step", "samples",
                "epochs_completed", "train_rows", "train_rows_available"):  # fmt: skip
        assert resumed[key] == expected[key], key


def test_resuming_from_an_older_checkpoint_rewrites_what_came_after(
    tmp_path: Path, data_dir: Path
) -> None:
    budget = ["trainer.early_stopping=null", "trainer.keep_last=10"]
    straight = train(tiny(data_dir, *budget), tmp_path, "r")
    first, *later = sorted(
        (Path(m["path"]) for m in checkpoints.list_checkpoints(tmp_path)),
        key=lambda p: read_metadata(p)["step"],
    )
    expected = metric_values(tmp_path)
    assert [m["step"] for m in expected] == [4, 8, 12] and len(later) == 2

    resumed = train(tiny(data_dir, *budget), tmp_path, "r", resume_from=first)
    # metrics.jsonl after step 4 was dropped and written again: no line twice.
    assert metric_values(tmp_path) == expected
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    # The old branch's later checkpoints are kept aside, never listed or chosen.
    for path in later:
        assert path.with_name(path.name + ".abandoned").is_file()
    assert [m["step"] for m in checkpoints.list_checkpoints(tmp_path)] == [12, 8, 4]


def test_resume_refuses_data_that_now_tokenizes_differently(
    tmp_path: Path, data_dir: Path
) -> None:
    train(tiny(data_dir, "trainer.max_steps=4"), tmp_path, "r")
    latest = checkpoints.latest_checkpoint(tmp_path)
    # Another data seed: another split, so another tokenizer of the same size.
    with pytest.raises(CheckpointError, match="other token ids"):
        train(tiny(data_dir, "trainer.max_steps=8", "data.seed=99"), tmp_path, "r",
              resume_from=latest)  # fmt: skip


def test_resume_reads_the_cache_it_was_trained_on_after_preprocessing_changed(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokentango import data as data_module

    train(tiny(data_dir, "trainer.max_steps=4"), tmp_path, "r")
    latest = checkpoints.latest_checkpoint(tmp_path)
    monkeypatch.setattr(data_module, "CACHE_VERSION", 99)  # today's key: another folder

    def no_rebuild(*_a, **_k):
        raise AssertionError("the data was built again")

    monkeypatch.setattr(data_module, "scan_csv", no_rebuild)
    resumed = train(tiny(data_dir, "trainer.max_steps=8"), tmp_path, "r", resume_from=latest)
    assert resumed["steps"] == 8


def test_resume_keeps_the_runs_config_and_warns_about_ignored_overrides(
    trained_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meta = read_metadata(checkpoints.latest_checkpoint(trained_run), require_resumable=True)
    overrides = ["optimizer=sgd", "seed=7", "trainer.max_steps=20", "runtime.device=cpu",
                 "runtime.eval_batch_size=8", "run_name=other"]  # fmt: skip
    cfg = tiny(Path(meta["config"]["runtime"]["data_dir"]), *overrides)
    with caplog.at_level(logging.WARNING, logger="tokentango.run"):
        resumed = run.resume_config(cfg, meta, overrides)
    assert resumed.optimizer._target_ == "torch.optim.Adam" and resumed.seed == 42
    assert resumed.trainer.max_steps == 20 and resumed.runtime.eval_batch_size == 8
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "ignored optimizer" in warning and "max_steps" not in warning.split("(")[0]
    assert "seed" in warning.split("(")[0]  # another seed would be another run
    assert "run_name" not in warning


def test_cli_checkpoint_latest_resumes_that_run(tmp_path: Path, data_dir: Path) -> None:
    common = [*TINY, f"runtime.experiments_dir={tmp_path}", f"runtime.data_dir={data_dir}",
              "trainer.early_stopping=null"]  # fmt: skip
    assert train_in_process(*common, "trainer.max_steps=8", "optimizer=sgd", "seed=5") == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    first = read_results(run_dir)
    config_before = (run_dir / rundir.CONFIG_FILE).read_text()
    # Resume with defaults on the command line: the run's own config (sgd, seed 5) wins.
    assert train_in_process(*common, "checkpoint=latest", "trainer.max_steps=12") == 0
    assert list((tmp_path / "runs").iterdir()) == [run_dir]  # same folder, no new one
    results = read_results(run_dir)
    assert results["run_name"] == first["run_name"]
    assert results["steps"] == 12 and results["optimizer"] == "sgd" and results["seed"] == 5
    assert [m["step"] for m in read_metrics(run_dir)] == [4, 8, 12]
    assert (run_dir / rundir.CONFIG_FILE).read_text() == config_before
    assert list((run_dir / rundir.HYDRA_DIR).glob("resumed_*/overrides.yaml"))


def test_sweep_rerun_skips_completed_and_resumes_interrupted(
    tiny_sweep: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    # A copy of the session's sweep, moved elsewhere: it resumes where it now is.
    sweep = tmp_path / "moved_sweep"
    shutil.copytree(tiny_sweep, sweep)
    done, interrupted = sorted(p for p in sweep.iterdir() if p.is_dir())[:2]
    expected = metric_values(interrupted)
    done_results = (done / rundir.RESULTS_FILE).read_text()
    # Interrupt job 1 after its first evaluation: drop what came later.
    (interrupted / rundir.RESULTS_FILE).unlink()
    for path in sorted((interrupted / rundir.CHECKPOINT_DIR).glob("*.pt")):
        if read_metadata(path)["step"] > 4:
            path.unlink()
            path.with_suffix(".json").unlink()
    rundir.keep_metrics_up_to(interrupted, 4)

    # The rerun adds a setting that folder names leave out (it is the same for every job).
    assert train_in_process(*tiny_sweep_command(sweep, data_dir), "trainer.keep_last=7") == 0
    assert capsys.readouterr().out.count("already completed, skipped") == 3
    # A finished run is never overwritten; where its settings differ, the log says so.
    assert "other settings (trainer.keep_last: 3 there, 7 here)" in \
        (done / rundir.LOG_FILE).read_text()  # fmt: skip
    assert (done / rundir.RESULTS_FILE).read_text() == done_results
    assert read_results(interrupted)["status"] == "completed"
    assert metric_values(interrupted) == expected
    assert str(tiny_sweep) not in (interrupted / rundir.RESULTS_FILE).read_text()
    # Each job folder's .hydra/config.yaml still says what the job ran; the rerun's own
    # Hydra files are kept aside.
    for job in (done, interrupted):
        assert OmegaConf.load(job / rundir.CONFIG_FILE).trainer.keep_last == 3
        (aside,) = (job / rundir.HYDRA_DIR).glob("resumed_*")
        assert OmegaConf.load(aside / "config.yaml").trainer.keep_last == 7


def test_a_moved_run_folder_resumes_in_place(trained_run: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / trained_run.name
    shutil.copytree(trained_run, moved)
    overrides = run.prepare_overrides([f"checkpoint={moved}"], {})
    newest = checkpoints.latest_checkpoint(moved)
    assert f"checkpoint='{newest}'" in overrides
    assert f"hydra.run.dir='{moved}'" in overrides  # not the folder it was trained in
    # A lone checkpoint whose run folder is gone cannot be resumed: one clear error.
    lone = tmp_path / newest.name
    shutil.copy(newest, lone)
    shutil.copy(newest.with_suffix(".json"), lone.with_suffix(".json"))
    shutil.rmtree(moved)
    meta = read_metadata(lone)
    assert meta["run_dir"] == str(trained_run)
    shutil.move(trained_run, tmp_path / "gone")
    try:
        with pytest.raises(CheckpointError, match="run folder .* is gone"):
            run.prepare_overrides([f"checkpoint={lone}"], {})
    finally:
        shutil.move(tmp_path / "gone", trained_run)


def test_model_checkpoint_path_selects_a_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    # A path with a comma is one value, never a sweep.
    run_dir = tmp_path / "995,000 rows" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    overrides = run.prepare_overrides([], {"MODEL_CHECKPOINT_PATH": str(run_dir)})
    assert f"checkpoint='{checkpoints.latest_checkpoint(run_dir)}'" in overrides
    assert f"hydra.run.dir='{run_dir}'" in overrides
    overrides = run.prepare_overrides(["checkpoint=train"], {"MODEL_CHECKPOINT_PATH": "latest"})
    assert overrides[0] == "checkpoint=train"


def test_bad_resume_requests_exit_2_before_hydra_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for argv, error in [
        (["checkpoint=latest", f"runtime.experiments_dir={tmp_path}"], "no checkpoint found"),
        ([f"checkpoint={tmp_path}/nope.pt"], "no such file or folder"),
        (["--multirun", "checkpoint=latest"], "resumes one run"),
    ]:
        monkeypatch.setattr(sys, "argv", ["tokentango.train", *argv])
        with pytest.raises(SystemExit) as exit_info:
            run.cli()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and error in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def to_earlier_layout(config: dict) -> dict:
    """A config as versions before `runtime` wrote it (device, paths.*, model.max_length)."""
    old = copy.deepcopy(config)
    for old_key, new_key in RENAMED_KEYS.items():
        node, leaf = new_key.split(".")
        value = old[node].pop(leaf)
        *parents, old_leaf = old_key.split(".")
        target = old
        for part in parents:
            target = target.setdefault(part, {})
        target[old_leaf] = value
    del old["runtime"]  # what is left there (threads) did not exist yet
    old["paths"]["root"] = "/where/it/was"
    return old


def test_a_checkpoint_of_the_earlier_layout_resumes(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    newest = checkpoints.latest_checkpoint(run_dir)
    payload = torch.load(newest, weights_only=True)
    meta = json.loads(payload["meta_json"])
    meta["config"] = to_earlier_layout(meta["config"])
    assert "device" in meta["config"] and "max_length" in meta["config"]["model"]
    payload["meta_json"] = json.dumps(meta)
    torch.save(payload, newest)
    newest.with_suffix(".json").write_text(json.dumps({**meta, "file": newest.name}))

    assert train_in_process(f"checkpoint={newest}", "trainer.max_steps=16") == 0
    results = read_results(run_dir)
    assert results["steps"] == 16 and results["run_name"] == "tiny-run-000000"
    assert [m["step"] for m in read_metrics(run_dir)] == [4, 8, 12, 16]
    assert results["config"]["data"]["max_length"] == 48  # from model.max_length
    assert results["config"]["runtime"]["threads"] is None  # today's default
    assert "tiny-run-000000: completed after 16 steps" in capsys.readouterr().out
