"""Where each job of a sweep stands: pending, running, interrupted, failed or done.

Two sources, as the user would look: SLURM's queue (squeue) while SLURM knows a job, and
the job's run folder (results.json, metrics.jsonl). The SLURM launcher
(`hydra/launcher=slurm`) records what it submitted in the sweep folder's `jobs.json`
(owned here: job number, SLURM job id, overrides); sweeps on other launchers have only
their run folders. `python -m tokentango.status <sweep folder>` prints this
(tokentango.cli.status).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tokentango import rundir

JOBS_FILE = "jobs.json"

PENDING, RUNNING, DONE = "pending", "running", "done"
UNFINISHED = "unfinished"  # a run folder without results and no queue to ask
STATES = (PENDING, RUNNING, rundir.INTERRUPTED, rundir.FAILED, DONE, UNFINISHED)

# squeue's job states, grouped as a user reads them; any other (COMPLETED, FAILED,
# CANCELLED, TIMEOUT, ...) is a job that has ended, which squeue lists for a while.
QUEUED_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
ACTIVE_STATES = {"RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}


def record_jobs(sweep_dir: Path, jobs: list[dict[str, Any]]) -> None:
    """Add submitted jobs to the sweep's jobs.json (a rerun of the sweep adds its own)."""
    rundir.write_json(Path(sweep_dir) / JOBS_FILE, read_jobs(sweep_dir) + jobs)


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """The submitted jobs, the newest submission of each job number last; [] if none."""
    try:
        jobs = json.loads((Path(sweep_dir) / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(jobs, list):
        return []
    return [j for j in jobs if isinstance(j, dict) and isinstance(j.get("num"), int)
            and not isinstance(j["num"], bool) and j.get("job_id") is not None]  # fmt: skip


def squeue(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """{job id: (state, reason)} for the jobs SLURM still lists (one line per array task);
    None when there is no squeue to ask."""
    if not job_ids or shutil.which("squeue") is None:
        return None
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%i|%T|%r", f"--jobs={','.join(arrays)}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # squeue fails for ids it has forgotten (finished long ago): nothing queued.
        return {} if "Invalid job id" in out.stderr else None
    queue = {}
    for line in out.stdout.splitlines():
        job_id, state, reason = (line.split("|") + ["", ""])[:3]
        queue[job_id.strip()] = (state.strip(), reason.strip())
    return queue


def in_queue(queue: dict[str, tuple[str, str]], job_id: str) -> bool:
    """Whether SLURM still has the job waiting or running (not ended)."""
    state = queue.get(job_id, ("", ""))[0]
    return state in QUEUED_STATES or state in ACTIVE_STATES


def _run_folders(sweep_dir: Path) -> dict[int, Path]:
    """Job number -> run folder (sweep folders are named `<job number>_<overrides>`)."""
    folders = {}
    for path in sorted(Path(sweep_dir).iterdir()):
        head = path.name.split("_", 1)[0]
        if path.is_dir() and head.isdigit() and rundir.is_run_dir(path):
            folders[int(head)] = path
    return folders


def _number(value: Any) -> int | float | None:
    """A number read from a run folder, or None: a file of another version or a torn one
    may hold anything there."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return value


def _from_folder(folder: Path | None) -> dict[str, Any]:
    """What a run folder says: its state when it has results, its progress anyway."""
    if folder is None:
        return {"state": None, "step": None}
    metrics = rundir.read_metrics(folder)
    row: dict[str, Any] = {"state": None, "step": _number(metrics[-1]["step"]) if metrics
                           else None, "run_folder": folder.name}  # fmt: skip
    results = rundir.read_results(folder)
    status = (results or {}).get("status")
    steps = _number((results or {}).get("steps"))
    if status in rundir.FINISHED:
        row.update(state=DONE, step=steps, note=status,
                   test_accuracy=_number(results.get("test_accuracy")))  # fmt: skip
    elif status == rundir.INTERRUPTED:
        row.update(state=rundir.INTERRUPTED, step=max(row["step"] or 0, steps or 0),
                   note=f"{results.get('signal')} at step {results.get('steps')}")  # fmt: skip
    elif status == rundir.FAILED or (folder / rundir.RESULTS_FILE).exists():
        error = str((results or {}).get("error") or "unreadable results.json").split("\n")[0]
        row.update(state=rundir.FAILED, note=error)
    return row


def job_states(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job of the sweep: `num`, `job_id`, `state` (one of STATES), `step`,
    `test_accuracy` when done, `run_folder`, `note`."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such folder")
    submitted = {job["num"]: job for job in read_jobs(sweep_dir)}  # the newest per number
    folders = _run_folders(sweep_dir)
    queue = squeue([str(job["job_id"]) for job in submitted.values()])
    rows = []
    for num in sorted(set(submitted) | set(folders)):
        job_id = str(submitted[num]["job_id"]) if num in submitted else None
        row = {"num": num, "job_id": job_id, "step": None, "test_accuracy": None,
               "run_folder": None, "note": "", **_from_folder(folders.get(num))}  # fmt: skip
        queued = queue.get(job_id) if queue is not None and job_id else None
        if row["state"] == DONE:  # finished, whatever the queue says while it exits
            pass
        elif queued and queued[0] in ACTIVE_STATES:
            was = f"resumed after: {row['note']}" if row["state"] else ""
            row.update(state=RUNNING, note=was)
        elif queued and queued[0] in QUEUED_STATES:
            was = f"; {row['state']} before ({row['note']})" if row["state"] else ""
            row.update(state=PENDING, note=f"{queued[0].lower()}: {queued[1]}{was}")
        elif row["state"] is None and job_id and queue is not None:
            # SLURM has let go of the job, and it left no results: it died (killed, out of
            # memory, node lost) or was cancelled; submitit's log says why.
            note = f"no results; SLURM no longer lists it (see .submitit/{job_id}/)"
            row.update(state=rundir.FAILED, note=note)
        elif row["state"] is None:  # no queue to ask
            row["state"] = UNFINISHED if row["run_folder"] else PENDING
            if job_id:
                row["note"] = "squeue unavailable: state from the run folder only"
        rows.append(row)
    return rows


def count_states(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {state: n for state in STATES if (n := sum(r["state"] == state for r in rows))}


if __name__ == "__main__":  # python -m tokentango.status SWEEP_DIR [--json]
    import sys

    from tokentango.cli.status import main

    sys.exit(main())
