"""The Hydra entry point: `python -m tokentango.train [overrides]` (`--multirun`: a sweep).

Before Hydra starts (`cli`): the original's environment variables become defaults, old key
names are moved to their homes, a single run gets its name, a sweep learns which
overrides tell its jobs apart, and `checkpoint=latest|PATH` is turned into the file and the
folder of the run it resumes. Inside Hydra (`main`), per job: compose, validate, skip a
finished job or resume an interrupted one, train (tokentango.loop), record a failure;
a run stopped by a signal exits as the signal would have, its checkpoint saved.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tokentango import checkpoints, rundir
from tokentango.config import (
    BASELINE_MODELS,
    BUDGET_KEYS,
    CONF_DIR,
    RESUME_IGNORES_SILENTLY,
    Config,
    ConfigError,
    check_override_keys,
    check_run_name,
    default_experiments_dir,
    is_baseline,
    is_runtime_key,
    override_keys,
    parse_overrides,
    quote_value,
    setting_differences,
    user_overrides,
    validate,
)
from tokentango.interrupt import RunInterrupted

log = logging.getLogger("tokentango.run")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One job; returns the run's best validation accuracy, the value a search
    (hydra/sweeper=search) maximizes: selecting on the test split would overfit it."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        validate(cfg)
        # Imported once the config is good: `--help` and bad values never pay for torch.
        from tokentango.device import resolve_device
        from tokentango.tracking import require_installed

        resolve_device(cfg.runtime.device)
        plan = plan_job(cfg, run_dir, list(hydra_cfg.overrides.task))
        if not plan.get("skip"):
            require_installed(plan["cfg"])  # a resumed run's own tracking, or the new one
    except (ConfigError, checkpoints.CheckpointError) as err:
        rundir.remove_if_unstarted(run_dir)  # nothing was trained: leave no half-made folder
        if hydra_cfg.mode == RunMode.RUN:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise
    if plan.get("skip"):
        print(f"{run_dir.name}: already {plan['skip']['status']}, skipped")
        return plan["skip"].get("best_val_accuracy")
    cfg, run_name = plan["cfg"], plan["run_name"]
    cpus = hydra_cfg.launcher.get("cpus_per_task")
    if cfg.runtime.threads is None and cpus:
        # A launcher that gives each job its CPUs (submitit: cpus_per_task) sets its threads;
        # joblib sets them in its workers itself (cores // n_jobs).
        cfg.runtime.threads = int(cpus)
    from tokentango.data import DataError

    if is_baseline(cfg):  # model=tfidf_lr: no encoder, no checkpoint, seconds
        from tokentango.baseline import run_identity, train
    else:
        from tokentango.loop import run_identity, train
    try:
        results = train(cfg, run_dir, run_name, plan["resume_from"])
    except RunInterrupted as stop:
        # Checkpointed and recorded; exit as the signal would have (a sweep stops too).
        stopped = rundir.read_results(run_dir) or {}
        if hydra_cfg.mode == RunMode.MULTIRUN:
            how = f"to resume it, rerun the sweep with hydra.sweep.dir={run_dir.parent}"
        elif stopped.get("checkpoint"):
            how = f"to resume it, run checkpoint={run_dir}"
        else:
            how = "nothing was trained yet: run the command again"
        print(f"{run_name}: {stop}; {how}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except Exception as err:
        # Bad input (the data file, a checkpoint, a value the data rules out): a single run
        # says so in one line, as for a bad config value, and leaves no folder if nothing
        # was trained.
        bad_input = isinstance(err, (DataError, ConfigError, checkpoints.CheckpointError))
        single = hydra_cfg.mode == RunMode.RUN
        if bad_input and single:
            rundir.remove_if_unstarted(run_dir)
        if run_dir.is_dir():
            # Recorded where the report looks; then Hydra goes on with the rest of the sweep.
            try:
                rundir.record_unfinished(run_dir, {
                    "status": rundir.FAILED, **run_identity(cfg, run_name),
                    "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(),
                })  # fmt: skip
            except OSError as unrecorded:  # the disk that failed the run: say why, go on
                log.error("could not record the failure: %s", unrecorded)
        if bad_input and single:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        if isinstance(err, rundir.WriteError):  # disk full, a file size limit: one line
            log.error("%s", err)
            if single:
                print(f"error: {err}", file=sys.stderr)
                sys.exit(1)
        raise
    print_results(results, run_dir)
    return results["best_val_accuracy"]


def plan_job(cfg: DictConfig, run_dir: Path, task_overrides: list[str]) -> dict[str, Any]:
    """What this job does: skip (its folder holds a finished run), resume (from the
    checkpoint `cli` chose, or its folder's newest: a sweep rerun), or start afresh."""
    previous = rundir.read_results(run_dir)
    rerun = cfg.checkpoint == "train"
    if rerun and previous and previous.get("status") in rundir.FINISHED:
        differences = setting_differences(previous.get("config") or {}, cfg)
        if differences:  # the same folder, another experiment: say so, never overwrite
            log.warning("%s holds a finished run with other settings (%s): kept as it is; "
                        "give this sweep another hydra.sweep.dir to run it", run_dir,
                        "; ".join(differences[:3]))  # fmt: skip
        rundir.keep_own_hydra_config(run_dir, previous.get("config"))
        return {"skip": previous}
    if rerun:
        # In a shared checkpoint_dir, only this folder's own checkpoints count.
        shared = cfg.runtime.checkpoint_dir
        ckpt_dir = rundir.checkpoint_dir(run_dir, shared)
        resume_from = checkpoints.latest_checkpoint(ckpt_dir, run_dir=run_dir if shared else None)
    else:
        resume_from = Path(cfg.checkpoint)
    # Sweep jobs get a fresh name each; a single run's was chosen by `cli`.
    run_name = cfg.run_name or rundir.new_run_name()
    if resume_from is not None:
        meta = checkpoints.read_metadata(resume_from, require_resumable=True)
        cfg = resume_config(cfg, meta, task_overrides)
        run_name = meta["run_name"]
        if rerun:
            rundir.keep_own_hydra_config(run_dir, meta["config"])
    return {"cfg": cfg, "run_name": run_name, "resume_from": resume_from}


def may_change_on_resume(key: str) -> bool:
    """A resumed run keeps its own config but for how it runs (`runtime`, `tracking`) and how
    long it trains; its checkpoints stay where they are (its newest, best and abandoned ones
    are found there)."""
    return (is_runtime_key(key) or key in BUDGET_KEYS) and key != "runtime.checkpoint_dir"


def resume_config(cfg: DictConfig, meta: dict, task_overrides: list[str]) -> DictConfig:
    """The config a checkpoint was trained with, plus what the command line set explicitly
    of `runtime` and the budget (to extend training or move it to another device)."""
    resumed = OmegaConf.merge(OmegaConf.structured(Config), meta["config"])
    for key in OmegaConf.missing_keys(resumed):  # newer than the checkpoint: today's value
        OmegaConf.update(resumed, key, OmegaConf.select(cfg, key), merge=False)
    given = override_keys(task_overrides)
    for key in sorted(given):
        if may_change_on_resume(key):
            OmegaConf.update(resumed, key, OmegaConf.select(cfg, key), merge=False)
    kept = [k for k in given if not may_change_on_resume(k)]
    ignored = sorted(k for k in kept if k not in RESUME_IGNORES_SILENTLY)
    if ignored:
        log.warning("resuming %s with its own config: ignored %s (only runtime.* but "
                    "runtime.checkpoint_dir, tracking, and %s may change)", meta["run_name"],
                    ", ".join(ignored), ", ".join(BUDGET_KEYS))  # fmt: skip
    if meta["loop"].get("status") == rundir.EARLY_STOPPED:
        log.warning("%s stopped early at step %d: there is nothing to extend",
                    meta["run_name"], meta["step"])  # fmt: skip
    resumed.checkpoint = cfg.checkpoint
    return resumed


def print_results(results: dict, run_dir: Path) -> None:
    from tokentango.evaluate import format_confusion

    steps = f"{results['steps']} C values (kept C={results['C']:g})" if results.get("baseline") \
        else f"{results['steps']} steps"
    print(
        f"\n{results['run_name']}: {results['status']} after {steps} "
        f"({results['train_seconds']:.0f}s, {results['samples_per_second']:.0f} samples/s)\n"
        f"test accuracy {results['test_accuracy']:.4f}  precision {results['test_precision']:.4f}"
        f"  recall {results['test_recall']:.4f}  f1 {results['test_f1']:.4f}\n"
        f"{format_confusion(results['confusion_matrix'])}\n"
        f"run folder: {run_dir}"
    )


# --- before Hydra starts --------------------------------------------------------------


def _value_of(overrides: list[str], key: str) -> str | None:
    """The last single value the overrides give `key` (as Hydra parses it)."""
    values = [o.value() for o in parse_overrides(overrides)
              if o.key_or_group == key and not o.is_sweep_override()]  # fmt: skip
    return None if not values or values[-1] is None else str(values[-1])


def resume_overrides(overrides: list[str], spec: str) -> list[str]:
    """`checkpoint=latest|PATH` as the checkpoint file plus the folder of the run it
    resumes (the run continues there, its Hydra files go to `.hydra/resumed_<time>/`)."""
    search = (
        _value_of(overrides, "runtime.checkpoint_dir")
        or _value_of(overrides, "runtime.experiments_dir")
        or default_experiments_dir()
    )
    path = checkpoints.find_checkpoint(spec, search)
    meta = checkpoints.read_metadata(path, require_resumable=True)
    run_dir = rundir.run_dir_of_checkpoint(path, meta.get("run_dir"))
    if run_dir is None:
        raise checkpoints.CheckpointError(
            f"{path}: its run folder {meta.get('run_dir')} is gone; put the checkpoint back "
            f"in <run folder>/{rundir.CHECKPOINT_DIR}/ to resume it"
        )
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    keys = [o.key_or_group for o in parse_overrides(overrides)]
    kept = [o for o, key in zip(overrides, keys, strict=True) if key != "checkpoint"]
    return [
        *kept,
        f"checkpoint={quote_value(str(path))}",
        f"hydra.run.dir={quote_value(str(run_dir))}",
        f"hydra.output_subdir={quote_value(f'{rundir.HYDRA_DIR}/resumed_{stamp}')}",
    ]


def split_command_line(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    """(Hydra's reading of the options, the options as given, the overrides), by Hydra's
    own argument parser; the overrides are one run of positional arguments."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    n = len(args.overrides)
    start = max((i for i in range(len(argv) - n + 1) if argv[i : i + n] == args.overrides),
                default=len(argv))  # fmt: skip
    return args, argv[:start] + argv[start + n :], list(args.overrides)


def prepare_overrides(argv: list[str], environ: dict[str, str]) -> list[str]:
    """The command line Hydra gets: options kept, overrides renamed and completed."""
    args, options, overrides = split_command_line(argv)
    if args.shell_completion:
        return argv
    multirun = args.multirun
    overrides = user_overrides(overrides, environ)
    check_override_keys(overrides)
    check_run_name(_value_of(overrides, "run_name"))  # before Hydra makes its folder
    spec = _value_of(overrides, "checkpoint") or "train"
    model = _value_of(overrides, "model")
    if spec != "train" and model in BASELINE_MODELS:
        raise ConfigError(f"checkpoint={spec}: a model={model} run writes no checkpoint, so "
                          "there is nothing to resume; rerun it (it takes seconds)")
    if spec != "train" and multirun:
        raise ConfigError(
            f"checkpoint={spec} resumes one run; to resume a sweep, rerun the same --multirun "
            "command with hydra.sweep.dir=<its folder>"
        )
    if spec != "train":
        overrides = resume_overrides(overrides, spec)
    elif multirun:
        # Job folders are named by the overrides that vary: leave out those given once.
        fixed = sorted(override_keys(overrides, sweeps=False))
        overrides.append(f"hydra.job.config.override_dirname.exclude_keys=[{','.join(fixed)}]")
    elif _value_of(overrides, "run_name") is None and not _shows_only(args):
        overrides.append(f"run_name={rundir.new_run_name()}")  # the folder's and the run's
    return [*options, *overrides]


def _shows_only(args: argparse.Namespace) -> bool:
    """Hydra options that show something and run nothing (no run needs a name then)."""
    return bool(args.help or args.hydra_help or args.cfg or args.info is not None)


def cli() -> None:
    """`python -m tokentango.train`: the command line prepared, then Hydra."""
    try:
        argv = prepare_overrides(sys.argv[1:], dict(os.environ))
    except (ConfigError, checkpoints.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *argv]
    main()
