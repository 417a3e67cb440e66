"""The training loop as plain functions: `set_up` -> (`next_batch` -> `train_step` ->
`advance`)* with `evaluate_and_checkpoint` every `trainer.eval_every` steps ->
`final_results`. `train` strings them together for one run, reporting each step, evaluation
and the results to the run's tracker (tokentango.tracking) and stopping cleanly on a signal
(tokentango.interrupt); a benchmark can call the same pieces.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from tokentango import checkpoints, rundir, tracking
from tokentango.config import ConfigError
from tokentango.data import (
    Dataset,
    batch_tensors,
    describe,
    epoch_batches,
    load_run_dataset,
    split_summary,
    subsample_train,
)
from tokentango.device import (
    autocast,
    keep_freed_memory,
    resolve_device,
    seconds_since_launch,
    set_threads,
)
from tokentango.evaluate import evaluate_split
from tokentango.interrupt import StopNow, StopRequests
from tokentango.model import BertClassifier, Losses, build_model, compute_losses
from tokentango.rng import rng_state, seed_everything, set_rng_state

log = logging.getLogger("tokentango.loop")


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


@dataclass
class Training:
    """What one run trains with, built once by `set_up`."""

    cfg: DictConfig
    run_dir: Path
    run_name: str
    data: Dataset
    model: BertClassifier
    optimizer: torch.optim.Optimizer
    device: torch.device
    checkpoint_dir: Path
    state: LoopState
    total_steps: int
    batches_per_epoch: int
    train_rows_available: int  # the training split's rows before data.train_rows cut it
    epoch_order: tuple[int, list[np.ndarray]] = (-1, [])  # (epoch, its batches)
    checkpointed_step: int = -1  # the step of the newest checkpoint this run has


def optimizer_name(cfg: DictConfig) -> str:
    """`adam` for torch.optim.Adam: the short name the report and the CLIs show."""
    return str(cfg.optimizer._target_).rsplit(".", 1)[-1].lower()


def run_identity(cfg: DictConfig, run_name: str) -> dict[str, Any]:
    """The run and the settings the report groups it by: what a results.json of any status
    names (the contract), so a failed or interrupted run is listed in its group too."""
    return {"run_name": run_name, "optimizer": optimizer_name(cfg), "use_mlm": cfg.use_mlm,
            "seed": cfg.seed, "train_frac": cfg.train_frac}  # fmt: skip


def set_up(
    cfg: DictConfig, run_dir: Path, run_name: str, resume_from: Path | None = None
) -> Training:
    """Seed, data, model and optimizer for a run; from a checkpoint of it when given."""
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    set_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    # A resumed run reads the cache it was trained on while that is there.
    trained_on = resume_from and checkpoints.read_metadata(resume_from).get("data_cache")
    data = load_run_dataset(cfg, trained_on)
    log.info("data (%s %s):\n%s", "cache" if data.from_cache else "built into",
             data.cache_dir, describe(data.stats))  # fmt: skip
    available = len(data.splits["train"])
    data = subsample_train(data, cfg.data.train_rows, cfg.seed)  # same seed, same rows
    if cfg.data.train_rows is not None:
        counts = np.bincount(np.asarray(data.splits["train"].labels), minlength=2)
        log.info("data.train_rows=%d: training on %d of the %d training rows (%d reliable, "
                 "%d fake; drawn with seed %d)", cfg.data.train_rows, len(data.splits["train"]),
                 available, counts[0], counts[1], cfg.seed)  # fmt: skip
    keep_freed_memory()  # after the data: a step's activations are reused, not re-faulted
    model = build_model(cfg.model, data.vocab_size, cfg.data.max_length).to(device)
    optimizer = instantiate(cfg.optimizer, params=model.parameters(), _convert_="all")
    log.info("model %s: %.2fM parameters on %s (%s, torch threads: %d)", cfg.model.name,
             sum(p.numel() for p in model.parameters()) / 1e6, device,
             cfg.runtime.precision, torch.get_num_threads())  # fmt: skip
    t = cfg.trainer
    n_train = len(data.splits["train"])
    if t.batch_size > n_train:  # every batch would be the whole split: surely a slip
        path = data.stats.get("settings", {}).get("path")
        cut = "" if cfg.data.train_rows is None else f", data.train_rows {cfg.data.train_rows}"
        raise ConfigError(f"invalid config value trainer.batch_size={t.batch_size}: larger than "
                          f"the {n_train} training rows of {path} (train_frac {cfg.train_frac}"
                          f"{cut}); use at most {n_train}")
    per_epoch = len(epoch_batches(data.splits["train"].lengths, t.batch_size, cfg.seed, 0))
    total = per_epoch * t.epochs if t.max_steps is None else min(per_epoch * t.epochs, t.max_steps)
    training = Training(
        cfg=cfg, run_dir=run_dir, run_name=run_name, data=data, model=model,
        optimizer=optimizer, device=device,
        checkpoint_dir=rundir.checkpoint_dir(run_dir, cfg.runtime.checkpoint_dir),
        state=LoopState(), total_steps=total, batches_per_epoch=per_epoch,
        train_rows_available=available,
    )  # fmt: skip
    if not cfg.runtime.checkpoint_dir:  # its own folder: a killed write's leftovers go
        checkpoints.remove_unfinished_writes(training.checkpoint_dir)
    if resume_from is not None:
        training.state = resume_state(training, resume_from)
        training.checkpointed_step = training.state.step
    rundir.keep_metrics_up_to(run_dir, training.state.step)
    return training


def resume_state(training: Training, checkpoint: Path) -> LoopState:
    """Load a checkpoint of this run into the model and optimizer; its loop state."""
    meta = checkpoints.load_checkpoint(training.model, checkpoint, training.optimizer,
                                       map_location=training.device)  # fmt: skip
    checkpoints.require_same_tokenizer(checkpoint, meta["state"].get("tokenizer"), training.data)
    state = LoopState(**meta["loop"])
    if meta.get("interrupted"):  # saved between evaluations: the interval's losses so far
        state.cls_losses, state.mlm_losses = meta["cls_losses"], meta["mlm_losses"]
    set_rng_state(meta["state"]["rng"])
    abandoned = checkpoints.set_aside_after(training.checkpoint_dir, state.step,
                                            training.run_name)  # fmt: skip
    log.info("resumed from %s at step %d%s", checkpoint, state.step,
             f"; {len(abandoned)} later checkpoints renamed *.abandoned" if abandoned
             else "")  # fmt: skip
    return state


def next_batch(training: Training) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch at the state's position in the data order, a function of (seed, epoch)."""
    state, cfg = training.state, training.cfg
    if training.epoch_order[0] != state.epoch:
        lengths = training.data.splits["train"].lengths
        order = epoch_batches(lengths, cfg.trainer.batch_size, cfg.seed, state.epoch)
        training.epoch_order = (state.epoch, order)
    index = training.epoch_order[1][state.batch_in_epoch]
    return batch_tensors(training.data.splits["train"], index, training.device)


def train_step(
    model: BertClassifier, optimizer: torch.optim.Optimizer, ids: torch.Tensor,
    labels: torch.Tensor, cfg: DictConfig, device: torch.device,
) -> Losses:  # fmt: skip
    """One optimizer step on one batch: losses (under the run's precision), backward,
    gradient clipping, update."""
    with autocast(device, cfg.runtime.precision):
        losses = compute_losses(model, ids, labels, cfg.use_mlm, cfg.objective.mask_prob,
                                cfg.objective.mlm_weight)  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    if cfg.trainer.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip)
    optimizer.step()
    return losses


def lr_factor(step: int, total_steps: int, schedule: DictConfig) -> float:
    """The fraction of optimizer.lr for the step after `step` steps: linear warm-up, then
    constant, cosine or linear decay to `min_lr_ratio` at `total_steps`. A function of the
    step alone, so a resumed run continues the same schedule."""
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    if schedule.name == "constant":
        return 1.0
    warmup = schedule.warmup_steps
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    if schedule.name == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay = 1.0 - progress
    return schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * decay


def schedule_lr(training: Training) -> float:
    """Set the learning rate of the coming step; returns it."""
    cfg = training.cfg
    lr = cfg.optimizer.lr * lr_factor(training.state.step, training.total_steps, cfg.scheduler)
    for group in training.optimizer.param_groups:
        group["lr"] = lr
    return lr


class NonFiniteLoss(FloatingPointError):
    """Training diverged: a loss (or, at a checkpoint, a weight) is NaN or infinite. Raised
    before anything of the broken state is written, so the run's newest checkpoint is its
    last good one; the run fails (results.json names the step) and a sweep goes on."""


def _lr(training: Training) -> str:
    """The learning rate of the step, and the configured one when a schedule scaled it."""
    lr, configured = training.optimizer.param_groups[0]["lr"], training.cfg.optimizer.lr
    return f"{lr:g}" if lr == configured else f"{lr:g} (optimizer.lr={configured:g})"


def check_finite_losses(training: Training, cls_loss: float, mlm_loss: float | None) -> None:
    """NonFiniteLoss naming the step, the losses and the learning rate unless both are finite."""
    if math.isfinite(cls_loss) and (mlm_loss is None or math.isfinite(mlm_loss)):
        return
    step = training.state.step + 1
    mlm = "" if mlm_loss is None else f", mlm_loss {mlm_loss}"
    raise NonFiniteLoss(
        f"loss is not finite at step {step} (cls_loss {cls_loss}{mlm}) with learning rate "
        f"{_lr(training)}; {_last_good(training)}"
    )


def check_finite_weights(training: Training) -> None:
    """NonFiniteLoss unless every weight is finite: checked before a checkpoint is written
    (once per evaluation), since a finite loss can still end in an update to NaN."""
    with torch.no_grad():
        bad = [n for n, p in training.model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteLoss(
            f"weights are not finite after step {training.state.step} ({', '.join(bad[:3])}) "
            f"with learning rate {_lr(training)}; {_last_good(training)}"
        )


def _last_good(training: Training) -> str:
    if training.checkpointed_step > 0:
        return f"the last good checkpoint is at step {training.checkpointed_step}"
    return "no checkpoint was written"


def advance(training: Training, losses: Losses, n_samples: int, seconds: float) -> None:
    """Count a finished step: losses, samples, time and the position in the data order.
    A NaN or infinite loss ends the run here (NonFiniteLoss), before it is counted."""
    state = training.state
    cls_loss = losses.cls.item()
    mlm_loss = losses.mlm.item() if losses.mlm is not None else None
    check_finite_losses(training, cls_loss, mlm_loss)
    state.step_seconds += seconds
    state.cls_losses.append(cls_loss)
    if mlm_loss is not None:
        state.mlm_losses.append(mlm_loss)
    state.step += 1
    state.samples += n_samples
    state.batch_in_epoch += 1
    if state.batch_in_epoch == training.batches_per_epoch:
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0


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


def step_figures(training: Training, samples_per_second: float) -> dict[str, float | None]:
    """The step just counted, for the trackers: its losses, learning rate and samples/s."""
    state = training.state
    return {"cls_loss": state.cls_losses[-1],
            "mlm_loss": state.mlm_losses[-1] if state.mlm_losses else None,
            "lr": training.optimizer.param_groups[0]["lr"],
            "samples_per_second": samples_per_second}  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def save_checkpoint(training: Training, val_accuracy: float | None) -> Path:
    """Everything to resume this run exactly at its current step (format: checkpoints)."""
    cfg, state = training.cfg, training.state
    path = checkpoints.save_checkpoint(
        training.checkpoint_dir, training.model, training.optimizer,
        meta={
            "run_name": training.run_name, "run_dir": str(training.run_dir),
            "step": state.step, "epoch": state.epoch, "val_accuracy": val_accuracy,
            "optimizer": optimizer_name(cfg), "use_mlm": cfg.use_mlm,
            "cls_losses": state.cls_losses, "mlm_losses": state.mlm_losses,
            "loop": state.resumable(), "config": OmegaConf.to_container(cfg, resolve=True),
            "data_cache": training.data.cache_dir.name,
            "interrupted": val_accuracy is None,
        },
        state={"rng": rng_state(), "tokenizer": training.data.tokenizer.to_str()},
    )  # fmt: skip
    training.checkpointed_step = state.step
    return path


def save_interrupted(training: Training, signum: int) -> None:
    """On a stop signal: a checkpoint of the steps since the last one, without evaluating
    (an extra evaluation would change early stopping and the best-checkpoint choice, so
    the resumed run would not end as an uninterrupted one), and results.json saying
    `interrupted`."""
    state = training.state
    if state.step > max(training.checkpointed_step, 0):
        checkpoint = str(save_checkpoint(training, None))
    else:  # nothing new since the newest checkpoint (or nothing trained yet)
        newest = checkpoints.latest_checkpoint(training.checkpoint_dir, training.run_name)
        checkpoint = str(newest) if newest else None
    rundir.record_unfinished(training.run_dir, {
        "status": rundir.INTERRUPTED, **run_identity(training.cfg, training.run_name),
        "signal": signal.Signals(signum).name, "steps": state.step,
        "total_steps": training.total_steps, "checkpoint": checkpoint,
        "train_seconds": round(state.seconds, 3),
    })  # fmt: skip
    log.warning("interrupted at step %d of %d (%s)", state.step, training.total_steps,
                f"checkpoint {checkpoint}" if checkpoint else "no checkpoint yet")  # fmt: skip


def evaluate_and_checkpoint(training: Training, loop_started: float) -> dict[str, Any]:
    """Validation figures appended to metrics.jsonl, a checkpoint, early-stopping
    bookkeeping; returns the metrics record. Weights that are no longer finite end the run
    (NonFiniteLoss) before any of that is written."""
    cfg, state = training.cfg, training.state
    check_finite_weights(training)  # before anything of a broken state is written
    val = evaluate_split(training.model, training.data.splits["val"],
                         cfg.runtime.eval_batch_size, training.device,
                         cfg.runtime.precision)  # fmt: skip
    if should_stop_early(state, val["accuracy"], cfg.trainer.early_stopping):
        state.status = rundir.EARLY_STOPPED
    state.seconds = time.perf_counter() - loop_started
    record = {
        "step": state.step, "epoch": state.epoch, "samples": state.samples,
        "cls_loss": _mean(state.cls_losses), "mlm_loss": _mean(state.mlm_losses),
        "val_accuracy": val["accuracy"], "val_f1": val["f1"],
        "lr": training.optimizer.param_groups[0]["lr"],
        "elapsed_seconds": round(state.seconds, 3),
    }  # fmt: skip
    rundir.append_metrics(training.run_dir, record)
    save_checkpoint(training, val["accuracy"])
    checkpoints.prune_checkpoints(training.checkpoint_dir, cfg.trainer.keep_last,
                                  training.run_name)  # fmt: skip
    state.cls_losses, state.mlm_losses = [], []
    mlm = f" mlm_loss {record['mlm_loss']:.4f}" if record["mlm_loss"] is not None else ""
    log.info("step %d: cls_loss %.4f%s val_accuracy %.4f", state.step, record["cls_loss"],
             mlm, val["accuracy"])  # fmt: skip
    return record


def final_results(training: Training) -> dict[str, Any]:
    """The best-on-validation checkpoint scored on the whole test split, and the run's
    numbers: what results.json holds."""
    cfg, state = training.cfg, training.state
    best = checkpoints.best_checkpoint(training.checkpoint_dir, training.run_name)
    checkpoints.load_checkpoint(training.model, best, map_location=training.device)
    test = evaluate_split(training.model, training.data.splits["test"],
                          cfg.runtime.eval_batch_size, training.device,
                          cfg.runtime.precision)  # fmt: skip
    # The original's source-vs-masked question: the same checkpoint on BERT-masked test
    # input (the run's mask_prob, the masks `python -m tokentango.evaluate --masked` uses).
    masked = evaluate_split(training.model, training.data.splits["test"],
                            cfg.runtime.eval_batch_size, training.device, cfg.runtime.precision,
                            mask_prob=cfg.objective.mask_prob)  # fmt: skip
    return {
        "status": rundir.COMPLETED if state.status == "running" else state.status,
        "run_name": training.run_name,
        "test_accuracy": test["accuracy"], "test_precision": test["precision"],
        "test_recall": test["recall"], "test_f1": test["f1"],
        "masked_test_accuracy": masked["accuracy"], "mask_prob": cfg.objective.mask_prob,
        "confusion_matrix": test["confusion_matrix"], "test_rows": test["n"],
        "optimizer": optimizer_name(cfg), "lr": cfg.optimizer.lr, "use_mlm": cfg.use_mlm,
        "seed": cfg.seed, "train_frac": cfg.train_frac, "model": cfg.model.name,
        "data": cfg.data.name, **split_summary(training.data),
        "train_rows": len(training.data.splits["train"]),
        "train_rows_available": training.train_rows_available,
        "steps": state.step, "epochs_completed": state.epoch,
        "samples": state.samples, "best_step": state.best_step,
        "best_val_accuracy": state.best_val_accuracy, "best_checkpoint": str(best),
        "train_seconds": round(state.seconds, 3),
        "samples_per_second": round(state.samples / max(state.step_seconds, 1e-9), 2),
        "device": str(training.device), "precision": str(cfg.runtime.precision),
        "parameters": sum(p.numel() for p in training.model.parameters()),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }  # fmt: skip


_start_up_logged = False


def log_start_up() -> None:
    """Log the seconds from launch to the process's first training step (start-up: imports,
    composition, data, model), once: a local sweep's later jobs share the process."""
    global _start_up_logged
    if not _start_up_logged and (launched := seconds_since_launch()) is not None:
        log.info("first step done %.1f s after launch", launched)
        _start_up_logged = True


def run_steps(training: Training, stops: StopRequests, tracker: tracking.Tracker) -> None:
    """Train until the budget is spent or early stopping ends the run, evaluating and
    checkpointing every `trainer.eval_every` steps, each step and evaluation also sent to
    `tracker`; a stop signal ends it between steps."""
    cfg, state = training.cfg, training.state
    show_bar = cfg.runtime.progress_bar
    bar = tqdm(total=training.total_steps, initial=state.step, desc=training.run_name,
               dynamic_ncols=True,
               disable=not (sys.stderr.isatty() if show_bar is None else show_bar))  # fmt: skip
    loop_started, started_at = time.perf_counter() - state.seconds, state.step
    training.model.train()
    with stops.deferred(), bar:
        while state.step < training.total_steps and state.status == "running":
            if stops.signum is not None:
                state.seconds = time.perf_counter() - loop_started
                raise StopNow(stops.signum)
            ids, labels = next_batch(training)
            schedule_lr(training)
            step_started = time.perf_counter()
            losses = train_step(training.model, training.optimizer, ids, labels, cfg,
                                training.device)  # fmt: skip
            seconds = time.perf_counter() - step_started
            advance(training, losses, len(labels), seconds)
            tracker.log_step(state.step, step_figures(training, len(labels) / seconds))
            if state.step == started_at + 1:
                log_start_up()
            bar.update(1)
            if state.step % cfg.trainer.eval_every == 0 or state.step == training.total_steps:
                record = evaluate_and_checkpoint(training, loop_started)
                tracker.log_eval(state.step, record)
                bar.set_postfix(loss=f"{record['cls_loss']:.3f}",
                                val_acc=f"{record['val_accuracy']:.3f}")  # fmt: skip
    if state.status == rundir.EARLY_STOPPED:
        es = cfg.trainer.early_stopping
        log.info("early stop at step %d: no gain for %d evaluations past %.2f", state.step,
                 es.patience, es.threshold)  # fmt: skip


def train(
    cfg: DictConfig, run_dir: Path, run_name: str, resume_from: Path | None = None
) -> dict[str, Any]:
    """One training run in `run_dir` (from scratch, or from a checkpoint of this run);
    returns the results also written to results.json. A stop signal ends it (between
    steps while training) with a checkpoint, status interrupted and RunInterrupted
    (tokentango.interrupt); the tracker is closed whatever happens."""
    training = None
    with StopRequests() as stops:
        try:
            training = set_up(cfg, Path(run_dir), run_name, resume_from)
            with tracking.tracked(cfg, training.run_dir, run_name, training.state.step) as tracker:
                run_steps(training, stops, tracker)
                results = final_results(training)
                rundir.write_json(Path(run_dir) / rundir.RESULTS_FILE, results)
                stops.restore()  # finished: a signal now only cuts the tracker's last call
                tracker.finish(results)
        except StopNow as stop:
            try:
                if training is not None:
                    save_interrupted(training, stop.signum)
                elif rundir.read_results(run_dir) is None:  # stopped while setting up
                    rundir.record_unfinished(run_dir, {
                        "status": rundir.INTERRUPTED, **run_identity(cfg, run_name),
                        "signal": signal.Signals(stop.signum).name, "steps": 0,
                        "checkpoint": None,
                    })  # fmt: skip
            except Exception:  # the signal must still be handed on (a requeue)
                log.exception("could not record the interruption")
            stops.hand_on(training.state.step if training else 0)
    return results
