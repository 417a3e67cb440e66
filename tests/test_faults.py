"""Reliability: a diverging run fails cleanly and keeps its last good checkpoint, the report
and status read half-written folders without crashing, and nothing the project reads is
ever unpickled."""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import TINY, read_metrics, read_results, run_cli, tiny, train_in_process
from tokentango import checkpoints, report, rundir
from tokentango.cli import checkpoints as checkpoints_cli
from tokentango.cli import evaluate as evaluate_cli
from tokentango.cli import predict as predict_cli
from tokentango.cli import report as report_cli
from tokentango.cli import status as status_cli
from tokentango.config import PROJECT_ROOT
from tokentango.data import DataError, load_cache_dir
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
    ([*DIVERGES, "optimizer=sgd", "trainer.eval_every=4"], "loss is not finite at step 6"),
    ([*DIVERGES, "trainer.eval_every=4"], "loss is not finite at step 3"),
], ids=["weights-before-a-checkpoint", "loss-between-checkpoints", "loss-before-any"])  # fmt: skip
def test_a_diverging_run_stops_at_that_step_before_writing_its_broken_state(
    tmp_path: Path, data_dir: Path, overrides: list[str], first_bad: str, reliability
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
    settings = " ".join(["optimizer.lr=1e6", *overrides[len(DIVERGES):]])
    reliability.record(fault=f"a diverging run ({settings}): {first_bad}",
                       happened=f"{type(raised.value).__name__}: {message}",
                       kept=f"checkpoints of steps {saved} (finite weights), metrics.jsonl "
                       f"lines of steps {evaluated} (finite losses), nothing of the broken "
                       "state")  # fmt: skip


def test_a_diverging_job_fails_with_its_step_named_and_the_sweep_goes_on(
    tmp_path: Path, data_dir: Path, reliability
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
    reliability.record(fault="a sweep with one diverging job (optimizer.lr=1e6,2e-3)",
                       happened=f"sweep exit {code}; that job's results.json: status failed, "
                       f"error {failed['error']}",
                       kept=f"that job's checkpoint of step {_checkpoint_steps(jobs['failed'])}"
                       " (finite weights); the other job completed its "
                       f"{read_results(jobs['completed'])['steps']} steps")  # fmt: skip


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


def test_the_report_lists_half_written_runs_and_never_crashes(tmp_path: Path,
                                                               reliability) -> None:  # fmt: skip
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
    for name, (why, _, _) in HALF_WRITTEN.items():
        run = runs[f"sweep/{name}"]
        reliability.record(fault=f"report on a run folder: {why}",
                           happened=f"report exit {proc.returncode}; the run listed "
                           f"{run.status}: {run.error}",
                           kept=f"the good run reported ({runs['sweep/0_good'].status}); "
                           "report.csv lists this one")  # fmt: skip


def test_status_reads_half_written_runs_and_never_crashes(tmp_path: Path, reliability) -> None:
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
    for name, (why, _, _) in HALF_WRITTEN.items():
        reliability.record(fault=f"status on a run folder: {why}",
                           happened=f"status exit {proc.returncode} (text and --json); "
                           f"job state {states[name]}",
                           kept="every job listed; jobs.json entries of another shape "
                           "ignored")  # fmt: skip


# --- nothing is ever unpickled --------------------------------------------------------


class _Opens:
    """Unpickled, this creates `marker` (it is `open(marker, "w")`): the proof that a reader
    ran code from a file it read."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _yaml_that_opens(marker: Path) -> str:
    return f"seed: !!python/object/apply:builtins.open ['{marker}', 'w']\n"


def _npy_that_opens(path: Path, marker: Path) -> None:
    np.save(path, np.array([_Opens(marker)], dtype=object), allow_pickle=True)


def test_the_planted_files_would_run_code_if_unpickled(tmp_path: Path) -> None:
    """The control: each planted file really creates its marker when read unsafely, so
    the tests below that see no marker show a refusal, not a harmless file."""
    markers = [tmp_path / f"marker{i}" for i in range(4)]
    pickle.loads(pickle.dumps(_Opens(markers[0])))
    torch.save({"model": {}, "x": _Opens(markers[1])}, tmp_path / "a.pt")
    torch.load(tmp_path / "a.pt", weights_only=False)
    _npy_that_opens(tmp_path / "a.npy", markers[2])
    np.load(tmp_path / "a.npy", allow_pickle=True)
    yaml.unsafe_load(_yaml_that_opens(markers[3]))
    assert all(marker.exists() for marker in markers)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch on the bare pickle
def test_no_checkpoint_reader_unpickles(
    tmp_path: Path, trained_run: Path, data_dir: Path, capsys: pytest.CaptureFixture,
    reliability,
) -> None:
    """A checkpoint swapped for a pickle that runs code (its metadata sidecar kept, so the
    readers get as far as the tensors), and an original-format `.pth` that is one: listing,
    showing, evaluating, predicting and resuming all refuse it, and nothing runs."""
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    ckpt_dir = run_dir / rundir.CHECKPOINT_DIR
    swapped = checkpoints.latest_checkpoint(ckpt_dir)
    torch.save({"format_version": 1, "model": {}, "x": _Opens(marker)}, swapped)
    legacy = ckpt_dir / "original.pth"
    legacy.write_bytes(pickle.dumps({"model_state_dict": _Opens(marker)}))

    assert checkpoints_cli.main(["list", str(tmp_path)]) == 0  # metadata from JSON only
    listed = capsys.readouterr().out
    assert swapped.name in listed and legacy.name not in listed  # unreadable: skipped
    assert checkpoints_cli.main(["show", str(legacy)]) == 2
    for path in (swapped, legacy):
        assert evaluate_cli.main(["--checkpoint", str(path), "--data-dir", str(data_dir)]) == 2
        assert predict_cli.main(["--checkpoint", str(path), "--text", "some news"]) == 2
    err = capsys.readouterr().err
    assert "cannot load checkpoint" in err
    code = train_in_process(f"checkpoint={swapped}", f"runtime.data_dir={data_dir}")
    assert code != 0
    failed = next(run_dir.glob("results.failed-*.json"))  # the finished results stay
    error = json.loads(failed.read_text())["error"]
    assert "cannot load checkpoint" in error
    assert not marker.exists()
    reliability.record(section="security",
                       fault="a checkpoint swapped for a pickle that runs code (and an "
                       "original-format .pth that is one)",
                       happened="checkpoints list exit 0, the .pth skipped; show, evaluate and "
                       f"predict exit 2: {err.splitlines()[0]}; resuming exits {code}, "
                       f"{failed.name}: {error}",
                       kept="the finished run's results.json; the code never ran (no "
                       "marker file)")  # fmt: skip


def test_no_data_cache_file_is_unpickled(
    tmp_path: Path, trained_run: Path, data_dir: Path, capsys: pytest.CaptureFixture,
    reliability,
) -> None:
    """A cached token array replaced by a pickle (an object array, or a bare pickle) is
    refused with a clear error by everything that opens the cache, and nothing runs."""
    marker = tmp_path / "pwned"
    meta = checkpoints.read_metadata(checkpoints.latest_checkpoint(trained_run))
    cache = data_dir / "cache" / meta["data_cache"]
    plants = {"train_ids.npy": lambda p: _npy_that_opens(p, marker),
              "val_labels.npy": lambda p: p.write_bytes(pickle.dumps(_Opens(marker)))}
    planted = []
    for name, plant in plants.items():
        copy = tmp_path / name / "cache" / cache.name
        shutil.copytree(cache, copy)
        plant(copy / name)
        with pytest.raises(DataError, match=f"unusable cache file .*{name}") as raised:
            load_cache_dir(copy)
        best = checkpoints.best_checkpoint(trained_run)  # evaluate reads the cache it names
        args = ["--checkpoint", str(best), "--data-dir", str(tmp_path / name)]
        assert evaluate_cli.main(args) == 2
        err = capsys.readouterr().err
        assert "unusable cache file" in err
        planted.append((name, raised.value, err))
    assert not marker.exists()
    for name, error, err in planted:
        reliability.record(section="security",
                           fault=f"the data cache's {name} replaced by a pickle that runs code",
                           happened=f"loading the cache: DataError: {error}; evaluate exit 2: "
                           f"{err}",
                           kept="the code never ran (no marker file)")  # fmt: skip


def test_no_run_folder_study_or_submitit_file_is_unpickled(
    tmp_path: Path, capsys: pytest.CaptureFixture, reliability
) -> None:
    """Pickles and YAML with Python tags planted in every file of a run folder, and in the
    sweep's own files (jobs.json, the Optuna study's optuna.db, submitit's job pickles):
    the report and status read them as data or not at all; nothing runs."""
    from tests.test_report import make_run

    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Opens(marker))
    sweep = tmp_path / "sweep"
    make_run(sweep, "0_good", seed=1)
    planted = make_run(sweep, "1_planted", seed=2)
    for name in (rundir.RESULTS_FILE, rundir.METRICS_FILE, rundir.TRACKING_FILE):
        (planted / name).write_bytes(evil)
    for name in (rundir.CONFIG_FILE, rundir.OVERRIDES_FILE, rundir.HYDRA_FILE):
        (planted / name).write_text(_yaml_that_opens(marker))
    tags = make_run(sweep, "2_yaml_in_hydra_files", seed=3)  # a readable config: grouped
    for name in (rundir.OVERRIDES_FILE, rundir.HYDRA_FILE):
        (tags / name).write_text(_yaml_that_opens(marker))
    (planted / rundir.CHECKPOINT_DIR).mkdir()
    (planted / rundir.CHECKPOINT_DIR / "ckpt_x.json").write_bytes(evil)
    torch.save({"model": {}, "x": _Opens(marker)}, planted / rundir.CHECKPOINT_DIR / "ckpt_x.pt")
    (sweep / "jobs.json").write_bytes(evil)
    (sweep / "optuna.db").write_bytes(evil)
    (sweep / ".submitit" / "7").mkdir(parents=True)
    for name in ("7_submitted.pkl", "7_0_result.pkl"):
        (sweep / ".submitit" / "7" / name).write_bytes(evil)

    assert report_cli.main([str(sweep)]) == 0
    runs = {run.name: run for run in report.find_runs([sweep])}
    assert runs["sweep/1_planted"].status == "failed"
    assert "unreadable .hydra/config.yaml" in runs["sweep/1_planted"].error
    assert runs["sweep/2_yaml_in_hydra_files"].status == "completed"
    assert status_cli.main([str(sweep)]) == 0
    assert checkpoints_cli.main(["list", str(sweep)]) == 0
    assert checkpoints_cli.main(["show", str(planted / rundir.CHECKPOINT_DIR / "ckpt_x.pt")]) == 2
    capsys.readouterr()
    assert not marker.exists()
    reliability.record(section="security",
                       fault="pickles and !!python YAML tags in every file of a run folder, "
                       "jobs.json, optuna.db and .submitit/*.pkl",
                       happened="report, status and checkpoints list exit 0, checkpoints show "
                       "exit 2; the planted run listed "
                       f"{runs['sweep/1_planted'].status}: {runs['sweep/1_planted'].error}",
                       kept="the good runs reported (one whose only tags are in overrides.yaml "
                       f"and hydra.yaml: {runs['sweep/2_yaml_in_hydra_files'].status}); the "
                       "code never ran (no marker file)")  # fmt: skip


def test_no_reader_in_the_source_can_unpickle() -> None:
    """Every load call in the package is one that refuses pickles; a new reader must be too."""
    unsafe = re.compile(r"pickle\.loads?\(|allow_pickle=True|yaml\.(unsafe_)?load\(|"
                        r"yaml\.(Unsafe|Full)?Loader\b|joblib\.load|dill|cloudpickle")  # fmt: skip
    guarded = {"torch.load(": "weights_only=True", "np.load(": "allow_pickle=False"}
    for path in (PROJECT_ROOT / "src").rglob("*.py"):
        for line in path.read_text().splitlines():
            assert not unsafe.search(line), f"{path}: {line.strip()}"
            for call, guard in guarded.items():
                if call in line:
                    assert guard in line, f"{path}: {line.strip()}"
