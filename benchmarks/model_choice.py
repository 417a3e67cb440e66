"""Which model preset learns most per second of CPU? Side by side, same data, same budget.

    uv run python benchmarks/model_choice.py [--seconds 150] [--presets small original]

Trains each preset (with the default objective and optimizer) for the same wall-clock
budget of training steps, evaluating on the validation split every `--eval-every` steps,
and prints samples/s and the validation accuracy reached. Figures come from one process,
one after the other, so the ratio between presets is what to read, not the absolute speed.
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra.utils import instantiate

from tokentango.config import compose_config
from tokentango.data import batch_tensors, epoch_batches, load_dataset, settings_from_config
from tokentango.evaluate import evaluate_split
from tokentango.model import build_model, compute_losses
from tokentango.train import seed_everything


def run(preset: str, use_mlm: bool, seconds: float, eval_every: int, overrides: list[str]) -> dict:
    cfg = compose_config([f"model={preset}", f"use_mlm={use_mlm}", *overrides])
    seed_everything(cfg.seed)
    data = load_dataset(settings_from_config(cfg), cfg.paths.data_dir)
    model = build_model(cfg.model, data.vocab_size)
    optimizer = instantiate(cfg.optimizer, params=model.parameters(), _convert_="all")
    train, val = data.splits["train"], data.splits["val"]
    step, samples, spent, curve, epoch = 0, 0, 0.0, [], 0
    while spent < seconds:
        for index in epoch_batches(train.lengths, cfg.trainer.batch_size, cfg.seed, epoch):
            ids, labels = batch_tensors(train, index)
            started = time.perf_counter()
            losses = compute_losses(model, ids, labels, cfg.use_mlm, cfg.objective.mask_prob,
                                    cfg.objective.mlm_weight)  # fmt: skip
            optimizer.zero_grad()
            losses.total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            spent += time.perf_counter() - started
            step, samples = step + 1, samples + len(index)
            if step % eval_every == 0:
                acc = evaluate_split(model, val, 256, torch.device("cpu"))["accuracy"]
                curve.append((step, round(spent), acc))
                print(f"  {preset:9s} mlm={use_mlm!s:5s} step {step:5d}  {spent:6.0f}s  "
                      f"val_accuracy {acc:.4f}", flush=True)  # fmt: skip
            if spent >= seconds:
                break
        epoch += 1
    final = evaluate_split(model, val, 256, torch.device("cpu"))["accuracy"]
    n_params = sum(p.numel() for p in model.parameters())
    return {"preset": preset, "use_mlm": use_mlm, "params": n_params,
            "steps": step, "samples_per_s": samples / spent, "val_accuracy": final,
            "best_val_accuracy": max([final] + [c[2] for c in curve])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--presets", nargs="+", default=["small", "original"])
    parser.add_argument("--use-mlm", nargs="+", default=["true"], choices=["true", "false"])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. use_mlm=false")
    args = parser.parse_args()
    rows = [run(p, m == "true", args.seconds, args.eval_every, args.overrides)
            for p in args.presets for m in args.use_mlm]  # fmt: skip
    print(
        f"\nsame budget: {args.seconds:.0f}s of training steps each, {args.overrides or 'defaults'}"
    )
    print(f"{'preset':10s}{'use_mlm':>8s}{'params':>10s}{'steps':>8s}{'samples/s':>11s}"
          f"{'val acc':>9s}{'best':>7s}")  # fmt: skip
    for r in rows:
        print(f"{r['preset']:10s}{r['use_mlm']!s:>8s}{r['params']:>10,d}{r['steps']:>8d}{r['samples_per_s']:>11.1f}"
              f"{r['val_accuracy']:>9.4f}{r['best_val_accuracy']:>7.4f}")  # fmt: skip
    base = rows[0]
    for r in rows[1:]:
        print(
            f"{base['preset']} / {r['preset']} samples/s ratio: "
            f"{base['samples_per_s'] / r['samples_per_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
