"""Tracking: `tracking=tensorboard|mlflow|both` also writes a run's figures to TensorBoard
and MLflow (read back here with each library's own reader), never changes what a run is,
and fails clearly where the tracking extra is not installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import (
    TINY,
    compose,
    read_metrics,
    read_results,
    run_cli,
    tiny,
    train_in_process,
)
from tokentango import checkpoints, run, rundir, tracking
from tokentango.config import is_runtime_key, setting_differences
from tokentango.report.runs import _ignored

NEEDS_EXTRA = "the tracking extra is not installed: uv sync --extra tracking"
STEP_TAGS = ["train/cls_loss", "train/mlm_loss", "train/lr", "train/samples_per_second"]


def mlflow_client(experiments_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """MLflow's own client on the store a run with runtime.experiments_dir writes to."""
    pytest.importorskip("mlflow", reason=NEEDS_EXTRA)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as tokentango.tracking does
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"file:{experiments_dir}/mlruns")


def steps_of(client, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def values_of(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def runs_of(client, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([found.experiment_id])


# --- what tracking is -----------------------------------------------------------------


def test_tracking_is_off_by_default_and_counts_as_runtime() -> None:
    cfg = compose()
    assert cfg.tracking.name == "none" and list(cfg.tracking.trackers) == []
    assert type(tracking.make_tracker(cfg)) is tracking.Tracker  # the no-op: nothing imported
    both = tracking.make_tracker(compose("tracking=both")) if _installed() else None
    if both is not None:
        assert [type(t).__name__ for t in both.trackers] == ["TensorBoardTracker",
                                                              "MLflowTracker"]  # fmt: skip
    # It only adds where figures go: a finished run is the same run with or without it,
    # the report never groups by it, and a resumed run may turn it on or off.
    stored = OmegaConf.to_container(compose("tracking=mlflow"), resolve=True)
    assert setting_differences(stored, cfg) == []
    assert all(is_runtime_key(k) and _ignored(k) and run.may_change_on_resume(k)
               for k in ("tracking", "tracking.trackers", "tracking.mlflow_experiment"))
    assert compose("tracking=mlflow").tracking.mlflow_tracking_uri.endswith("/experiments/mlruns")


def _installed() -> bool:
    try:
        import mlflow  # noqa: F401
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_a_chosen_tracker_without_its_library_is_one_clear_error(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    # As in an install without the extra: importing the libraries fails.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    common = [*TINY, f"runtime.experiments_dir={tmp_path}", f"runtime.data_dir={data_dir}"]
    for choice, library in [("mlflow", "mlflow"), ("both", "tensorboard")]:
        assert train_in_process(*common, f"tracking={choice}") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: tracking={choice} needs {library}, which is not installed")
        assert err.rstrip().endswith("`uv sync --extra tracking`") and err.count("\n") == 1
    assert not list((tmp_path / "runs").glob("*"))  # failed before any work: no run folder
    # An unknown choice: Hydra's error lists the options.
    assert train_in_process(*common, "tracking=wandb") != 0
    err = capsys.readouterr().err
    assert "tracking" in err and all(o in err for o in ("none", "tensorboard", "mlflow", "both"))


# --- TensorBoard ----------------------------------------------------------------------


def test_tensorboard_gets_every_step_each_evaluation_the_config_and_the_results(
    tmp_path: Path, data_dir: Path
) -> None:
    pytest.importorskip("tensorboard", reason=NEEDS_EXTRA)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run_cli("tokentango.train", *TINY, "tracking=tensorboard", "trainer.early_stopping=null",
            f"runtime.experiments_dir={tmp_path}", f"runtime.data_dir={data_dir}")  # fmt: skip
    (run_dir,) = (tmp_path / "runs").iterdir()
    results, metrics = read_results(run_dir), read_metrics(run_dir)
    events = EventAccumulator(str(run_dir / rundir.TENSORBOARD_DIR))
    events.Reload()

    def scalars(tag: str) -> dict[int, float]:
        return {e.step: e.value for e in events.Scalars(tag)}

    for tag in STEP_TAGS:
        assert sorted(scalars(tag)) == list(range(1, 13)), tag
    assert all(v > 0 for v in scalars("train/samples_per_second").values())
    # The same figures as metrics.jsonl: its cls_loss is the mean of the steps since the
    # previous evaluation; its lr the last step's.
    cls = scalars("train/cls_loss")
    assert metrics[0]["cls_loss"] == pytest.approx(sum(cls[s] for s in range(1, 5)) / 4)
    assert scalars("train/lr")[12] == pytest.approx(metrics[-1]["lr"])
    assert scalars("val/accuracy") == {m["step"]: pytest.approx(m["val_accuracy"])
                                       for m in metrics}  # fmt: skip
    assert scalars("val/f1") == {m["step"]: pytest.approx(m["val_f1"]) for m in metrics}
    assert scalars("test/accuracy") == {12: pytest.approx(results["test_accuracy"])}
    assert scalars("test/f1") == {12: pytest.approx(results["test_f1"])}
    # The resolved config as hyper-parameters (HParams dashboard) and as text.
    hparams = {}
    for content in events.PluginTagToContent("hparams").values():
        data = HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            hparams = data.session_start_info.hparams
    assert hparams["optimizer._target_"].string_value == "torch.optim.Adam"
    assert hparams["trainer.max_steps"].number_value == 12
    assert hparams["use_mlm"].string_value == "true"
    assert hparams["tracking.name"].string_value == "tensorboard"
    (text,) = events.Tensors("config/text_summary")  # the text plugin's
    assert "max_steps: 12" in text.tensor_proto.string_val[0].decode()


# --- MLflow ---------------------------------------------------------------------------


def test_an_mlflow_sweep_is_one_experiment_with_a_run_per_job(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mlflow_client(tmp_path, monkeypatch)
    sweep = tmp_path / "sweeps" / "2026-01-01_00-00-00_ab12"
    # Parallel jobs (joblib) on a built cache: both reach MLflow at once, one experiment.
    run_cli("tokentango.train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "seed=1,2", "tracking=mlflow", *TINY,
            "trainer.max_steps=8", "trainer.early_stopping=null", f"hydra.sweep.dir={sweep}",
            f"runtime.experiments_dir={tmp_path}", f"runtime.data_dir={data_dir}")  # fmt: skip
    runs = runs_of(client, sweep.name)  # named after the sweep folder
    assert len(runs) == 2 and len(client.search_experiments()) == 2  # and MLflow's Default
    by_seed = {r.data.params["seed"]: r for r in runs}
    assert set(by_seed) == {"1", "2"}
    for seed, job in (("1", "0_seed=1"), ("2", "1_seed=2")):
        mlrun, run_dir = by_seed[seed], sweep / job
        results, metrics = read_results(run_dir), read_metrics(run_dir)
        run_id = mlrun.info.run_id
        assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == results["run_name"]
        assert mlrun.data.tags["run_name"] == results["run_name"]
        assert mlrun.data.tags["status"] == "completed"
        assert mlrun.data.tags["run_folder"] == str(run_dir.resolve())
        # Params: the whole resolved config, as the command line writes values.
        params = mlrun.data.params
        assert params["optimizer._target_"] == "torch.optim.Adam"
        assert params["trainer.max_steps"] == "8" and params["use_mlm"] == "true"
        assert params["optimizer.betas"] == "[0.9, 0.999]"
        assert params["tracking.name"] == "mlflow"
        # Metrics with their steps: every step, each evaluation, the final figures.
        for tag in STEP_TAGS:
            assert steps_of(client, run_id, tag) == list(range(1, 9)), tag
        assert steps_of(client, run_id, "val/accuracy") == [4, 8]
        assert values_of(client, run_id, "val/accuracy") == pytest.approx(
            [m["val_accuracy"] for m in metrics])
        assert values_of(client, run_id, "test/accuracy") == [
            pytest.approx(results["test_accuracy"])]
        assert mlrun.data.metrics["val/best_accuracy"] == pytest.approx(
            results["best_val_accuracy"])
        # Artifacts: results.json and the best checkpoint, loadable as it is.
        assert [a.path for a in client.list_artifacts(run_id)] == ["checkpoint", "results.json"]
        assert sorted(a.path for a in client.list_artifacts(run_id, "checkpoint")) == [
            "checkpoint/best.json", "checkpoint/best.pt"]
        local = Path(client.download_artifacts(run_id, "results.json", str(tmp_path / seed)))
        assert json.loads(local.read_text())["run_name"] == results["run_name"]
        best = Path(client.download_artifacts(run_id, "checkpoint", str(tmp_path / seed)))
        meta = checkpoints.read_metadata(best / "best.pt")
        assert meta["step"] == results["best_step"] and meta["run_name"] == results["run_name"]
    # The store's copies are never listed as the runs' checkpoints (checkpoint=latest).
    listed = checkpoints.list_checkpoints(tmp_path)
    assert listed and all("mlruns" not in m["path"] for m in listed)


def test_a_resumed_run_continues_its_mlflow_run_and_may_turn_tracking_on_or_off(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason=NEEDS_EXTRA)
    common = [*TINY, "trainer.early_stopping=null", f"runtime.experiments_dir={tmp_path}",
              f"runtime.data_dir={data_dir}"]  # fmt: skip
    assert train_in_process(*common, "trainer.max_steps=4") == 0  # tracking=none
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (tmp_path / "mlruns").exists() and not (run_dir / rundir.TRACKING_FILE).exists()
    client = mlflow_client(tmp_path, monkeypatch)

    # Turned on when resumed (each resume a new process's command line): a new MLflow run
    # that also gets the evaluations metrics.jsonl already holds.
    assert train_in_process(*common, "checkpoint=latest", "tracking=mlflow",
                            "trainer.max_steps=8") == 0  # fmt: skip
    saved = json.loads((run_dir / rundir.TRACKING_FILE).read_text())["mlflow"]
    (first,) = runs_of(client, "runs")  # a single run's experiment
    assert first.info.run_id == saved["run_id"] and first.info.status == "FINISHED"
    assert steps_of(client, saved["run_id"], "train/cls_loss") == [5, 6, 7, 8]
    assert steps_of(client, saved["run_id"], "val/accuracy") == [4, 8]

    # Resumed again with a larger budget: its own config keeps MLflow, the same MLflow run.
    assert train_in_process(*common, "checkpoint=latest", "trainer.max_steps=12") == 0
    (mlrun,) = runs_of(client, "runs")
    run_id = mlrun.info.run_id
    assert run_id == saved["run_id"] and mlrun.info.status == "FINISHED"
    assert steps_of(client, run_id, "train/cls_loss") == list(range(5, 13))  # each once
    assert steps_of(client, run_id, "val/accuracy") == [4, 8, 12]
    assert values_of(client, run_id, "val/accuracy") == pytest.approx(
        [m["val_accuracy"] for m in read_metrics(run_dir)])
    assert steps_of(client, run_id, "test/accuracy") == [8, 12]  # each finish's figures
    # Params are MLflow's first values; what the resume changed is in a tag.
    assert mlrun.data.params["trainer.max_steps"] == "8"
    assert mlrun.data.tags["resumed"] == "at step 8: trainer.max_steps: 8 -> 12"
    assert mlrun.data.tags["status"] == "completed"

    # Turned off: the run goes on, MLflow's record stays as it was.
    assert train_in_process(*common, "checkpoint=latest", "tracking=none",
                            "trainer.max_steps=16") == 0  # fmt: skip
    assert read_results(run_dir)["steps"] == 16
    assert steps_of(client, run_id, "val/accuracy") == [4, 8, 12]


def mlflow_run_config(data_dir: Path, experiments_dir: Path, experiment: str):
    """A tiny run (12 steps, evaluations at 4, 8, 12) logging to MLflow `experiment`."""
    return tiny(data_dir, "tracking=mlflow", f"tracking.mlflow_experiment={experiment}",
                "trainer.early_stopping=null", f"runtime.experiments_dir={experiments_dir}")


def test_a_killed_run_resumes_into_its_mlflow_run_with_every_figure_once(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_resume import kill_after_checkpoint
    from tokentango.loop import train

    client = mlflow_client(tmp_path, monkeypatch)
    cfg = mlflow_run_config(data_dir, tmp_path, "killed")
    run_dir = tmp_path / "run"
    # Killed right after its step-8 checkpoint, before that evaluation reached MLflow.
    kill_after_checkpoint(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, "r")
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    (killed,) = runs_of(client, "killed")
    assert killed.info.status == "KILLED" and killed.data.tags["status"] == "interrupted"
    assert killed.data.tags["error"] == "KeyboardInterrupt"
    assert steps_of(client, killed.info.run_id, "val/accuracy") == [4]

    latest = checkpoints.latest_checkpoint(run_dir / rundir.CHECKPOINT_DIR)
    results = train(cfg, run_dir, "r", resume_from=latest)
    (mlrun,) = runs_of(client, "killed")
    run_id = mlrun.info.run_id
    assert run_id == killed.info.run_id and mlrun.info.status == "FINISHED"
    assert steps_of(client, run_id, "train/cls_loss") == list(range(1, 13))
    assert steps_of(client, run_id, "val/accuracy") == [4, 8, 12]  # 8 from metrics.jsonl
    assert values_of(client, run_id, "val/accuracy") == pytest.approx(
        [m["val_accuracy"] for m in read_metrics(run_dir)])
    assert mlrun.data.metrics["test/accuracy"] == pytest.approx(results["test_accuracy"])
    assert mlrun.data.tags["resumed"] == "at step 8: same settings"
    assert mlrun.data.tags["status"] == "completed" and "error" not in mlrun.data.tags


def test_a_run_stopped_by_a_signal_is_killed_in_mlflow_and_resumes_into_the_same_run(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from tests.test_interrupt import signal_at_step
    from tokentango.interrupt import RunInterrupted
    from tokentango.loop import train

    client = mlflow_client(tmp_path, monkeypatch)
    cfg = mlflow_run_config(data_dir, tmp_path, "stopped")
    run_dir = tmp_path / "run"
    signal_at_step(monkeypatch, signal.SIGTERM, 6)
    with pytest.raises(RunInterrupted):
        train(cfg, run_dir, "r")
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    (stopped,) = runs_of(client, "stopped")
    assert stopped.info.status == "KILLED" and stopped.data.tags["status"] == "interrupted"
    assert stopped.data.tags["error"] == "stopped by SIGTERM"
    assert steps_of(client, stopped.info.run_id, "train/cls_loss") == list(range(1, 7))

    latest = checkpoints.latest_checkpoint(run_dir / rundir.CHECKPOINT_DIR)
    train(cfg, run_dir, "r", resume_from=latest)
    (resumed,) = runs_of(client, "stopped")
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    assert steps_of(client, resumed.info.run_id, "train/cls_loss") == list(range(1, 13))
