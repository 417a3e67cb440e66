"""Does the encoder learn, or only the head? The [CLS] state's spread and the gradients.

    uv run python benchmarks/cls_spread.py [--steps 400] [--every 100] [override ...]
    uv run python benchmarks/cls_spread.py optimizer=sgd optimizer.lr=0.1 use_mlm=false
    uv run python benchmarks/cls_spread.py optimizer=sgd optimizer.lr=0.1 model.init_std=0.125

Takes a run's steps as `python -m tokentango.train` would with the same overrides (the
loop's own set-up, batches and schedule; `loop.train_step` spelled out, to read the
gradients before clipping) and every `--every` steps prints:

- cls spread: how much the final [CLS] state (the classifier's input) differs between
  articles: the std across 256 validation articles of each of its features, averaged
  over features, in units of the features' own scale (the final layer norm makes that
  ~1). Near 0 the classifier sees the same vector for every article and cannot do better
  than chance, whatever its head learns.
- |grad| blocks, |grad| head: the gradient norms (before clipping) of the encoder blocks and
  of the classification head, on that step's batch.
- val accuracy.

Written to find out why SGD stays at chance on the embedded corpus where Adam learns (see
the README's optimizer study): at BERT's init (model.init_std 0.02) the spread starts at
~0.004 and SGD's steps, proportional to the blocks' tiny gradients, barely raise it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from tokentango.config import compose_config
from tokentango.data import batch_tensors
from tokentango.device import autocast
from tokentango.evaluate import evaluate_split
from tokentango.loop import advance, next_batch, schedule_lr, set_up
from tokentango.model import compute_losses

PROBE_ROWS = 256


def cls_spread(model: torch.nn.Module, ids: torch.Tensor) -> float:
    """Mean over features of the across-article std of the final [CLS] state, relative to
    the state's root-mean-square feature (its scale)."""
    model.eval()
    with torch.no_grad():
        cls = model.encode(ids)[:, 0]
    model.train()
    scale = cls.pow(2).mean().sqrt()
    return float(cls.std(0).mean() / scale)


def grad_norm(model: torch.nn.Module, prefix: str) -> float:
    return float(sum(p.grad.pow(2).sum() for n, p in model.named_parameters()
                     if n.startswith(prefix) and p.grad is not None) ** 0.5)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. optimizer=sgd")
    args = parser.parse_args()
    cfg = compose_config(args.overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        training = set_up(cfg, Path(run_dir), "cls-spread")
    model, optimizer, val = training.model, training.optimizer, training.data.splits["val"]
    probe, _ = batch_tensors(val, np.arange(min(PROBE_ROWS, len(val.labels))), training.device)
    print(f"{' '.join(args.overrides) or 'defaults'}")
    print(f"{'step':>5} {'cls spread':>10} {'|grad| blocks':>13} {'|grad| head':>11} "
          f"{'val acc':>8}")  # fmt: skip
    print(f"{0:5d} {cls_spread(model, probe):10.4f}")
    model.train()
    for step in range(1, args.steps + 1):
        ids, labels = next_batch(training)
        schedule_lr(training)
        with autocast(training.device, cfg.runtime.precision):
            losses = compute_losses(model, ids, labels, cfg.use_mlm, cfg.objective.mask_prob,
                                    cfg.objective.mlm_weight)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        blocks, head = grad_norm(model, "blocks."), grad_norm(model, "cls_head.")
        if cfg.trainer.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip)
        optimizer.step()
        advance(training, losses, len(labels), 0.0)
        if step % args.every == 0:
            accuracy = evaluate_split(model, val, cfg.runtime.eval_batch_size, training.device,
                                      cfg.runtime.precision)["accuracy"]  # fmt: skip
            print(f"{step:5d} {cls_spread(model, probe):10.4f} {blocks:13.4f} {head:11.4f} "
                  f"{accuracy:8.4f}", flush=True)


if __name__ == "__main__":
    main()
