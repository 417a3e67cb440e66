"""The run folder: its layout, names and statuses, and every read and write of it.

```
<run folder>/                  experiments/runs/<time>_<run_name>/ or sweeps/<time>_<id>/<job>/
  .hydra/config.yaml           the composed config (Hydra); overrides.yaml, hydra.yaml
  .hydra/resumed_<time>/       the Hydra files of a command that resumed this run
  train.log                    everything the run logged (Hydra)
  metrics.jsonl                one JSON object per evaluation, appended as it goes
  results.json                 the final figures, or status failed + error
  results.failed-<time>.json   a failed (or .interrupted-) attempt to extend a finished run
  checkpoints/                 ckpt_*.pt + .json (format: tokentango.checkpoints)
  tensorboard/                 TensorBoard event files (tracking=tensorboard|both)
  tracking.json                the MLflow run this run logs to, so a resume continues it
```

Every file is written whole or not at all (a temporary file renamed into place), except
`metrics.jsonl`, which is appended one line at a time; readers skip a torn last line, and the
next append drops it first. A write that fails (disk full, a file size limit, a read-only
folder) raises WriteError naming the file, and leaves the file that was there before.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"
HYDRA_DIR = ".hydra"
CONFIG_FILE = f"{HYDRA_DIR}/config.yaml"
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"
HYDRA_FILE = f"{HYDRA_DIR}/hydra.yaml"  # Hydra's own config for the job (sweeper, job number)
TENSORBOARD_DIR = "tensorboard"
TRACKING_FILE = "tracking.json"  # written and read by tokentango.tracking

# results.json statuses
COMPLETED, EARLY_STOPPED = "completed", "early_stopped"
FAILED, INTERRUPTED = "failed", "interrupted"  # interrupted: stopped by a signal, resumable
FINISHED = (COMPLETED, EARLY_STOPPED)  # a run with final figures


# --- writing --------------------------------------------------------------------------


class WriteError(OSError):
    """A file could not be written; the message names it and says why (`could not write
    <path>: No space left on device`). `errno` is the underlying error's. Made by
    `write_error`; plain OSError arguments, so it pickles (a joblib worker's failure)."""

    def __str__(self) -> str:
        return str(self.strerror)


def write_error(path: str | Path, err: OSError) -> WriteError:
    return WriteError(err.errno, f"could not write {path}: {err.strerror or err}", str(path))


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename onto `path`: readers see the old file or the new, whole.
    An exception mid-write removes the temporary file, and an OSError (disk full, file too
    large) becomes a WriteError naming `path`; a temporary file left by SIGKILL is hidden
    (`.<name>.tmp<pid>`) and never taken for the real file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2))


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one line to metrics.jsonl. A torn last line (a process killed mid-append: no
    newline at the end) is cut off first, so the new line never joins it."""
    path = Path(run_dir) / METRICS_FILE
    line = (json.dumps(record) + "\n").encode()
    try:
        with path.open("ab") as f:  # opened at its end: tell() is the file's size
            if f.tell() and not _ends_with_newline(path):
                f.truncate(path.read_bytes().rfind(b"\n") + 1)
            f.write(line)
    except OSError as err:
        raise write_error(path, err) from err


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def keep_metrics_up_to(run_dir: Path, step: int) -> None:
    """Drop metrics lines after `step` (and torn ones): a resumed run rewrites them exactly."""
    path = Path(run_dir) / METRICS_FILE
    if path.exists():
        kept = [r for r in read_metrics(run_dir) if r["step"] <= step]
        write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def record_unfinished(run_dir: Path, record: dict[str, Any]) -> Path:
    """results.json says failed or interrupted (`record["status"]`), unless it holds a
    finished run's figures (a failed attempt to extend it): those are kept and the record
    goes beside them. Returns the file."""
    path = Path(run_dir) / RESULTS_FILE
    previous = read_results(run_dir)
    if previous and previous.get("status") in FINISHED:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = path.with_name(f"results.{record['status']}-{stamp}.json")
    write_json(path, record)
    return path


def keep_own_hydra_config(run_dir: Path, own_config: dict[str, Any] | None) -> None:
    """A rerun into an existing run folder: Hydra has just rewritten `.hydra/` with the
    rerun's config; move that to `.hydra/resumed_<time>/` and put back the config the run
    really has, so the report groups it by what it ran."""
    hydra_dir = Path(run_dir) / HYDRA_DIR
    if own_config is None or not (hydra_dir / "config.yaml").exists():
        return
    aside = hydra_dir / f"resumed_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    aside.mkdir(exist_ok=True)
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        if (hydra_dir / name).exists():
            shutil.copy2(hydra_dir / name, aside / name)
    write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(own_config))


def remove_if_unstarted(run_dir: Path) -> None:
    """Remove a run folder that holds only what Hydra wrote before the job started."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {HYDRA_DIR, LOG_FILE}:
        shutil.rmtree(run_dir, ignore_errors=True)


# --- reading --------------------------------------------------------------------------


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """results.json as a dict; None when it is missing or unreadable."""
    try:
        results = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records in step order; a torn or bad line (a run killed mid-write) is
    skipped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            records.append(record)
    return sorted(records, key=lambda r: r["step"])


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def checkpoint_dir(run_dir: Path, shared_dir: str | None) -> Path:
    """Where a run's checkpoints go: `runtime.checkpoint_dir`, else its own folder."""
    return Path(shared_dir) if shared_dir else Path(run_dir) / CHECKPOINT_DIR


def run_dir_of_checkpoint(checkpoint: Path, recorded_run_dir: str | None) -> Path | None:
    """The run folder a checkpoint belongs to: the one it sits in (a moved or copied run
    folder still works), else the folder it recorded, if that still exists."""
    here = checkpoint.resolve().parent
    if here.name == CHECKPOINT_DIR and (here.parent / HYDRA_DIR).is_dir():
        return here.parent
    if recorded_run_dir and Path(recorded_run_dir).is_dir():
        return Path(recorded_run_dir)
    return None


# --- names ----------------------------------------------------------------------------

_ADJECTIVES = (
    "sleepy", "brave", "calm", "eager", "fuzzy", "gentle", "happy", "jolly", "keen", "lively",
    "merry", "nimble", "proud", "quiet", "rapid", "shy", "sunny", "swift", "tidy", "witty",
    "bold", "clever", "daring", "fancy",
)  # fmt: skip
_ANIMALS = (
    "otter", "panda", "koala", "lynx", "heron", "badger", "falcon", "gecko", "ibex", "lemur",
    "marmot", "newt", "ocelot", "puffin", "quokka", "raven", "seal", "tapir", "urchin", "vole",
    "walrus", "yak", "zebra",
)  # fmt: skip


def new_run_name() -> str:
    """A readable, unique name such as `sleepy-otter-3f9a2c`."""
    pick = secrets.choice
    return f"{pick(_ADJECTIVES)}-{pick(_ANIMALS)}-{secrets.token_hex(3)}"


MAX_DIRNAME = 120


def safe_dirname(text: str, max_len: int = MAX_DIRNAME) -> str:
    """`text` usable as one folder name: no path separators, bounded length."""
    text = text.replace("/", "_").replace("\\", "_")
    if len(text) > max_len:
        text = f"{text[: max_len - 9]}~{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"
    return text


def job_dirname(num: int, task_overrides: list[str], varying: list[str]) -> str:
    """`<job number>_<the overrides that vary across the sweep>`, in command-line order (all
    of the job's overrides when none varies), for a sweep job's folder.

    A name too long for a folder first writes long numbers short (an Optuna trial's
    `optimizer.lr=0.0005611516415334506` as `0.000561152`; the job number keeps it unique),
    and only then is cut; a name that fits is the overrides exactly as given."""
    shown = varying or task_overrides
    name = f"{num}_{','.join(shown)}"
    if len(name) > MAX_DIRNAME:
        name = f"{num}_{','.join(short_number(o) for o in shown)}"
    return safe_dirname(name)


def short_number(override: str, digits: int = 6) -> str:
    """`key=value` with a number of more than `digits` significant digits written with
    `digits`; any other override unchanged."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    significant = value.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0")
    if len(significant) <= digits or not significant.isdigit():
        return override
    return f"{key}={number:.{digits}g}"
