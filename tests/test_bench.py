"""`python -m tokentango.bench` at tiny sizes: every part runs and bench.json holds real
figures. No timing is asserted (shared machines are noisy); only that they are measured."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from tokentango.cli import bench
from tokentango.device import keep_freed_memory


def test_bench_measures_training_startup_and_the_default_run(data_dir: Path, tmp_path: Path,
                                                             capsys) -> None:  # fmt: skip
    out = tmp_path / "bench.json"
    tiny = [f"--set={o}" for o in [*TINY, f"runtime.data_dir={data_dir}", "trainer.max_steps=4"]]
    assert bench.main(["--rows", "300", "--presets", "small", "--steps", "1", "--profile",
                       "--device", "cpu", "--precision", "fp32", "--out", str(out), *tiny]) == 0
    result = json.loads(out.read_text())
    assert result["peak_gflops"]["fp32"] > 0 and result["machine"]["cores"] >= 1
    # Which matmul units the CPU has (the same model name comes with and without bf16 ones).
    cpuinfo = Path("/proc/cpuinfo")
    flags = [line.split(":", 1)[1].split() for line in
             (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
             if line.startswith("flags")]  # fmt: skip
    assert result["machine"]["cpu_features"] == (
        [f for f in bench.MATMUL_FEATURES if f in flags[0]] if flags else None)
    with_mlm, without = result["train"]
    assert (with_mlm["use_mlm"], without["use_mlm"]) == (True, False)
    for row in result["train"]:
        assert row["length"] == 48 and row["samples_per_s"] > 0 and row["eval_samples_per_s"] > 0
        # MFU is the counted FLOPs per second over the measured peak.
        assert 0 < row["mfu"] < 1
        assert row["top_ops"] and all(0 <= op["share"] <= 1 for op in row["top_ops"])
    # The MLM head's vocabulary projection is counted: more FLOPs per step with MLM.
    assert with_mlm["flops_per_step"] > without["flops_per_step"] > 0
    startup = result["startup"]
    assert startup["first_step_s"] > startup["import_torch_s"] > 0
    assert startup["train_help_s"] > 0 and startup["checkpoints_list_s"] > 0
    run = result["default_run"]
    assert run["steps"] == 4 and 0 <= run["test_accuracy"] <= 1 and run["wall_s"] > 0
    table = capsys.readouterr().out
    assert "small     True  fp32" in table and "launch to first step" in table


def test_bench_counts_the_model_flops_of_a_step() -> None:
    """A linear layer's step: 2 x rows x in x out per product; the forward, the weight's
    gradient and, when the input needs one, the input's gradient."""
    layer, rows = torch.nn.Linear(8, 4), torch.randn(5, 8)
    assert bench.count_flops(lambda: layer(rows).sum().backward()) == 2 * 2 * 5 * 8 * 4
    rows.requires_grad_()
    assert bench.count_flops(lambda: layer(rows).sum().backward()) == 3 * 2 * 5 * 8 * 4


@pytest.mark.parametrize("args,error", [
    (["--steps", "0"], "--steps and --rows must be at least 1"),
    (["--set", "seed"], "--set takes KEY=VALUE"),
    (["--presets", "huge", "--skip", "startup", "default-run"], "huge"),
])  # fmt: skip
def test_bench_bad_input_is_one_clear_error(args: list[str], error: str, tmp_path: Path,
                                            capsys) -> None:  # fmt: skip
    usage_error = pytest.raises(SystemExit) if args[0] == "--set" else nullcontext()
    with usage_error:
        assert bench.main([*args, "--out", str(tmp_path / "bench.json")]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_freed_activations_stay_with_the_process() -> None:
    """glibc (every Linux CI machine) accepts the allocator settings."""
    assert keep_freed_memory() is True
