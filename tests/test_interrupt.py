"""Stop signals: a run stopped by Ctrl-C, SIGTERM or SLURM's signal saves a checkpoint,
says `interrupted`, exits as the signal would have, and resumes to the very figures of a
run that was never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, metric_values, read_results, run_cli, tiny
from tokentango import checkpoints, loop, rundir
from tokentango.cli.checkpoints import loss_history
from tokentango.interrupt import RunInterrupted, StopRequests
from tokentango.loop import train

BUDGET = ["trainer.max_steps=16", "trainer.eval_every=4", "trainer.early_stopping=null"]


def signal_at_step(monkeypatch: pytest.MonkeyPatch, signum: int, step: int) -> None:
    """The process sends itself `signum` during its `step`-th training step (between two
    evaluations), as `kill` or SLURM would."""
    real_step, calls = loop.train_step, []

    def step_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signum)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step_then_signal)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("straight")
    return run_dir, train(tiny(data_dir, *BUDGET), run_dir, "r")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_checkpoints_the_step_and_the_resumed_run_ends_as_if_never_stopped(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, straight, signum: int,
    reliability,
) -> None:
    signal_at_step(monkeypatch, signum, 7)
    with pytest.raises(RunInterrupted) as stopped:
        train(tiny(data_dir, *BUDGET), tmp_path, "r")
    monkeypatch.undo()
    assert stopped.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is not None  # handlers put back
    interrupted = read_results(tmp_path)
    assert interrupted["status"] == rundir.INTERRUPTED
    assert interrupted["steps"] == 7 and interrupted["signal"] == signal.Signals(signum).name
    assert interrupted["checkpoint"].endswith("_step0000007_interrupted.pt")
    # Not evaluated: the stop must not add a metrics line or a best-checkpoint candidate.
    assert [m["step"] for m in rundir.read_metrics(tmp_path)] == [4]

    resumed = train(tiny(data_dir, *BUDGET), tmp_path, "r",
                    resume_from=checkpoints.latest_checkpoint(tmp_path / "checkpoints"))
    straight_dir, expected = straight
    assert metric_values(tmp_path) == metric_values(straight_dir)
    for key in ("status", "test_accuracy", "confusion_matrix", "steps", "best_step", "samples"):
        assert resumed[key] == expected[key], key
    history = loss_history(checkpoints.list_checkpoints(tmp_path / "checkpoints"))
    assert [row["step"] for row in history] == sorted({row["step"] for row in history})
    name = signal.Signals(signum).name
    reliability.record(fault=f"{name} during training step 7",
                       happened=f"exit code {stopped.value.exit_code}; results.json status "
                       f"{interrupted['status']}, steps {interrupted['steps']}, signal "
                       f"{interrupted['signal']}, checkpoint "
                       f"{Path(interrupted['checkpoint']).name}",
                       kept="a checkpoint of step 7 (no extra evaluation); the resumed run's "
                       "metrics.jsonl and test figures equal an uninterrupted run's "
                       f"(test_accuracy {resumed['test_accuracy']})")  # fmt: skip


def test_a_signal_during_the_final_evaluation_stops_at_once_and_resumes_to_the_same_figures(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, straight, reliability
) -> None:
    real_final = loop.final_results

    def signal_then_evaluate(training):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_final(training)

    monkeypatch.setattr(loop, "final_results", signal_then_evaluate)
    with pytest.raises(RunInterrupted):
        train(tiny(data_dir, *BUDGET), tmp_path, "r")
    monkeypatch.undo()
    interrupted = read_results(tmp_path)
    assert interrupted["status"] == rundir.INTERRUPTED and interrupted["steps"] == 16
    assert interrupted["checkpoint"].endswith("_step0000016_acc" +
                                              interrupted["checkpoint"][-9:])  # fmt: skip
    resumed = train(tiny(data_dir, *BUDGET), tmp_path, "r",
                    resume_from=checkpoints.latest_checkpoint(tmp_path / "checkpoints"))
    assert resumed["test_accuracy"] == straight[1]["test_accuracy"]
    reliability.record(fault="SIGTERM during the final test evaluation",
                       happened=f"stopped at once; results.json status {interrupted['status']}, "
                       f"steps {interrupted['steps']}, checkpoint "
                       f"{Path(interrupted['checkpoint']).name}",
                       kept="the last evaluation's checkpoint; resumed, the same test_accuracy "
                       f"({resumed['test_accuracy']})")  # fmt: skip


def test_a_signal_while_the_run_sets_up_stops_it_at_once_and_says_so(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    real_set_up = loop.set_up

    def signal_then_set_up(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. SLURM's, while the data loads
        return real_set_up(*args, **kwargs)

    monkeypatch.setattr(loop, "set_up", signal_then_set_up)
    with pytest.raises(RunInterrupted):
        train(tiny(data_dir, *BUDGET), tmp_path, "r")
    stopped = read_results(tmp_path)
    assert stopped["status"] == rundir.INTERRUPTED and stopped["steps"] == 0
    assert stopped["checkpoint"] is None and not (tmp_path / "checkpoints").exists()
    reliability.record(fault="SIGTERM while the run sets up (the data loads)",
                       happened=f"stopped at once; results.json status {stopped['status']}, "
                       f"steps {stopped['steps']}, checkpoint {stopped['checkpoint']}",
                       kept="no checkpoint folder: nothing to keep, a resume redoes the "
                       "set-up")  # fmt: skip


def test_the_signal_goes_on_to_a_handler_installed_before_once_the_checkpoint_is_saved(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    """submitit installs a SIGUSR2 handler that requeues the job and exits; it must run
    after the run has saved its checkpoint and said `interrupted`."""
    seen = []

    def requeue_and_exit(signum, frame):
        seen.append((signum, rundir.read_results(tmp_path)["status"],
                     sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))))
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, requeue_and_exit)
    try:
        signal_at_step(monkeypatch, signal.SIGUSR2, 6)
        with pytest.raises(SystemExit):
            train(tiny(data_dir, *BUDGET), tmp_path, "r")
        assert signal.getsignal(signal.SIGUSR2) is requeue_and_exit
    finally:
        signal.signal(signal.SIGUSR2, previous)
    ((signum, status, saved),) = seen
    assert signum == signal.SIGUSR2 and status == rundir.INTERRUPTED
    assert saved[-1].endswith("_step0000006_interrupted.pt")
    reliability.record(fault="SIGUSR2 (SLURM) with submitit's requeue handler installed",
                       happened=f"that handler ran after the run had stopped: results.json "
                       f"status {status}, newest checkpoint {saved[-1]}",
                       kept="the checkpoint of step 6; the handler put back")  # fmt: skip


def test_a_second_signal_stops_at_once(reliability) -> None:
    # Python's own handler, or SIG_IGN where the suite runs as a background job.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), StopRequests() as stops, stops.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.signum == signal.SIGINT  # noted, the step goes on
        first = signal.Signals(stops.signum).name
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        pytest.fail("the second signal did not stop at once")
    assert signal.getsignal(signal.SIGINT) is before
    reliability.record(fault="a second Ctrl-C during a step",
                       happened=f"the first noted ({first}), the "
                       "second raised KeyboardInterrupt at once",
                       kept="Python's SIGINT handler put back")  # fmt: skip


def test_sigterm_to_a_real_run_exits_143_and_checkpoint_resumes_it(
    tmp_path: Path, data_dir: Path, reliability
) -> None:
    args = [*TINY, "trainer.max_steps=400", "trainer.eval_every=10",
            "trainer.early_stopping=null", f"runtime.data_dir={data_dir}",
            f"runtime.experiments_dir={tmp_path}"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "tokentango.train", *args],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("runs/*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    (run_dir,) = tmp_path.glob("runs/*")
    stopped = read_results(run_dir)
    total = stopped["total_steps"]  # two epochs of the tiny corpus
    assert stopped["status"] == rundir.INTERRUPTED and 0 < stopped["steps"] < total
    assert f"checkpoint={run_dir}" in stderr

    run_cli("tokentango.train", *args, f"checkpoint={run_dir}")
    done = read_results(run_dir)
    assert done["status"] == rundir.COMPLETED and done["steps"] == total
    steps = [m["step"] for m in rundir.read_metrics(run_dir)]
    assert steps == sorted({*range(10, total + 1, 10), total})
    reliability.record(fault="SIGTERM (`kill`) to a real training process",
                       happened=f"exit {proc.returncode}; results.json status "
                       f"{stopped['status']} at step {stopped['steps']} of {total}; stderr "
                       "names checkpoint=<run folder>",
                       kept=f"rerun with checkpoint=<run folder>: status {done['status']}, "
                       f"{done['steps']} steps, every evaluation once")  # fmt: skip
