"""`python -m tokentango.status`: a sweep's jobs and where each stands, from the run
folders (any launcher) and SLURM's queue (tests/test_slurm.py runs it on a real cluster)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_cli
from tokentango import rundir
from tokentango.status import job_states, record_jobs


def test_status_of_a_local_sweep_reads_its_run_folders(tiny_sweep: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, sweep)
    folders = sorted(p for p in sweep.iterdir() if p.is_dir())
    rundir.write_json(folders[1] / rundir.RESULTS_FILE, {
        "status": "interrupted", "signal": "SIGTERM", "steps": 6})  # fmt: skip
    rundir.write_json(folders[2] / rundir.RESULTS_FILE, {
        "status": "failed", "error": "DataError: no rows\nTraceback ..."})  # fmt: skip
    (folders[3] / rundir.RESULTS_FILE).unlink()  # killed before it ended
    rows = job_states(sweep)
    assert [(r["num"], r["state"], r["step"]) for r in rows] == [
        (0, "done", 8), (1, "interrupted", 8), (2, "failed", 8), (3, "unfinished", 8)]  # fmt: skip
    assert rows[1]["note"] == "SIGTERM at step 6" and rows[2]["note"] == "DataError: no rows"
    out = run_cli("tokentango.status", str(sweep)).stdout
    assert out.splitlines()[-1] == "1 interrupted, 1 failed, 1 done, 1 unfinished"


def test_a_submitted_job_slurm_no_longer_knows_and_without_results_is_failed(
    tmp_path: Path,
) -> None:
    record_jobs(tmp_path, [{"num": 0, "job_id": "999999_0", "overrides": ["seed=1"]}])
    rows = job_states(tmp_path)
    if shutil.which("squeue") is None:  # no queue to ask: the run folder alone
        assert rows[0]["state"] == "pending" and "squeue unavailable" in rows[0]["note"]
    else:
        assert rows[0]["state"] == "failed" and "no longer lists it" in rows[0]["note"]
    assert json.loads((tmp_path / "jobs.json").read_text())[0]["job_id"] == "999999_0"


def test_status_of_a_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    proc = run_cli("tokentango.status", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope'}: no such folder"
