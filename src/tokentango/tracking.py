"""Experiment trackers: where a run's figures are also written (TensorBoard, MLflow).

`tracking=none|tensorboard|mlflow|both` (conf/tracking/) chooses them. The loop reports to
one `Tracker` at four points: `start` (once set up, at the step it resumes from), `log_step`
(each step), `log_eval` (each evaluation) and `finish` (the results); `tracked` wraps a run
so that leaving it by an exception still closes every tracker (the MLflow run then says
FAILED, or KILLED after Ctrl-C). A tracker only writes: it never changes what a run
computes, so `tracking` is treated like `runtime` (the report ignores it; a resume may turn
it on or off).

Both libraries are imported only when chosen: with `tracking=none` neither is imported, nor
needs to be installed (they come with `uv sync --extra tracking`).

Every tracker uses the same figure names: `train/cls_loss`, `train/mlm_loss`, `train/lr`
and `train/samples_per_second` per step; `val/accuracy` and `val/f1` per evaluation;
`test/accuracy`, `test/precision`, `test/recall`, `test/f1` and `val/best_accuracy` at the
end.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from tokentango import rundir
from tokentango.config import RESUME_IGNORES_SILENTLY, ConfigError, flat_config
from tokentango.interrupt import StopNow

log = logging.getLogger("tokentango.tracking")

INSTALL = "uv sync --extra tracking"

# metrics.jsonl / results.json name -> the trackers' name.
STEP_FIGURES = {"cls_loss": "train/cls_loss", "mlm_loss": "train/mlm_loss", "lr": "train/lr",
                "samples_per_second": "train/samples_per_second"}  # fmt: skip
EVAL_FIGURES = {"val_accuracy": "val/accuracy", "val_f1": "val/f1"}
FINAL_FIGURES = {"test_accuracy": "test/accuracy", "test_precision": "test/precision",
                 "test_recall": "test/recall", "test_f1": "test/f1",
                 "best_val_accuracy": "val/best_accuracy"}  # fmt: skip


class Tracker:
    """No tracker (`tracking=none`), and the interface of the others."""

    def start(self, cfg: DictConfig, run_dir: Path, run_name: str, step: int) -> None:
        """Before the first step; `step` > 0 when the run resumes from a checkpoint."""

    def log_step(self, step: int, figures: dict[str, float | None]) -> None:
        """After each training step: STEP_FIGURES' keys (None: not computed)."""

    def log_eval(self, step: int, record: dict[str, Any]) -> None:
        """After each evaluation (and its checkpoint): the metrics.jsonl record."""

    def finish(self, results: dict[str, Any]) -> None:
        """After results.json is written: the final figures; closes the tracker."""

    def close(self, status: str, error: str | None = None) -> None:
        """End without results (an exception left the run); a no-op after `finish`."""


class Trackers(Tracker):
    """Several trackers as one, in order."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def start(self, cfg: DictConfig, run_dir: Path, run_name: str, step: int) -> None:
        started: list[Tracker] = []
        try:
            for tracker in self.trackers:
                tracker.start(cfg, run_dir, run_name, step)
                started.append(tracker)
        except BaseException:
            for tracker in started:
                tracker.close(rundir.FAILED, "another tracker did not start")
            raise

    def log_step(self, step: int, figures: dict[str, float | None]) -> None:
        for tracker in self.trackers:
            tracker.log_step(step, figures)

    def log_eval(self, step: int, record: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_eval(step, record)

    def finish(self, results: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.finish(results)

    def close(self, status: str, error: str | None = None) -> None:
        for tracker in self.trackers:
            try:
                tracker.close(status, error)
            except Exception as err:  # one tracker's trouble must not hide the run's error
                log.warning("closing %s failed: %s", type(tracker).__name__, err)


class Timed(Tracker):
    """A tracker that counts the seconds spent in it, so each run's log says what its
    tracking cost (imports and start included)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker, self.seconds, self.start_seconds, self.calls = tracker, 0.0, 0.0, 0

    def _timed(self, method: str, *args: Any) -> None:
        started = time.perf_counter()
        try:
            getattr(self.tracker, method)(*args)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def start(self, cfg: DictConfig, run_dir: Path, run_name: str, step: int) -> None:
        self._timed("start", cfg, run_dir, run_name, step)
        self.start_seconds = self.seconds

    def log_step(self, step: int, figures: dict[str, float | None]) -> None:
        self._timed("log_step", step, figures)

    def log_eval(self, step: int, record: dict[str, Any]) -> None:
        self._timed("log_eval", step, record)

    def finish(self, results: dict[str, Any]) -> None:
        self._timed("finish", results)

    def close(self, status: str, error: str | None = None) -> None:
        self._timed("close", status, error)


# --- choosing -------------------------------------------------------------------------

# tracking.trackers value -> the module its library must make importable.
_REQUIRES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def chosen(cfg: DictConfig) -> list[str]:
    """The trackers `cfg` asks for (an older run's config without `tracking`: none)."""
    return [str(t) for t in (OmegaConf.select(cfg, "tracking.trackers") or [])]


def require_installed(cfg: DictConfig) -> None:
    """ConfigError naming the `tracking=` choice and the install command when a chosen
    tracker's library is missing: checked before any work (by run.main), without
    importing it (the tracker does, when it starts)."""
    for name in chosen(cfg):
        if not _importable(_REQUIRES[name]):
            raise ConfigError(
                f"tracking={cfg.tracking.name} needs {_REQUIRES[name]}, which is not installed: "
                f"install the tracking extra with `{INSTALL}`"
            )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: None in sys.modules (import blocked)
        return False


def make_tracker(cfg: DictConfig) -> Tracker:
    """The trackers `cfg.tracking` chooses, as one; the no-op Tracker for none."""
    require_installed(cfg)
    classes = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker}
    trackers = [classes[name]() for name in chosen(cfg)]
    return trackers[0] if len(trackers) == 1 else Trackers(trackers) if trackers else Tracker()


@contextmanager
def tracked(cfg: DictConfig, run_dir: Path, run_name: str, step: int) -> Iterator[Tracker]:
    """The run's tracker, started; closed whatever happens (an exception marks it failed,
    Ctrl-C interrupted, and goes on up)."""
    if not chosen(cfg):
        yield Tracker()
        return
    tracker = Timed(make_tracker(cfg))
    tracker.start(cfg, Path(run_dir), run_name, step)
    try:
        yield tracker
        tracker.close(rundir.INTERRUPTED)  # left without finish (a no-op after it)
    except (KeyboardInterrupt, StopNow) as stop:
        why = f"stopped by {stop}" if isinstance(stop, StopNow) else "KeyboardInterrupt"
        _close_after(tracker, rundir.INTERRUPTED, why)
        raise
    except BaseException as err:
        _close_after(tracker, rundir.FAILED, f"{type(err).__name__}: {err}")
        raise
    finally:
        log.info("tracking=%s took %.2f s: %.2f s to start (imports included), %.2f s in "
                 "%d calls", cfg.tracking.name, tracker.seconds, tracker.start_seconds,
                 tracker.seconds - tracker.start_seconds, tracker.calls - 1)  # fmt: skip


def _local_path(uri: str) -> Path | None:
    """The folder of a local MLflow store (`file:` or a plain path); None for a server."""
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme in ("", "file") else None


def _close_after(tracker: Tracker, status: str, error: str) -> None:
    """Close after the run's own error, which trouble closing must not hide."""
    try:
        tracker.close(status, error)
    except Exception as err:
        log.warning("closing the tracker after %s failed: %s", error, err)


def _text(value: Any) -> str:
    """A config value as it reads on the command line: null, true, [0.9, 0.999]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _figures(names: dict[str, str], values: dict[str, Any]) -> dict[str, float]:
    """The trackers' names and values of the figures `values` has (and that are numbers)."""
    return {tag: float(values[key]) for key, tag in names.items()
            if isinstance(values.get(key), int | float)}  # fmt: skip


# --- TensorBoard ----------------------------------------------------------------------


class TensorBoardTracker(Tracker):
    """Event files in <run folder>/tensorboard/ (torch's SummaryWriter): scalars per step
    and evaluation, the config as text and as hyper-parameters (HParams dashboard), the
    test figures at the end. A resumed run purges what the killed one wrote after the
    checkpoint it resumes from, so every step shows once."""

    writer: Any = None

    def start(self, cfg: DictConfig, run_dir: Path, run_name: str, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(run_dir / rundir.TENSORBOARD_DIR),
                                    purge_step=step + 1)  # fmt: skip
        values = {k: v if isinstance(v, int | float) and not isinstance(v, bool) else _text(v)
                  for k, v in flat_config(cfg).items()}  # fmt: skip
        # The HParams dashboard: the config now, the final figures (its metrics) at the end.
        experiment, session_start, _ = hparams(values, dict.fromkeys(FINAL_FIGURES.values(), 0.0))
        self.writer.file_writer.add_summary(experiment)
        self.writer.file_writer.add_summary(session_start)
        yaml = OmegaConf.to_yaml(cfg, resolve=True)
        self.writer.add_text("config", "".join(f"    {line}\n" for line in yaml.splitlines()),
                             step)  # fmt: skip

    def log_step(self, step: int, figures: dict[str, float | None]) -> None:
        for tag, value in _figures(STEP_FIGURES, figures).items():
            self.writer.add_scalar(tag, value, step)

    def log_eval(self, step: int, record: dict[str, Any]) -> None:
        for tag, value in _figures(EVAL_FIGURES, record).items():
            self.writer.add_scalar(tag, value, step)

    def finish(self, results: dict[str, Any]) -> None:
        for tag, value in _figures(FINAL_FIGURES, results).items():
            self.writer.add_scalar(tag, value, results["steps"])
        if results.get("status") in rundir.FINISHED:
            from torch.utils.tensorboard.summary import hparams

            self.writer.file_writer.add_summary(hparams({}, {})[2])  # session end: success
        self.close(results.get("status", rundir.COMPLETED))

    def close(self, status: str, error: str | None = None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# --- MLflow ---------------------------------------------------------------------------

# tokentango's run status -> MLflow's; anything else (interrupted) is KILLED.
_MLFLOW_STATUS = {rundir.COMPLETED: "FINISHED", rundir.EARLY_STOPPED: "FINISHED",
                  rundir.FAILED: "FAILED"}  # fmt: skip


class MLflowTracker(Tracker):
    """One MLflow run per training run in the store `tracking.mlflow_tracking_uri` (a local
    file store by default), in the experiment named by `tracking.mlflow_experiment` or else
    after the folder holding the run folder (a sweep: one experiment). Params: the flat
    config; metrics with their step; tags run_name, run_folder, status; artifacts:
    results.json and the best checkpoint (as checkpoint/best.pt + best.json, names the
    checkpoint tools do not list, so the copy is never taken for the run's own).

    A resumed run logs to the same MLflow run (its id is kept in <run folder>/tracking.json).
    MLflow keeps every value it is sent: after a crash or Ctrl-C, the steps between the
    checkpoint a run resumes from and the stop show twice (on CPU with the same values, as
    a resumed run repeats them exactly)."""

    client: Any = None
    run_id: str | None = None

    def start(self, cfg: DictConfig, run_dir: Path, run_name: str, step: int) -> None:
        # MLflow 3.13+ refuses the file store unless asked (it prefers a database, which
        # needs SQLAlchemy); the file store suits parallel sweep jobs and plain folders.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        uri = cfg.tracking.mlflow_tracking_uri
        self.client, self.run_dir = MlflowClient(tracking_uri=uri), run_dir
        params = {k: _text(v)[:6000] for k, v in flat_config(cfg).items()}
        run = self._reopen(uri, step, params) if step else None
        if run is None:
            experiment = cfg.tracking.mlflow_experiment or run_dir.resolve().parent.name
            run = self.client.create_run(
                self._experiment_id(experiment, run_dir.resolve().parent), run_name=run_name,
                tags={"run_name": run_name, "run_folder": str(run_dir.resolve()),
                      "status": "running"},
            )  # fmt: skip
            self._log_params(run.info.run_id, params)
            rundir.write_json(run_dir / rundir.TRACKING_FILE, {"mlflow": {
                "tracking_uri": uri, "experiment_id": run.info.experiment_id,
                "run_id": run.info.run_id}})  # fmt: skip
        self.run_id = run.info.run_id
        self._send_missing_evaluations()
        log.info("MLflow run %s (experiment %s) in %s", self.run_id, run.info.experiment_id, uri)

    def _send_missing_evaluations(self) -> None:
        """The evaluations metrics.jsonl holds (up to the step a run resumes from) that the
        MLflow run lacks: a run that turns MLflow on when resumed, or one killed between
        its checkpoint and sending that evaluation."""
        sent = {m.step for m in self.client.get_metric_history(self.run_id, "val/accuracy")}
        for record in rundir.read_metrics(self.run_dir):
            if record["step"] not in sent:
                self.log_eval(record["step"], record)

    def _experiment_id(self, name: str, folder: Path) -> str:
        """The experiment `name`, created by whichever parallel job of a sweep comes first:
        a file store does not check names atomically, so its jobs take turns under a lock
        (a tracking server does, so there a losing job finds the winner's)."""
        from filelock import FileLock
        from mlflow.exceptions import MlflowException

        store = _local_path(self.client.tracking_uri)
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        with FileLock(store / ".experiments.lock") if store is not None else nullcontext():
            found = self.client.get_experiment_by_name(name)
            if found is None:
                try:
                    return self.client.create_experiment(name, tags={"folder": str(folder)})
                except MlflowException:
                    found = self.client.get_experiment_by_name(name)
                    if found is None:
                        raise
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id

    def _reopen(self, uri: str, step: int, params: dict[str, str]) -> Any:
        """The MLflow run this run folder logged to, running again; None for a new one
        (another store, or a run deleted from the store). A run that starts afresh in its
        folder (a failed sweep job rerun) gets a new one: the old keeps its record."""
        from mlflow.exceptions import MlflowException

        try:
            saved = json.loads((self.run_dir / rundir.TRACKING_FILE).read_text())["mlflow"]
            if saved["tracking_uri"] != uri:
                return None
            run = self.client.get_run(saved["run_id"])
        except (OSError, ValueError, KeyError, TypeError, MlflowException):
            return None
        if run.info.lifecycle_stage != "active":
            return None
        self.client.update_run(run.info.run_id, status="RUNNING")
        # Params are write-once in MLflow: new keys are added, changed ones (a longer budget,
        # another device) are listed in a tag.
        old = run.data.params
        self._log_params(run.info.run_id, {k: v for k, v in params.items() if k not in old})
        changed = [f"{k}: {old[k]} -> {v}" for k, v in params.items()
                   if k in old and old[k] != v and k not in RESUME_IGNORES_SILENTLY]  # fmt: skip
        notes = [run.data.tags.get("resumed"), f"at step {step}: " + (", ".join(changed) or
                 "same settings")]  # fmt: skip
        self.client.set_tag(run.info.run_id, "resumed", "; ".join(n for n in notes if n)[-5000:])
        self.client.set_tag(run.info.run_id, "status", "running")
        if "error" in run.data.tags:  # the stop it resumes after
            self.client.delete_tag(run.info.run_id, "error")
        return run

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def _log_metrics(self, step: int, figures: dict[str, float]) -> None:
        """One call per step (0.6 ms on the file store: sent at once, nothing is lost)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, value, now, step) for tag, value in figures.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_step(self, step: int, figures: dict[str, float | None]) -> None:
        self._log_metrics(step, _figures(STEP_FIGURES, figures))

    def log_eval(self, step: int, record: dict[str, Any]) -> None:
        self._log_metrics(step, _figures(EVAL_FIGURES, record))

    def finish(self, results: dict[str, Any]) -> None:
        self._log_metrics(results["steps"], _figures(FINAL_FIGURES, results))
        if (self.run_dir / rundir.RESULTS_FILE).is_file():
            self.client.log_artifact(self.run_id, str(self.run_dir / rundir.RESULTS_FILE))
        best = results.get("best_checkpoint")
        if best and Path(best).is_file():
            with tempfile.TemporaryDirectory() as tmp:
                for source in (Path(best), Path(best).with_suffix(".json")):
                    if source.is_file():
                        shutil.copyfile(source, Path(tmp) / f"best{source.suffix}")
                self.client.log_artifacts(self.run_id, tmp, "checkpoint")
        self.close(results.get("status", rundir.COMPLETED))

    def close(self, status: str, error: str | None = None) -> None:
        """Mark the MLflow run ended, with tokentango's status (and the error) as tags."""
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        self.client.set_tag(run_id, "status", status)
        if error:
            self.client.set_tag(run_id, "error", error[:5000])
        self.client.set_terminated(run_id, status=_MLFLOW_STATUS.get(status, "KILLED"))
