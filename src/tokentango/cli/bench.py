"""`python -m tokentango.bench`: how fast this machine trains, evaluates and starts up.

Measures, in one process and one after the other (so ratios between rows are what to read
on a shared machine):

- the matmul peak (GFLOP/s) in fp32 and bf16, the denominator of MFU;
- training samples/s at each model preset, with and without MLM, in each precision, on
  full-length rows of a FakeNewsCorpus-shaped corpus (news articles fill max_length, so
  this is the speed at real data), taking the training loop's own steps; the model FLOPs
  per step counted by PyTorch's FlopCounterMode, and MFU;
- evaluation samples/s (the loop's validation path) on the same rows;
- start-up: `train --help`, `checkpoints list` and a run's launch-to-first-step, each in a
  fresh process;
- time to a good model: the README's first command, end to end, and its test accuracy.

The table goes to stdout and every figure to `--out` (bench.json). bf16 rows are skipped,
with the reason, where bf16 matmuls measure slower than fp32 (CPUs without bf16 units).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tokentango.cli import Parser, fail
from tokentango.config import ConfigError, compose_config, validate

PRESETS = ("original", "small")
OBJECTIVES = ("mlm", "no_mlm")
PRECISIONS = ("fp32", "bf16")
PARTS = ("train", "startup", "default-run")


def timed_repeats(fn: Callable[[], Any], min_seconds: float, min_repeats: int = 3) -> float:
    """Seconds per call of `fn`, repeated for at least `min_seconds` and `min_repeats`."""
    calls, started = 0, time.perf_counter()
    while calls < min_repeats or time.perf_counter() - started < min_seconds:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls


def matmul_peak(device: Any, precision: str, max_size: int = 2048, seconds: float = 1.0) -> float:
    """GFLOP/s of a square matmul, the best this device does in `precision`. The size
    doubles from 256 while a product takes under 50 ms, so a CPU without bf16 units (a
    2048^3 bf16 product in a minute) is measured in a second or two."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def product_seconds(size: int, at_least: float) -> float:
        a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))

        def multiply() -> None:
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        multiply()
        return timed_repeats(multiply, at_least, min_repeats=1)

    size = 256
    while size < max_size and product_seconds(size, 0.0) < 0.05:
        size *= 2
    return 2 * size**3 / product_seconds(size, seconds) / 1e9


def count_flops(step: Callable[[], Any]) -> int:
    """Model FLOPs of one call of `step` (a training step: forward and backward), counted
    by PyTorch from the matmuls and attention it runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def top_ops(step: Callable[[], Any], on_gpu: bool, n: int = 6) -> list[dict[str, Any]]:
    """Where one call of `step` spends its time: the `n` ops with the most self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
    with profile(activities=activities) as prof:
        step()
    events = prof.key_averages()
    attr = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:n]
    return [{"op": e.key, "share": round(getattr(e, attr) / total, 3)} for e in ranked]


def full_length_rows(split: Any, max_length: int, need: int, csv: Path) -> np.ndarray:
    rows = np.flatnonzero(split.lengths == max_length)
    if len(rows) < need:
        raise ConfigError(
            f"{csv} has {len(rows)} training rows that fill max_length={max_length} tokens; "
            f"the benchmark needs {need}: use more --rows or a CSV of longer articles"
        )  # fmt: skip
    return rows


def compose(overrides: list[str]) -> Any:
    """compose_config, with Hydra's errors (unknown preset, key or type) as one line."""
    try:
        return compose_config(overrides)
    except Exception as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from err


def row_config(preset: str, objective: str, precision: str, csv: Path,
               overrides: list[str]) -> Any:  # fmt: skip
    """The training config of one row of the table: a ConfigError names a bad value."""
    cfg = compose([f"model={preset}", f"objective={objective}", f"data.path={csv}",
                   "data.name=bench", "train_frac=1.0", f"runtime.precision={precision}",
                   *overrides])  # fmt: skip
    validate(cfg)
    return cfg


def train_figures(cfg: Any, steps: int, peak: float, profile: bool) -> dict[str, Any]:
    """Training and evaluation speed of one row's config, the loop's own set-up and steps
    on full-length rows."""
    import torch
    from hydra.utils import instantiate

    from tokentango.data import batch_tensors
    from tokentango.evaluate import predict
    from tokentango.loop import set_up, train_step
    from tokentango.model import build_model

    csv, precision = Path(cfg.data.path), str(cfg.runtime.precision)
    with tempfile.TemporaryDirectory() as run_dir:
        training = set_up(cfg, Path(run_dir), "bench")
    if training.data.vocab_size < cfg.data.vocab_size:
        # Real news fills the preset's vocabulary (40,000 at `original`), a small generated
        # corpus does not: size the embeddings and the MLM head as real data would.
        training.model = build_model(cfg.model, cfg.data.vocab_size, cfg.data.max_length)
        training.model.to(training.device)
        training.optimizer = instantiate(cfg.optimizer, params=training.model.parameters(),
                                         _convert_="all")  # fmt: skip
    split, batch = training.data.splits["train"], cfg.trainer.batch_size
    rows = full_length_rows(split, cfg.data.max_length, batch, csv)
    ids, labels = batch_tensors(split, rows[:batch], training.device)

    def step() -> None:
        train_step(training.model, training.optimizer, ids, labels, cfg, training.device)
        if training.device.type == "cuda":
            torch.cuda.synchronize(training.device)

    training.model.train()
    for _ in range(2):  # warm-up: allocator, lazy initialisation, autotuning
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    step_seconds = (time.perf_counter() - started) / steps
    flops = count_flops(step)
    eval_rows = split.subset(rows[: max(batch, min(len(rows), 4 * cfg.runtime.eval_batch_size))])
    eval_seconds = timed_repeats(
        lambda: predict(training.model, eval_rows, cfg.runtime.eval_batch_size,
                        training.device, precision), 1.0, min_repeats=1)  # fmt: skip
    figures = {
        "preset": cfg.model.name, "use_mlm": cfg.use_mlm, "precision": precision,
        "device": str(training.device), "batch_size": batch, "length": cfg.data.max_length,
        "vocab": training.model.vocab_size,
        "parameters": sum(p.numel() for p in training.model.parameters()), "steps": steps,
        "samples_per_s": round(batch / step_seconds, 2),
        "flops_per_step": flops,
        "mfu": round(flops / step_seconds / (peak * 1e9), 3),
        "eval_samples_per_s": round(len(eval_rows) / eval_seconds, 1),
    }  # fmt: skip
    if profile:
        figures["top_ops"] = top_ops(step, training.device.type == "cuda")
    return figures


def _python_m(module: str, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"python -m {module} {' '.join(args)} failed: {' '.join(tail)}")
    return seconds, done.stdout + done.stderr


_IMPORT_SECONDS = """
import time
started = time.perf_counter()
import torch
torch_s = time.perf_counter() - started
import torch._dynamo  # what torch.optim's optimizers import on their first call
print(torch_s, time.perf_counter() - started - torch_s)
"""


def startup_figures(overrides: list[str]) -> dict[str, float | None]:
    """Seconds each command takes in a fresh interpreter (a sweep job pays this each time),
    and what bounds a run's first step: importing torch and torch._dynamo."""
    from tokentango.data import load_dataset, settings_from_config

    with tempfile.TemporaryDirectory() as tmp:
        help_s, _ = _python_m("tokentango.train", "--help")
        list_s, _ = _python_m("tokentango.checkpoints", "list", tmp)
        cfg = compose(overrides)  # build the data first: time the first step, not preprocessing
        load_dataset(settings_from_config(cfg), cfg.runtime.data_dir)
        _, out = _python_m("tokentango.train", *overrides, "trainer.max_steps=1",
                           f"runtime.experiments_dir={tmp}",
                           "runtime.progress_bar=false")  # fmt: skip
    first = re.search(r"first step done ([\d.]+) s after launch", out)
    imports = subprocess.run([sys.executable, "-c", _IMPORT_SECONDS], capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    return {"train_help_s": round(help_s, 2), "checkpoints_list_s": round(list_s, 2),
            "first_step_s": float(first.group(1)) if first else None,
            "import_torch_s": round(float(imports[0]), 2),
            "import_torch_dynamo_s": round(float(imports[1]), 2)}  # fmt: skip


def default_run_figures(overrides: list[str]) -> dict[str, Any]:
    """The README's first command, end to end in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        seconds, _ = _python_m("tokentango.train", *overrides, f"runtime.experiments_dir={tmp}",
                               "runtime.progress_bar=false")  # fmt: skip
        results = json.loads(next(Path(tmp).glob("runs/*/results.json")).read_text())
    return {"wall_s": round(seconds, 1), "test_accuracy": results["test_accuracy"],
            "steps": results["steps"], "status": results["status"],
            "train_seconds": results["train_seconds"]}  # fmt: skip


# The CPU instruction sets that decide fp32 vs bf16 matmul speed (the same model name
# can come with or without them), as /proc/cpuinfo spells them.
MATMUL_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    features: list[str] | None = None  # unknown where the CPU does not list its flags
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text()
        names = re.findall(r"model name\s*:\s*(.+)", text)
        cpu = names[0] if names else cpu
        flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
        if flags:
            features = [f for f in MATMUL_FEATURES if f in flags.group(1).split()]
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_features": features,
            "torch_threads": torch.get_num_threads(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version()}  # fmt: skip


def format_table(result: dict[str, Any]) -> str:
    host = result["machine"]
    known = host.get("cpu_features")
    features = ("features unknown" if known is None else " ".join(known)
                or "none of " + ", ".join(MATMUL_FEATURES))  # fmt: skip
    lines = [f"machine: {host['cpu']}, {host['cores']} cores ({features}), torch {host['torch']}"
             + (f", {host['gpu']}" if host["gpu"] else ""),
             "matmul peak: " + ", ".join(f"{p} {v:.0f} GFLOP/s"
                                         for p, v in result["peak_gflops"].items())]  # fmt: skip
    if result["train"]:
        lines += ["", f"{'preset':9} {'mlm':5} {'precision':9} {'samples/s':>9} "
                  f"{'GFLOP/step':>10} {'MFU':>6} {'eval samples/s':>14}"]  # fmt: skip
        for r in result["train"]:
            lines.append(f"{r['preset']:9} {r['use_mlm']!s:5} {r['precision']:9} "
                         f"{r['samples_per_s']:9.1f} {r['flops_per_step'] / 1e9:10.2f} "
                         f"{r['mfu']:6.1%} {r['eval_samples_per_s']:14.1f}")  # fmt: skip
            for op in r.get("top_ops", []):
                lines.append(f"      {op['share']:6.1%}  {op['op']}")
    lines += [f"skipped: {s}" for s in result["skipped"]]
    if s := result.get("startup"):
        lines.append(f"\nstart-up: train --help {s['train_help_s']:.1f} s, checkpoints list "
                     f"{s['checkpoints_list_s']:.1f} s, launch to first step "
                     f"{s['first_step_s']} s (of which import torch {s['import_torch_s']:.1f} s, "
                     f"torch._dynamo {s['import_torch_dynamo_s']:.1f} s)")  # fmt: skip
    if d := result.get("default_run"):
        lines.append(f"default run: {d['wall_s']:.0f} s wall ({d['steps']} steps, {d['status']}), "
                     f"test accuracy {d['test_accuracy']:.4f}")  # fmt: skip
    return "\n".join(lines)


def build_parser() -> Parser:
    parser = Parser(prog="python -m tokentango.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, help="a CSV in FakeNewsCorpus's schema; default: "
                        "a generated FakeNewsCorpus-shaped corpus of --rows rows")  # fmt: skip
    parser.add_argument("--rows", type=int, default=2000,
                        help="rows of the generated corpus (default 2000)")  # fmt: skip
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), metavar="PRESET")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS,
                        help="default: fp32, and bf16 where its matmuls are faster")  # fmt: skip
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row (default 8)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--skip", nargs="+", default=[], choices=PARTS, metavar="PART",
                        help=f"leave parts out: {', '.join(PARTS)}")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="also profile one step of each row: the ops that take the time")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a training override for every row and run (repeatable), e.g. "
                        "--set trainer.batch_size=64")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bad := [o for o in args.set if "=" not in o]:
        parser.error(f"--set takes KEY=VALUE, not {bad[0]!r}")
    if args.steps < 1 or args.rows < 1:
        return fail(ConfigError("--steps and --rows must be at least 1"))
    from tokentango.data import DataError

    try:
        return run(args, [*args.set, f"device={args.device}"])
    except (ConfigError, DataError, RuntimeError) as err:
        return fail(err)


def run(args: Any, overrides: list[str]) -> int:
    from tokentango.device import keep_freed_memory, resolve_device
    from tokentango.synthetic import FAKENEWS, write_corpus

    keep_freed_memory()
    device = resolve_device(args.device)
    result: dict[str, Any] = {"machine": machine(), "peak_gflops": {}, "train": [],
                              "skipped": []}  # fmt: skip
    big = 8192 if device.type == "cuda" else 2048
    for precision in PRECISIONS:
        result["peak_gflops"][precision] = round(matmul_peak(device, precision, big), 1)
    precisions = args.precision or [
        p for p in PRECISIONS
        if p == "fp32" or result["peak_gflops"][p] > result["peak_gflops"]["fp32"]
    ]  # fmt: skip
    if "bf16" not in precisions:
        result["skipped"].append(
            f"bf16: its matmuls measure {result['peak_gflops']['bf16']:.0f} GFLOP/s here, "
            f"fp32's {result['peak_gflops']['fp32']:.0f} (ask with --precision bf16)")  # fmt: skip
    if "train" not in args.skip:
        data_dir = Path(compose(overrides).runtime.data_dir)
        csv = args.csv or data_dir / "bench" / f"fakenews_{args.rows}.csv"
        if args.csv is None and not csv.exists():
            write_corpus(csv, args.rows, FAKENEWS)
        rows = [row_config(preset, objective, precision, csv, overrides)
                for preset in args.presets for objective in args.objectives
                for precision in precisions]  # fmt: skip
        for cfg in rows:
            peak = result["peak_gflops"][str(cfg.runtime.precision)]
            figures = train_figures(cfg, args.steps, peak, args.profile)
            result["train"].append(figures)
            print(f"  {figures['preset']} mlm={figures['use_mlm']} {figures['precision']}: "
                  f"{figures['samples_per_s']} samples/s", flush=True)  # fmt: skip
    if "startup" not in args.skip:
        result["startup"] = startup_figures(overrides)
    if "default-run" not in args.skip:
        result["default_run"] = default_run_figures(overrides)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    print(f"\nwritten: {args.out}")
    return 0
