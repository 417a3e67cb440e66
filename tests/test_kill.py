"""Reliability under real faults: real processes killed with a real SIGKILL mid-checkpoint,
mid-append of metrics.jsonl and mid-build of the data cache, real write errors from the
kernel (a file size limit, a full tmpfs), and real processes racing to build one cache.

The faults are injected from the test side (tests/fault_runner.py monkeypatches the function
at that point in the child process); the production code has no test hooks. Each test then
relaunches the plain command, as a user would, and checks what survived: no file under a real
name is broken, the resume starts from the last good checkpoint, and metrics.jsonl ends as an
uninterrupted run's, with no torn or repeated lines.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, metric_values, read_results, run_cli, tiny
from tests.fault_runner import dataset_digest
from tokentango import checkpoints, rundir
from tokentango.config import PROJECT_ROOT
from tokentango.data import load_cache_dir, load_dataset, settings_from_config
from tokentango.loop import train

BUDGET = ["trainer.early_stopping=null"]  # TINY's 12 steps, evaluated at 4, 8 and 12
KILLED = -signal.SIGKILL  # Popen's returncode for a child killed by SIGKILL

_straight: dict[int, Path] = {}


@pytest.fixture
def straight(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """The uninterrupted run of TINY + BUDGET with a seed (in-process, once a session):
    what a killed and resumed run must end as."""

    def run(seed: int = 3) -> Path:
        if seed not in _straight:
            run_dir = tmp_path_factory.mktemp("straight")
            train(tiny(data_dir, *BUDGET, f"seed={seed}"), run_dir, "straight")
            _straight[seed] = run_dir
        return _straight[seed]

    return run


def fault_command(point: str, n: int, *args: str, prepare: bool = False,
                  slow: float = 0) -> list[str]:  # fmt: skip
    """`python -m tests.fault_runner point n -- args` (see there)."""
    return [sys.executable, "-m", "tests.fault_runner", point, str(n),
            *(["--prepare"] if prepare else []), "--slow", str(slow), "--", *args]  # fmt: skip


def fault_run(point: str, n: int, *args: str, prepare: bool = False,
              preexec_fn=None) -> subprocess.CompletedProcess:  # fmt: skip
    """The fault runner's command, to its end or its kill."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(fault_command(point, n, *args, prepare=prepare), capture_output=True,
                          text=True, env=env, cwd=PROJECT_ROOT, timeout=300,
                          preexec_fn=preexec_fn)  # fmt: skip


def run_args(experiments: Path, data_dir: Path, seed: str = "3") -> list[str]:
    return [*TINY, *BUDGET, f"seed={seed}", f"runtime.data_dir={data_dir}",
            f"runtime.experiments_dir={experiments}"]  # fmt: skip


def assert_no_broken_file(run_dir: Path, metrics_may_be_torn: bool = False) -> None:
    """Every file under a real name is whole: each checkpoint loads, each sidecar and
    results.json (when there) is a JSON object, and metrics.jsonl is whole lines of JSON in
    increasing step order (a process killed mid-append may leave a torn last line only
    until the next launch). Unfinished writes hide under dot-names."""
    ckpt_dir = run_dir / rundir.CHECKPOINT_DIR
    for path in sorted(ckpt_dir.glob("ckpt_*.pt")):
        assert "model" in checkpoints.read_payload(path), path
        assert isinstance(json.loads(path.with_suffix(".json").read_text()), dict), path
    assert not [p for p in ckpt_dir.glob("*tmp*") if not p.name.startswith(".")]
    if (run_dir / rundir.RESULTS_FILE).exists():
        assert rundir.read_results(run_dir) is not None, "results.json is not whole"
    text = (run_dir / rundir.METRICS_FILE).read_text()
    lines = text.splitlines()
    if metrics_may_be_torn and not text.endswith("\n"):
        lines = lines[:-1]
    else:
        assert text.endswith("\n"), "metrics.jsonl ends mid-line"
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(set(steps)), f"metrics.jsonl steps repeat or go back: {steps}"


def assert_resumed_at(run_dir: Path, step: int | None) -> None:
    """train.log names the checkpoint the relaunch resumed from, and its step (None: the
    killed job had no checkpoint yet and started afresh)."""
    log = (run_dir / rundir.LOG_FILE).read_text()
    resumed = re.findall(r"resumed from (\S+) at step (\d+)", log)
    if step is None:
        assert resumed == []
        return
    assert [int(s) for _, s in resumed] == [step]
    assert checkpoints.read_metadata(Path(resumed[0][0]))["step"] == step


def assert_ends_as(run_dir: Path, straight: Path) -> None:
    assert_no_broken_file(run_dir)
    assert metric_values(run_dir) == metric_values(straight)
    assert read_results(run_dir)["status"] == rundir.COMPLETED
    assert read_results(run_dir)["steps"] == 12
    assert not list((run_dir / rundir.CHECKPOINT_DIR).glob(".*tmp*")), "temp file left"


# --- SIGKILL in a single run and in a sweep -----------------------------------------------


@pytest.mark.parametrize("point, n, resumes_at", [
    ("checkpoint", 2, 4),  # half of step 8's checkpoint written, then killed
    ("metrics", 2, 4),  # half of step 8's metrics line written (before its checkpoint)
    pytest.param("metrics", 3, 8, marks=pytest.mark.slow),  # half of step 12's line
], ids=["mid-checkpoint", "mid-metrics-line", "mid-last-metrics-line"])  # fmt: skip
def test_a_run_killed_mid_write_resumes_from_its_last_good_checkpoint(
    tmp_path: Path, data_dir: Path, straight, point: str, n: int, resumes_at: int, reliability
) -> None:
    args = run_args(tmp_path, data_dir)
    killed = fault_run(point, n, *args)
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert_no_broken_file(run_dir, metrics_may_be_torn=True)
    assert not (run_dir / rundir.RESULTS_FILE).exists()
    assert checkpoints.read_metadata(checkpoints.latest_checkpoint(run_dir))["step"] == resumes_at

    run_cli("tokentango.train", *args, f"checkpoint={run_dir}")
    assert_resumed_at(run_dir, resumes_at)
    assert_ends_as(run_dir, straight())
    what = {"checkpoint": "a checkpoint write", "metrics": "a metrics.jsonl append"}[point]
    reliability.record(fault=f"SIGKILL halfway through {what} (evaluation {n} of a run)",
                       happened=f"exit {killed.returncode}; no results.json; the newest "
                       f"checkpoint that loads is step {resumes_at}; checkpoint=<run folder> "
                       f"resumed at step {resumes_at}",
                       kept="every checkpoint under a real name loads; metrics.jsonl after "
                       "the resume equals an uninterrupted run's, no torn or repeated line")


@pytest.mark.slow
@pytest.mark.parametrize("point, n, resumes_at", [
    ("checkpoint", 1, None),  # job 0's first checkpoint torn: nothing to resume from
    ("metrics", 3, 8),
], ids=["first-checkpoint", "last-metrics-line"])  # fmt: skip
def test_a_sweep_killed_mid_write_resumes_with_the_same_command(
    tmp_path: Path, data_dir: Path, straight, point: str, n: int, resumes_at: int | None,
    reliability,
) -> None:
    """The kill takes the whole sweep process (the basic launcher runs jobs in it): job 0
    dies mid-write, job 1 never starts. The same --multirun command finishes both."""
    sweep = tmp_path / "sweep"
    args = ["--multirun", *run_args(tmp_path, data_dir, seed="3,4"), f"hydra.sweep.dir={sweep}"]
    killed = fault_run(point, n, *args)
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    job0 = sweep / "0_seed=3"
    assert_no_broken_file(job0, metrics_may_be_torn=True)

    run_cli("tokentango.train", *args)
    assert_resumed_at(job0, resumes_at)
    assert_ends_as(job0, straight())
    assert_ends_as(sweep / "1_seed=4", straight(4))
    reliability.record(fault=f"SIGKILL of a sweep halfway through job 0's {point} write "
                       f"(evaluation {n})",
                       happened=f"exit {killed.returncode}; the same --multirun command "
                       + (f"resumed job 0 at step {resumes_at}" if resumes_at else
                          "started job 0 afresh (no checkpoint had been written)")
                       + " and ran job 1",
                       kept="both jobs end with an uninterrupted run's metrics.jsonl")


def test_a_torn_metrics_line_is_cut_before_the_next_append(tmp_path: Path) -> None:
    """Even without a resume in between (which rewrites metrics.jsonl up to its step), the
    next append never joins a torn line."""
    (tmp_path / rundir.METRICS_FILE).write_text('{"step": 4}\n{"step": 8, "cls_lo')
    rundir.append_metrics(tmp_path, {"step": 8})
    assert (tmp_path / rundir.METRICS_FILE).read_text() == '{"step": 4}\n{"step": 8}\n'


# --- write errors -----------------------------------------------------------------------


def ignore_sigxfsz() -> None:
    """A write past RLIMIT_FSIZE raises SIGXFSZ, which kills by default; ignored, the write
    fails with EFBIG instead (Python ignores it at start-up too: this makes it explicit)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_write_error_names_the_file_and_crosses_processes(tmp_path: Path) -> None:
    """The message a user sees names the file and the reason; the error pickles whole, as a
    joblib worker's failure must to reach the sweep."""
    target = tmp_path / "results.json"

    def disk_full(tmp: Path) -> None:
        tmp.write_text("{")
        raise OSError(28, os.strerror(28))

    with pytest.raises(rundir.WriteError) as raised:
        rundir.write_atomically(target, disk_full)
    assert str(raised.value) == f"could not write {target}: No space left on device"
    assert list(tmp_path.iterdir()) == []  # nor a temporary file
    again = pickle.loads(pickle.dumps(raised.value))
    assert (type(again), str(again), again.errno) == (rundir.WriteError, str(raised.value), 28)


def assert_failed_cleanly(run_dir: Path, proc: subprocess.CompletedProcess, reason: str,
                          fault: str, reliability) -> None:
    """Exit 1 with one `error: could not write <checkpoint>: <reason>` line; results.json
    says failed with that error; the checkpoint before is intact and nothing half-written
    lies under a real name."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    error = re.search(r"^error: could not write (\S+): (.+)$", proc.stderr, re.M)
    assert error, proc.stderr[-2000:]
    failed_file = Path(error.group(1))
    assert failed_file.parent == run_dir / rundir.CHECKPOINT_DIR
    assert failed_file.name.startswith("ckpt_") and "_step0000008_" in failed_file.name
    assert error.group(2) == reason
    assert not failed_file.exists() and not list(failed_file.parent.glob(".*tmp*"))
    results = read_results(run_dir)
    assert results["status"] == rundir.FAILED
    assert results["error"] == f"WriteError: could not write {failed_file}: {reason}"
    assert_no_broken_file(run_dir)
    (kept,) = checkpoints.list_checkpoints(run_dir)
    assert kept["step"] == 4
    assert checkpoints.read_payload(kept["path"])["model"]
    reliability.record(fault=fault, happened=f"exit {proc.returncode}; {error.group(0)}; "
                       f"results.json status {results['status']}",
                       kept=f"the step-{kept['step']} checkpoint, which loads; no temporary "
                       "file left")


def test_a_file_size_limit_fails_the_run_clearly_and_keeps_the_checkpoint_before(
    tmp_path: Path, data_dir: Path, reliability
) -> None:
    """RLIMIT_FSIZE drops to half a checkpoint's size once the first is written (a tiny
    checkpoint is ~177 kB; train.log, metrics.jsonl and results.json stay far below): the
    second checkpoint's write gets a real EFBIG from the kernel. A read-only folder cannot
    stand in: the tests run as root, and root writes through `chmod a-w`."""
    proc = fault_run("fsize", 1, *run_args(tmp_path, data_dir), preexec_fn=ignore_sigxfsz)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert_failed_cleanly(run_dir, proc, os.strerror(27),  # EFBIG: "File too large"
                          "a file size limit (RLIMIT_FSIZE) hit by the second checkpoint",
                          reliability)


def test_a_full_disk_fails_the_run_clearly_and_keeps_the_checkpoint_before(
    tmp_path: Path, data_dir: Path, straight, reliability
) -> None:
    """The run folder on a tmpfs with room for one checkpoint and a half: the second
    checkpoint's write gets ENOSPC. Skipped where mounting is not permitted."""
    ckpt_size = max(p.stat().st_size for p in straight().glob("checkpoints/*.pt"))
    mount = tmp_path / "small_disk"
    mount.mkdir()
    size = ckpt_size * 3 // 2 + 64 * 1024
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        proc = run_cli("tokentango.train", *run_args(mount, data_dir), check=False)
        (run_dir,) = (mount / "runs").iterdir()
        assert_failed_cleanly(run_dir, proc, os.strerror(28),  # ENOSPC: "No space left..."
                              "a full disk (a small tmpfs) at the second checkpoint",
                              reliability)
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# --- the data cache: races and a kill mid-build -----------------------------------------


def fresh_data_dir(tmp_path: Path, data_dir: Path) -> Path:
    """An empty cache beside a copy of the session's generated corpus (same bytes and
    mtime, so the same cache key), so only the cache is built."""
    session_digest(data_dir)  # the session's corpus (and cache) exist from here on
    fresh = tmp_path / "data"
    shutil.copytree(data_dir / "sample", fresh / "sample")  # mtimes too: the same key
    return fresh


def session_digest(data_dir: Path) -> tuple[str, str]:
    """(cache folder name, digest) of the session's own build for TINY's settings."""
    data = load_dataset(settings_from_config(tiny(data_dir)), data_dir)
    return data.cache_dir.name, dataset_digest(data)


def cache_folders(data_dir: Path) -> list[Path]:
    """What a run would take for a cache: folders under their real (not dot-) names."""
    return [p for p in (data_dir / "cache").iterdir() if p.is_dir() and not p.name.startswith(".")]


@pytest.mark.parametrize("n_processes", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_processes_building_one_cache_at_once_build_it_once_and_read_the_same_bytes(
    tmp_path: Path, data_dir: Path, n_processes: int, reliability
) -> None:
    """`tokentango.prepare` started n times at once on an empty cache; the build is slowed
    by 2 s so every other process arrives while it runs and waits on the lock."""
    fresh = fresh_data_dir(tmp_path, data_dir)
    command = fault_command("digest", 0, *TINY, f"runtime.data_dir={fresh}", prepare=True,
                            slow=2)
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=PROJECT_ROOT) for _ in range(n_processes)]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    stdouts = [out for out, _ in outputs]
    assert sum("(built," in out for out in stdouts) == 1, stdouts
    assert sum("(already there," in out for out in stdouts) == n_processes - 1
    digests = {re.search(r"^digest (\S+) (\w+)$", out, re.M).groups() for out in stdouts}
    (folder,) = cache_folders(fresh)
    name, digest = session_digest(data_dir)
    assert digests == {(str(folder), digest)} and folder.name == name
    assert dataset_digest(load_cache_dir(folder)) == digest
    assert sorted(p.name for p in (fresh / "cache").iterdir()) == [name, f"{name}.lock"]
    reliability.record(fault=f"{n_processes} processes building the same data cache at once",
                       happened=f"{sum('(built,' in out for out in stdouts)} built it, "
                       f"{sum('(already there,' in out for out in stdouts)} waited on its "
                       f"lock and opened it; {len(digests)} distinct digest of what they read",
                       kept="one cache folder, the same bytes as a build alone")


def test_a_build_killed_midway_leaves_nothing_taken_for_a_cache(
    tmp_path: Path, data_dir: Path, reliability
) -> None:
    """SIGKILL once the tokenizer and the first token ids are in the build's temporary
    folder: no folder under the cache's name (a run would build, not read, it); the next
    launch removes the leftovers and builds the same bytes as an uninterrupted build."""
    fresh = fresh_data_dir(tmp_path, data_dir)
    args = [*TINY, f"runtime.data_dir={fresh}"]
    killed = fault_run("cache", 1, *args, prepare=True)
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    assert cache_folders(fresh) == []
    (leftover,) = [p for p in (fresh / "cache").iterdir() if p.is_dir()]
    assert leftover.name.startswith(".") and (leftover / "tokenizer.json").is_file()
    assert not (leftover / "meta.json").exists()

    again = fault_run("digest", 0, *args, prepare=True)
    assert again.returncode == 0 and "(built," in again.stdout, again.stderr[-2000:]
    name, digest = session_digest(data_dir)
    assert [p.name for p in cache_folders(fresh)] == [name] and not leftover.exists()
    assert f"{fresh / 'cache' / name} {digest}" in again.stdout
    reliability.record(fault="SIGKILL halfway through a data cache build",
                       happened=f"exit {killed.returncode}; only a hidden temporary folder "
                       f"({leftover.name.split('.tmp')[0]}.tmp<pid>) was left; the next "
                       "launch removed it and built the cache",
                       kept="no folder under the cache's name until a build completed; the "
                       "rebuilt cache has the same bytes as an uninterrupted build")


@pytest.mark.slow
def test_a_build_killed_while_another_process_waits_is_taken_over_by_it(
    tmp_path: Path, data_dir: Path
) -> None:
    """The builder holds the cache's lock (its build sleeps 8 s first) when a second process
    starts; the builder is then SIGKILLed mid-build, the kernel releases its lock, and the
    waiting process builds the cache itself, from scratch, to the same bytes. (Should the
    second process arrive only after the kill, on a very loaded machine, the outcome checked
    is the same.)"""
    fresh = fresh_data_dir(tmp_path, data_dir)
    args = [*TINY, f"runtime.data_dir={fresh}"]
    builder = subprocess.Popen(fault_command("cache", 1, *args, prepare=True, slow=8),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=PROJECT_ROOT)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((fresh / "cache").glob(".*.tmp*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the builder holds the lock from before its temporary folder
    assert builder.poll() is None, "the builder ended before the second process started"
    waiter = subprocess.Popen(fault_command("digest", 0, *args, prepare=True),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=PROJECT_ROOT)  # fmt: skip
    _, builder_err = builder.communicate(timeout=300)
    out, err = waiter.communicate(timeout=300)
    assert builder.returncode == KILLED, builder_err[-2000:]
    assert waiter.returncode == 0 and "(built," in out, err[-2000:]
    name, digest = session_digest(data_dir)
    assert f"{fresh / 'cache' / name} {digest}" in out
    assert sorted(p.name for p in (fresh / "cache").iterdir()) == [name, f"{name}.lock"]
