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


def test_data_scaling_sweep_and_its_plot_on_tiny_sizes(tmp_path: Path, data_dir: Path) -> None:
    """The study's sweep at tiny sizes, baseline included, then its report: the data-size
    table and plot over the rows each run trained on."""
    sweep, out = tmp_path / "sweep", tmp_path / "report"
    run_cli("tokentango.train", "--multirun", "+experiment=data_scaling", "seed=1,2",
            "data.train_rows=32,null", "use_mlm=false", *TINY, "trainer.max_steps=4",
            "trainer.eval_every=2", f"hydra.sweep.dir={sweep}",
            f"runtime.data_dir={data_dir}")  # fmt: skip
    results = [read_results(p) for p in sweep.iterdir() if p.is_dir()]
    assert len(results) == 8  # 2 sizes x 2 seeds x (encoder, baseline)
    rows = {(r["model"], r["seed"]): set() for r in results}
    for r in results:
        rows[(r["model"], r["seed"])].add(r["train_rows"])
    every = {r["train_rows_available"] for r in results}
    assert len(every) == 1 and all(sizes == {32, *every} for sizes in rows.values())
    proc = run_cli("tokentango.report", str(sweep), "--out", str(out))
    assert (out / "data_scaling.png").stat().st_size > 0
    assert "## Test accuracy by training rows" in proc.stdout
    assert f"all ({every.pop()})" in proc.stdout and "(baseline)" in proc.stdout


def test_split_comparison_puts_the_two_splits_side_by_side(tmp_path: Path,
                                                           data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", "--multirun", "+experiment=split_comparison", "seed=1",
            "use_mlm=false", *TINY, "trainer.max_steps=4", "trainer.eval_every=2",
            f"hydra.sweep.dir={sweep}", f"runtime.data_dir={data_dir}")  # fmt: skip
    results = {(r["model"], r["split"]): r for r in
               (read_results(p) for p in sweep.iterdir() if p.is_dir())}  # fmt: skip
    assert set(results) == {(m, s) for m in ("small", "tfidf_lr") for s in ("random", "domain")}
    domain = results[("small", "domain")]["split_domains"]
    random = results[("small", "random")]["split_domains"]
    # Every site is on one side of the domain split; a random split spreads the sites over
    # all three, so its test split holds far more of them.
    assert domain["train"] + domain["val"] + domain["test"] == random["train"]
    assert random["test"] > 2 * domain["test"] and random["val"] > 2 * domain["val"]
    proc = run_cli("tokentango.report", str(sweep))
    assert "| data.split |" in proc.stdout and "domains train/val/test" in proc.stdout
