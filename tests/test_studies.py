"""The named studies (conf/experiment/) launch the jobs their headers promise."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TINY, read_results, run_cli


def test_optimizer_comparison_runs_each_optimizer_at_its_own_lr_grid(
    tmp_path: Path, data_dir: Path
) -> None:
    """The product optimizer x optimizer.lr less the pairs off each optimizer's scale:
    nine jobs a seed, never SGD at an Adam's rate or an Adam at SGD's."""
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", "--multirun", "+experiment=optimizer_comparison", "seed=1",
            *TINY, "trainer.max_steps=2", "trainer.eval_every=2", f"hydra.sweep.dir={sweep}",
            f"runtime.data_dir={data_dir}")  # fmt: skip
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    pairs = {(r["optimizer"], r["lr"]) for r in map(read_results, runs)}
    assert len(runs) == 9 and pairs == {
        ("adam", 3e-4), ("adam", 1e-3), ("adam", 3e-3),
        ("adamw", 3e-4), ("adamw", 1e-3), ("adamw", 3e-3),
        ("sgd", 0.01), ("sgd", 0.03), ("sgd", 0.1),
    }  # fmt: skip
    # Job numbers stay contiguous: the filter drops pairs before numbers are given.
    assert [r.name.split("_", 1)[0] for r in runs] == [str(i) for i in range(9)]
