"""Which model preset learns most per second of CPU? Side by side, same data, same budget.

    uv run python benchmarks/model_choice.py [--seconds 150] [--presets small original]

Trains each preset (with the default objective and optimizer) for the same wall-clock
budget of training steps, evaluating on the validation split every `--eval-every` steps,
and prints samples/s and the validation accuracy reached. Figures come from one process,
one after the other, so the ratio between presets is what to read, not the absolute speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tokentango.config import compose_config
from tokentango.evaluate import evaluate_split
from tokentango.loop import advance, next_batch, schedule_lr, set_up, train_step


def run(preset: str, use_mlm: bool, seconds: float, eval_every: int, overrides: list[str]) -> dict:
    """`seconds` of training steps of one preset, exactly as a run takes them (the loop's
    own set-up, batches and step: precision, clipping and all)."""
    cfg = compose_config([f"model={preset}", f"use_mlm={use_mlm}", *overrides])
    with tempfile.TemporaryDirectory() as run_dir:
        training = set_up(cfg, Path(run_dir), f"benchmark-{preset}")
    model, state, val = training.model, training.state, training.data.splits["val"]
    curve = []

    def val_accuracy() -> float:
        return evaluate_split(model, val, cfg.runtime.eval_batch_size, training.device,
                              cfg.runtime.precision)["accuracy"]  # fmt: skip

    model.train()
    while state.step_seconds < seconds:
        ids, labels = next_batch(training)
        schedule_lr(training)
        started = time.perf_counter()
        losses = train_step(model, training.optimizer, ids, labels, cfg, training.device)
        advance(training, losses, len(labels), time.perf_counter() - started)
        if state.step % eval_every == 0:
            acc = val_accuracy()
            curve.append(acc)
            print(f"  {preset:9s} mlm={use_mlm!s:5s} step {state.step:5d}  "
                  f"{state.step_seconds:6.0f}s  val_accuracy {acc:.4f}", flush=True)  # fmt: skip
    final = val_accuracy()
    return {"preset": preset, "use_mlm": use_mlm,
            "params": sum(p.numel() for p in model.parameters()), "steps": state.step,
            "samples_per_s": state.samples / state.step_seconds, "val_accuracy": final,
            "best_val_accuracy": max([final, *curve])}  # fmt: skip


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
