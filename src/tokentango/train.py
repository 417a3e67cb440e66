"""Entry point: `python -m tokentango.train [overrides]` (add `--multirun` for a sweep).

Compose (Hydra) -> build data, model, optimizer -> loop (masking, eval, early stopping,
checkpoints) -> write `metrics.jsonl` and `results.json` into the run folder.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from tokentango import checkpoints
from tokentango.config import (
    PROJECT_ROOT,
    Config,
    ConfigError,
    legacy_env_overrides,
    new_run_name,
    validate,
)
from tokentango.data import batch_tensors, epoch_batches, load_dataset, settings_from_config
from tokentango.evaluate import autocast, evaluate_split, format_confusion, resolve_device
from tokentango.model import build_model, compute_losses

log = logging.getLogger("tokentango.train")

RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def write_text_atomically(path: Path, text: str) -> None:
    checkpoints.write_atomically(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj: dict) -> None:
    write_text_atomically(path, json.dumps(obj, indent=2))


@dataclass
class LoopState:
    """Everything the loop carries between steps; saved in checkpoints for exact resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples: int = 0
    step_seconds: float = 0.0  # inside training steps only: the samples/s denominator
    seconds: float = 0.0  # the whole loop, evaluations and checkpoints included
    best_val_accuracy: float = -1.0
    best_step: int = 0
    evals_without_gain: int = 0
    reached_threshold: bool = False
    status: str = "running"
    cls_losses: list[float] = field(default_factory=list)
    mlm_losses: list[float] = field(default_factory=list)

    def resumable(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("cls_losses", "mlm_losses")}


def should_stop_early(state: LoopState, val_accuracy: float, es: DictConfig | None) -> bool:
    """Update best/patience bookkeeping; True once patience runs out past the threshold."""
    improved = val_accuracy > state.best_val_accuracy
    if improved:
        state.best_val_accuracy, state.best_step = val_accuracy, state.step
    if es is None:
        return False
    if val_accuracy >= es.threshold:
        state.reached_threshold = True
    if not state.reached_threshold:
        return False
    state.evals_without_gain = 0 if improved else state.evals_without_gain + 1
    return state.evals_without_gain >= es.patience


def keep_metrics_up_to(path: Path, step: int) -> None:
    """Drop metrics lines after `step`: a resumed run rewrites them exactly."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line torn by a kill mid-write
    write_text_atomically(path, "".join(f"{ln}\n" for ln in kept))


def train(
    cfg: DictConfig, run_dir: Path, run_name: str, resume_from: Path | None = None
) -> dict[str, Any]:
    """One training run in `run_dir` (from scratch, or from a checkpoint of this run);
    returns the results also written to results.json."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    precision = str(cfg.trainer.precision)
    data = load_dataset(settings_from_config(cfg), cfg.paths.data_dir)
    train_split, val_split = data.splits["train"], data.splits["val"]
    sizes = {k: data.stats[k] for k in ("train_rows", "val_rows", "test_rows", "vocab_size")}
    log.info("data: %s (%s)", sizes, "cache hit" if data.from_cache else "built")

    model = build_model(cfg.model, data.vocab_size).to(device)
    optimizer = instantiate(cfg.optimizer, params=model.parameters(), _convert_="all")
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %s: %.2fM parameters on %s (%s)", cfg.model.name, n_params / 1e6, device,
             precision)  # fmt: skip

    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else run_dir / CHECKPOINT_DIR
    tokenizer_json = data.tokenizer.to_str()  # saved in every checkpoint
    state = LoopState()
    if resume_from is not None:
        meta = checkpoints.load_checkpoint(model, resume_from, optimizer, map_location=device)
        if meta["state"].get("tokenizer") != tokenizer_json:
            raise checkpoints.CheckpointError(
                f"{resume_from} was trained on other token ids than the data gives now "
                f"({data.cache_dir.name}): the data file or its preprocessing changed"
            )
        state = LoopState(**meta["loop"])
        checkpoints.set_rng_state(meta["state"]["rng"])
        abandoned = checkpoints.set_aside_after(ckpt_dir, state.step, run_name)
        log.info("resumed from %s at step %d%s", resume_from, state.step,
                 f"; {len(abandoned)} later checkpoints renamed *.abandoned" if abandoned
                 else "")  # fmt: skip
    keep_metrics_up_to(run_dir / METRICS_FILE, state.step)

    t = cfg.trainer
    batches_per_epoch = len(epoch_batches(train_split.lengths, t.batch_size, cfg.seed, 0))
    total_steps = batches_per_epoch * t.epochs
    if t.max_steps is not None:
        total_steps = min(total_steps, t.max_steps)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    show_bar = t.progress_bar if t.progress_bar is not None else sys.stderr.isatty()
    bar = tqdm(total=total_steps, initial=state.step, disable=not show_bar, desc=run_name,
               dynamic_ncols=True)  # fmt: skip
    loop_started = time.perf_counter() - state.seconds

    def evaluate_and_save() -> None:
        val = evaluate_split(model, val_split, t.eval_batch_size, device, precision)
        if should_stop_early(state, val["accuracy"], t.early_stopping):
            state.status = "early_stopped"
        state.seconds = time.perf_counter() - loop_started
        mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
        record = {
            "step": state.step, "epoch": state.epoch, "samples": state.samples,
            "cls_loss": mean(state.cls_losses), "mlm_loss": mean(state.mlm_losses),
            "val_accuracy": val["accuracy"], "val_f1": val["f1"],
            "elapsed_seconds": round(state.seconds, 3),
        }  # fmt: skip
        with (run_dir / METRICS_FILE).open("a") as f:
            f.write(json.dumps(record) + "\n")
        checkpoints.save_checkpoint(
            ckpt_dir, model, optimizer,
            meta={
                "run_name": run_name, "run_dir": str(run_dir), "step": state.step,
                "epoch": state.epoch, "val_accuracy": val["accuracy"],
                "optimizer": optimizer_name(cfg), "use_mlm": cfg.use_mlm,
                "cls_losses": state.cls_losses, "mlm_losses": state.mlm_losses,
                "loop": state.resumable(), "config": resolved,
                "data_cache": data.cache_dir.name,
            },
            state={"rng": checkpoints.rng_state(), "tokenizer": tokenizer_json},
        )  # fmt: skip
        checkpoints.prune_checkpoints(ckpt_dir, t.keep_last, run_name)
        state.cls_losses, state.mlm_losses = [], []
        bar.set_postfix(loss=f"{record['cls_loss']:.3f}", val_acc=f"{val['accuracy']:.3f}")
        mlm = f" mlm_loss {record['mlm_loss']:.4f}" if record["mlm_loss"] is not None else ""
        log.info("step %d: cls_loss %.4f%s val_accuracy %.4f", state.step, record["cls_loss"],
                 mlm, val["accuracy"])  # fmt: skip

    model.train()
    batches, batches_epoch = [], -1
    while state.step < total_steps and state.status == "running":
        if batches_epoch != state.epoch:
            batches = epoch_batches(train_split.lengths, t.batch_size, cfg.seed, state.epoch)
            batches_epoch = state.epoch
        ids, labels = batch_tensors(train_split, batches[state.batch_in_epoch], device)
        step_started = time.perf_counter()
        with autocast(device, precision):
            losses = compute_losses(model, ids, labels, cfg.use_mlm, cfg.objective.mask_prob,
                                    cfg.objective.mlm_weight)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        if t.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        state.step_seconds += time.perf_counter() - step_started
        state.cls_losses.append(losses.cls.item())
        if losses.mlm is not None:
            state.mlm_losses.append(losses.mlm.item())
        state.step += 1
        state.samples += len(labels)
        state.batch_in_epoch += 1
        if state.batch_in_epoch == batches_per_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        bar.update(1)
        if state.step % t.eval_every == 0 or state.step == total_steps:
            evaluate_and_save()
    bar.close()
    if state.status == "early_stopped":
        log.info("early stop at step %d: no gain for %d evaluations past %.2f", state.step,
                 t.early_stopping.patience, t.early_stopping.threshold)  # fmt: skip

    # The final figures: the best checkpoint on validation, on the whole test split.
    best = checkpoints.best_checkpoint(ckpt_dir, run_name)
    checkpoints.load_checkpoint(model, best, map_location=device)
    test = evaluate_split(model, data.splits["test"], t.eval_batch_size, device, precision)
    results = {
        "status": "completed" if state.status == "running" else state.status,
        "run_name": run_name,
        "test_accuracy": test["accuracy"],
        "test_precision": test["precision"],
        "test_recall": test["recall"],
        "test_f1": test["f1"],
        "confusion_matrix": test["confusion_matrix"],
        "test_rows": test["n"],
        "optimizer": optimizer_name(cfg),
        "lr": cfg.optimizer.lr,
        "use_mlm": cfg.use_mlm,
        "seed": cfg.seed,
        "train_frac": cfg.train_frac,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "steps": state.step,
        "epochs_completed": state.epoch,
        "samples": state.samples,
        "best_step": state.best_step,
        "best_val_accuracy": state.best_val_accuracy,
        "best_checkpoint": str(best),
        "train_seconds": round(state.seconds, 3),
        "samples_per_second": round(state.samples / max(state.step_seconds, 1e-9), 2),
        "device": str(device),
        "precision": precision,
        "parameters": n_params,
        "config": resolved,
    }
    write_json(run_dir / RESULTS_FILE, results)
    return results


def optimizer_name(cfg: DictConfig) -> str:
    """`adam` for torch.optim.Adam: the short name the report and the CLIs show."""
    return str(cfg.optimizer._target_).rsplit(".", 1)[-1].lower()


_TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_(?P<name>.+)$")


def pick_run_name(cfg: DictConfig, run_dir: Path, mode: RunMode) -> str:
    """The given run_name, else the one the run folder was named with, else a fresh one."""
    if cfg.run_name:
        return cfg.run_name
    match = _TIMESTAMPED.match(run_dir.name)
    if mode == RunMode.RUN and match:
        return match["name"]
    return new_run_name()


def print_results(results: dict, run_dir: Path) -> None:
    print(
        f"\n{results['run_name']}: {results['status']} after {results['steps']} steps "
        f"({results['train_seconds']:.0f}s, {results['samples_per_second']:.0f} samples/s)\n"
        f"test accuracy {results['test_accuracy']:.4f}  precision {results['test_precision']:.4f}"
        f"  recall {results['test_recall']:.4f}  f1 {results['test_f1']:.4f}\n"
        f"{format_confusion(results['confusion_matrix'])}\n"
        f"run folder: {run_dir}"
    )


# What a resumed run may change from the command line; all else is the run's own config.
RESUME_MAY_CHANGE = (
    "device", "trainer.max_steps", "trainer.epochs", "trainer.progress_bar",
    "trainer.eval_batch_size", "paths.data_dir",
)  # fmt: skip
DONE = ("completed", "early_stopped")


def resume_config(cfg: DictConfig, meta: dict, task_overrides: list[str]) -> DictConfig:
    """The config a checkpoint was trained with, plus the few runtime keys the command
    line set explicitly (to extend training or move it to another device)."""
    resumed = OmegaConf.merge(OmegaConf.structured(Config), meta["config"])
    given = {o.split("=", 1)[0].lstrip("+~") for o in task_overrides}
    for key in RESUME_MAY_CHANGE:
        if key in given:
            OmegaConf.update(resumed, key, OmegaConf.select(cfg, key), merge=False)
    ignored = sorted(given - set(RESUME_MAY_CHANGE) - {"checkpoint", "checkpoint_dir"})
    if ignored:
        log.warning(
            "resuming %s with its own config: ignored %s (only %s may change)",
            meta["run_name"],
            ", ".join(ignored),
            ", ".join(RESUME_MAY_CHANGE),
        )
    if meta["loop"].get("status") == "early_stopped":
        log.warning("%s stopped early at step %d: there is nothing to extend",
                    meta["run_name"], meta["step"])  # fmt: skip
    resumed.checkpoint = cfg.checkpoint
    return resumed


def previous_results(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / RESULTS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def keep_own_hydra_config(run_dir: Path, own_config: dict | None) -> None:
    """A sweep rerun into existing job folders: Hydra has just rewritten `.hydra/` with the
    rerun's config; move that to `.hydra/resumed_<time>/` and put back the config the run
    really has, so the report groups it by what it ran."""
    hydra_dir = run_dir / ".hydra"
    if own_config is None or not (hydra_dir / "config.yaml").exists():
        return
    aside = hydra_dir / f"resumed_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    aside.mkdir(exist_ok=True)
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        if (hydra_dir / name).exists():
            shutil.copy2(hydra_dir / name, aside / name)
    write_text_atomically(hydra_dir / "config.yaml", OmegaConf.to_yaml(own_config))


def record_failure(run_dir: Path, previous: dict | None, failure: dict) -> None:
    """results.json says failed, unless it holds a finished run's figures (a failed attempt
    to extend it): those are kept and the failure goes beside them."""
    path = run_dir / RESULTS_FILE
    if previous and previous.get("status") in DONE:
        path = run_dir / f"results.failed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, failure)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        validate(cfg)
        resolve_device(cfg.device)
        previous = previous_results(run_dir)
        # cli() turns checkpoint=latest|PATH into a file of the run it resumes, and points
        # Hydra at that run's folder; otherwise the folder may already hold this job
        # (a sweep rerun into its own folder): done, or resumable from its newest checkpoint.
        rerun = cfg.checkpoint == "train"
        if rerun and previous and previous.get("status") in DONE:
            keep_own_hydra_config(run_dir, previous.get("config"))
            print(f"{run_dir.name}: already {previous['status']}, skipped")
            return previous.get("test_accuracy")
        ckpt_dir = cfg.checkpoint_dir or run_dir / CHECKPOINT_DIR
        resume_from = (
            # In a shared checkpoint_dir, only this folder's own checkpoints count.
            checkpoints.latest_checkpoint(ckpt_dir, run_dir=run_dir if cfg.checkpoint_dir else None)
            if rerun
            else Path(cfg.checkpoint)
        )  # fmt: skip
        run_name = pick_run_name(cfg, run_dir, hydra_cfg.mode)
        if resume_from is not None:
            meta = checkpoints.read_metadata(resume_from, require_resumable=True)
            cfg = resume_config(cfg, meta, list(hydra_cfg.overrides.task))
            run_name = meta["run_name"]
            if rerun:
                keep_own_hydra_config(run_dir, meta["config"])
    except (ConfigError, checkpoints.CheckpointError) as err:
        # Nothing was trained: leave no half-made run folder behind.
        _remove_empty_run_dir(run_dir)
        if hydra_cfg.mode == RunMode.RUN:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise
    try:
        results = train(cfg, run_dir, run_name, resume_from)
    except Exception as err:
        # Record the failure where the report looks, then let Hydra go on with the sweep.
        record_failure(run_dir, previous, {
            "status": "failed", "run_name": run_name, "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(), "optimizer": optimizer_name(cfg),
            "use_mlm": cfg.use_mlm, "seed": cfg.seed, "train_frac": cfg.train_frac,
        })  # fmt: skip
        raise
    print_results(results, run_dir)
    return results["test_accuracy"]


def _remove_empty_run_dir(run_dir: Path) -> None:
    """Remove a run folder that holds only what Hydra wrote before the job started."""
    if not run_dir.is_dir():
        return
    contents = {p.name for p in run_dir.iterdir()}
    if contents <= {".hydra", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def _quote(value: str) -> str:
    """A value Hydra's override parser reads as one plain string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_folder_of(checkpoint: Path, meta: dict) -> Path:
    """The run folder a checkpoint resumes into: the one it sits in (a copied or moved run
    folder still works), else the folder it recorded."""
    here = checkpoint.resolve().parent.parent
    if checkpoint.resolve().parent.name == CHECKPOINT_DIR and (here / ".hydra").is_dir():
        return here
    recorded = Path(meta.get("run_dir", ""))
    if meta.get("run_dir") and recorded.is_dir():
        return recorded
    raise checkpoints.CheckpointError(
        f"{checkpoint}: its run folder {meta.get('run_dir')} is gone; put the checkpoint back "
        "in <run folder>/checkpoints/ to resume it"
    )


def prepare_argv(argv: list[str], environ: dict[str, str]) -> list[str]:
    """The original's environment variables as defaults, and checkpoint=latest|PATH turned
    into the checkpoint file plus the folder of the run it resumes."""
    argv = [*legacy_env_overrides(environ, argv), *argv]
    given = dict(a.lstrip("+").split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    spec = given.get("checkpoint", "train")
    if spec == "train":
        return argv
    if "-m" in argv or "--multirun" in argv:
        raise ConfigError(
            f"checkpoint={spec} resumes one run; to resume a sweep, rerun the same --multirun "
            "command with hydra.sweep.dir=<its folder>"
        )
    search = given.get("checkpoint_dir") or given.get("paths.experiments_dir")
    path = checkpoints.find_checkpoint(spec, search or PROJECT_ROOT / "experiments")
    meta = checkpoints.read_metadata(path, require_resumable=True)
    run_dir = run_folder_of(path, meta)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    argv = [a for a in argv if not a.lstrip("+").startswith("checkpoint=")]
    return [
        *argv, f"checkpoint={_quote(str(path))}", f"hydra.run.dir={_quote(str(run_dir))}",
        f"hydra.output_subdir={_quote(f'.hydra/resumed_{stamp}')}",
    ]  # fmt: skip


def cli() -> None:
    """`python -m tokentango.train`: argv and environment prepared, then Hydra."""
    try:
        argv = prepare_argv(sys.argv[1:], dict(os.environ))
    except (ConfigError, checkpoints.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *argv]
    main()


if __name__ == "__main__":
    cli()
