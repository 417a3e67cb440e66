"""The sweep report: hand-built run folders with known numbers, one real tiny sweep."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats

from tests.conftest import compose, run_cli
from tokentango import report
from tokentango.cli import report as report_cli

FILES = {"report.md", "report.csv", "val_accuracy.png", "test_accuracy.png", "losses.png"}

BASE: dict[str, Any] = {
    "optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3, "betas": [0.9, 0.999],
                  "eps": 1e-8, "weight_decay": 0.0},
    "objective": {"mask_prob": 0.15, "mlm_weight": 1.0},
    "data": {"name": "sample", "path": None, "sample_rows": 16000, "seed": 1234},
    "model": {"name": "small", "d_model": 64, "n_layers": 2},
    "trainer": {"batch_size": 32, "max_steps": 500, "eval_every": 50,
                "early_stopping": {"threshold": 0.8, "patience": 3}},
    # Hydra leaves interpolations unresolved in .hydra/config.yaml; one even names a
    # resolver the report does not know.
    "runtime": {"device": "auto", "progress_bar": False, "data_dir": "/somewhere/data",
                "experiments_dir": "${runtime.data_dir}/../experiments"},
    "seed": 42, "use_mlm": True, "train_frac": 1.0,
    "run_name": "${no_such_resolver:x}", "checkpoint": "train",
}  # fmt: skip

OPTIMIZERS = {
    "adam": {"_target_": "torch.optim.Adam", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
             "weight_decay": 0.0},
    "adamw": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
              "weight_decay": 0.01},
    "sgd": {"_target_": "torch.optim.SGD", "lr": 1e-3, "momentum": 0.9, "nesterov": False,
            "weight_decay": 0.0},
}  # fmt: skip


def curve(val_accuracies: list[float], mlm: bool = True, every: int = 50) -> list[dict]:
    """metrics.jsonl records: evaluation i at step every*(i+1), 10 s apart, losses falling."""
    return [
        {"step": every * (i + 1), "epoch": 0, "samples": 32 * every * (i + 1),
         "cls_loss": 0.7 - 0.1 * i, "mlm_loss": (6.0 - i) if mlm else None,
         "val_accuracy": acc, "val_f1": acc, "elapsed_seconds": 10.0 * (i + 1) + 0.5}
        for i, acc in enumerate(val_accuracies)
    ]  # fmt: skip


def make_run(
    root: Path,
    name: str,
    *,
    seed: int,
    use_mlm: bool = True,
    optimizer: str = "adam",
    acc: float | None = 0.8,
    f1: float | None = None,
    metrics: list[dict] | None = None,
    status: str = "completed",
    changes: dict[str, Any] | None = None,
) -> Path:
    """A run folder as tokentango.train leaves it; status 'unfinished' writes no results.json."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = copy.deepcopy(BASE) | {"seed": seed, "use_mlm": use_mlm}
    cfg["optimizer"] = copy.deepcopy(OPTIMIZERS[optimizer])
    for key, value in (changes or {}).items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    overrides = [f"seed={seed}", f"use_mlm={use_mlm}", f"optimizer={optimizer}"]
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    if metrics is None:
        metrics = curve([0.6, acc or 0.5], mlm=use_mlm)
    if metrics:
        lines = [json.dumps(m) for m in metrics]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if status == "failed":
        results = {"status": "failed", "run_name": name, "error": "RuntimeError: boom",
                   "traceback": "Traceback (most recent call last):\nRuntimeError: boom\n",
                   "optimizer": OPTIMIZERS[optimizer]["_target_"], "use_mlm": use_mlm,
                   "seed": seed, "train_frac": 1.0}  # fmt: skip
    elif status in ("completed", "early_stopped"):
        results = {"status": status, "run_name": name, "test_accuracy": acc,
                   "test_f1": acc if f1 is None else f1, "optimizer": optimizer,
                   "use_mlm": use_mlm, "seed": seed, "steps": 100, "train_seconds": 60.0 + seed,
                   "samples_per_second": 300.0 + seed, "test_rows": 1000}  # fmt: skip
    elif status == "interrupted":
        results = {"status": status, "run_name": name, "signal": "SIGUSR2", "steps": 50,
                   "total_steps": 100, "use_mlm": use_mlm, "seed": seed}  # fmt: skip
    else:
        return run
    (run / "results.json").write_text(json.dumps(results))
    return run


def summary_for(root: Path | list[Path], metric: str = "test_accuracy", target: float = 0.8):
    runs = report.find_runs(root if isinstance(root, list) else [root])
    groups = report.group_runs(runs)
    return groups, report.summarize(groups, metric, target), report.compare(groups, metric)


def row(frame: pd.DataFrame, **where: Any) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= frame[key] == value
    assert mask.sum() == 1, f"{where} matches {mask.sum()} rows"
    return frame[mask].iloc[0]


# Known numbers: with MLM (true) vs without (false), seeds 42, 69, 123.
MLM_ACC = {42: 0.80, 69: 0.84, 123: 0.82}
NO_MLM_ACC = {42: 0.75, 69: 0.80, 123: 0.76}


@pytest.fixture
def ablation(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    curves = {42: [0.6, 0.81, 0.85], 69: [0.79, 0.80, 0.9], 123: [0.5, 0.6, 0.7]}
    for i, (seed, acc) in enumerate(MLM_ACC.items()):
        make_run(root, f"{i}_use_mlm=true,seed={seed}", seed=seed, use_mlm=True, acc=acc,
                 metrics=curve(curves[seed]))  # fmt: skip
    for i, (seed, acc) in enumerate(NO_MLM_ACC.items()):
        make_run(root, f"{i + 3}_use_mlm=false,seed={seed}", seed=seed, use_mlm=False, acc=acc,
                 metrics=curve([0.7, 0.79], mlm=False))  # fmt: skip
    return root


def test_group_table_has_exact_values(ablation: Path) -> None:
    groups, summary, _ = summary_for(ablation)
    assert [g.label for g in groups] == ["use_mlm=false", "use_mlm=true"]
    assert [r.seed for r in groups[1].runs] == [42, 69, 123]
    mlm = row(summary, use_mlm=True)
    assert mlm["runs"] == "3 of 3" and mlm["n"] == 3 and mlm["N"] == 3
    assert mlm["test_accuracy_mean"] == pytest.approx(0.82, abs=1e-12)
    assert mlm["test_accuracy_std"] == pytest.approx(0.02, abs=1e-12)
    assert (mlm["test_accuracy_min"], mlm["test_accuracy_max"]) == (0.80, 0.84)
    assert mlm["test_f1_mean"] == pytest.approx(0.82, abs=1e-12)
    assert mlm["train_seconds_mean"] == pytest.approx(60 + (42 + 69 + 123) / 3)
    assert mlm["samples_per_second_mean"] == pytest.approx(300 + (42 + 69 + 123) / 3)
    # Seed 42 reaches 0.80 at step 100 (20.5 s), seed 69 at 100 too (>= counts), 123 never.
    assert mlm["reached"] == "2/3"
    assert mlm["steps_to_target_mean"] == 100.0
    assert mlm["seconds_to_target_mean"] == pytest.approx(20.5)
    assert mlm["final_cls_loss_mean"] == pytest.approx(0.5)
    assert mlm["final_mlm_loss_mean"] == pytest.approx(4.0)
    no_mlm = row(summary, use_mlm=False)
    assert no_mlm["test_accuracy_std"] == pytest.approx(math.sqrt(0.0007), abs=1e-12)
    assert no_mlm["reached"] == "0/3" and math.isnan(no_mlm["steps_to_target_mean"])
    assert math.isnan(no_mlm["final_mlm_loss_mean"])  # no MLM, no MLM loss


def test_same_seeds_give_a_paired_difference(ablation: Path) -> None:
    _, _, comparisons = summary_for(ablation)
    assert len(comparisons) == 1
    c = comparisons.iloc[0]
    assert (c["setting"], c["a"], c["b"], c["test"]) == ("use_mlm", "false", "true", "paired")
    assert (c["n_a"], c["n_b"]) == (3, 3)
    assert c["diff"] == pytest.approx(0.05, abs=1e-12)
    diffs = [MLM_ACC[s] - NO_MLM_ACC[s] for s in MLM_ACC]  # 0.05, 0.04, 0.06
    sem = 0.01 / math.sqrt(3)
    half = stats.t.ppf(0.975, 2) * sem
    assert c["ci_low"] == pytest.approx(0.05 - half, abs=1e-12)
    assert c["ci_high"] == pytest.approx(0.05 + half, abs=1e-12)
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(0.05 / sem, 2), rel=1e-9)
    assert c["p_value"] == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-9)


def test_different_seeds_give_welch(tmp_path: Path) -> None:
    a, b = {42: 0.75, 69: 0.80, 123: 0.76}, {42: 0.80, 69: 0.84, 7: 0.86}
    for seed, acc in a.items():
        make_run(tmp_path, f"false_{seed}", seed=seed, use_mlm=False, acc=acc)
    for seed, acc in b.items():
        make_run(tmp_path, f"true_{seed}", seed=seed, use_mlm=True, acc=acc)
    _, _, comparisons = summary_for(tmp_path)
    c = comparisons.iloc[0]
    assert c["test"] == "welch"
    assert c["diff"] == pytest.approx(2.5 / 3 - 2.31 / 3, abs=1e-12)
    va, vb = (float(pd.Series(list(x.values())).var()) / 3 for x in (a, b))  # sem squared
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert c["dof"] == pytest.approx(dof, rel=1e-9)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((c["diff"] - half, c["diff"] + half))
    t = c["diff"] / math.sqrt(va + vb)
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), dof), rel=1e-9)


def test_one_run_a_side_gives_a_difference_without_a_test(tmp_path: Path) -> None:
    make_run(tmp_path, "a", seed=42, use_mlm=False, acc=0.75)
    make_run(tmp_path, "b", seed=69, use_mlm=True, acc=0.8)
    _, summary, comparisons = summary_for(tmp_path)
    assert (
        summary["runs"].tolist() == ["1 of 1", "1 of 1"]
        and summary["test_accuracy_std"].isna().all()
    )
    c = comparisons.iloc[0]
    assert c["test"] == "too few runs" and c["diff"] == pytest.approx(0.05, abs=1e-12)
    assert math.isnan(c["ci_low"]) and math.isnan(c["p_value"])


def test_optimizer_choice_is_one_setting_and_every_one_step_pair_is_compared(
    tmp_path: Path,
) -> None:
    for optimizer in ("sgd", "adam", "adamw"):
        for use_mlm in (True, False):
            for seed in (42, 69):
                make_run(tmp_path, f"{optimizer}_{use_mlm}_{seed}", seed=seed, use_mlm=use_mlm,
                         optimizer=optimizer, acc=0.7 + 0.01 * seed / 10)  # fmt: skip
    groups, summary, comparisons = summary_for(tmp_path)
    # optimizer.betas, .momentum, .weight_decay ... come with the choice: not settings of their own.
    assert list(groups[0].settings) == ["optimizer", "use_mlm"]
    assert [g.label for g in groups][:2] == ["optimizer=adam, use_mlm=false",
                                            "optimizer=adam, use_mlm=true"]  # fmt: skip
    assert set(summary["optimizer"]) == {"adam", "adamw", "sgd"}
    sgd = next(g for g in groups if g.settings["optimizer"] == "sgd")
    assert sgd.implied["optimizer.momentum"] == 0.9 and sgd.implied["optimizer.betas"] is None
    # 3 optimizer pairs at each use_mlm, and 1 MLM pair at each optimizer; no diagonals.
    assert len(comparisons) == 9
    by_setting = comparisons.groupby("setting").size().to_dict()
    assert by_setting == {"optimizer": 6, "use_mlm": 3}
    pairs = set(zip(comparisons["a"], comparisons["b"], comparisons["same"], strict=True))
    assert ("adam", "sgd", "use_mlm=true") in pairs and (
        "false",
        "true",
        "optimizer=adamw",
    ) in pairs
    assert set(comparisons["test"]) == {"paired"}
    assert comparisons["diff"].abs().max() == pytest.approx(0.0, abs=1e-12)


def test_model_presets_are_compared_with_the_tokenizer_they_set(tmp_path: Path) -> None:
    """model=original also sets data.max_length and data.vocab_size: one setting, compared."""
    presets = {"small": (64, 256, 8000), "original": (32, 300, 40000)}
    for preset, (width, length, vocab) in presets.items():
        for seed, acc in ((1, 0.8), (2, 0.82)):
            make_run(tmp_path, f"{preset}_{seed}", seed=seed, acc=acc - 0.1 * (width == 32),
                     changes={"model.name": preset, "model.d_model": width,
                              "data.max_length": length, "data.vocab_size": vocab})  # fmt: skip
    groups, _, comparisons = summary_for(tmp_path)
    assert [g.label for g in groups] == ["model=original", "model=small"]
    assert groups[0].implied["data.max_length"] == 300
    (c,) = comparisons.itertuples()
    assert (c.setting, c.test) == ("model", "paired") and c.diff == pytest.approx(0.1)


def test_sweeps_combine_and_only_seeds_varying_makes_one_group(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "sweep_a", tmp_path / "later" / "nested" / "sweep_b"
    for seed, acc in ((42, 0.8), (69, 0.9)):
        make_run(first, f"0_seed={seed}", seed=seed, acc=acc)
    make_run(second, "0_seed=123", seed=123, acc=0.85)
    out = tmp_path / "out"
    assert report_cli.main([str(first), str(tmp_path / "later"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == FILES
    groups, summary, comparisons = summary_for([first, second])
    assert len(groups) == 1 and groups[0].label == "all runs" and comparisons.empty
    assert summary.loc[0, "runs"] == "3 of 3" and summary.loc[0, "seeds"] == "42 69 123"
    assert summary.loc[0, "test_accuracy_mean"] == pytest.approx(0.85, abs=1e-12)
    text = capsys.readouterr().out
    assert "No pair of groups differs in exactly one setting." in text
    assert "| all runs | 3 of 3 | 0.8500 |" in text


def test_failed_and_unfinished_runs_are_listed(ablation: Path, capsys) -> None:
    make_run(ablation, "6_failed", seed=7, use_mlm=True, status="failed")
    unfinished = make_run(ablation, "7_unfinished", seed=8, use_mlm=False, status="unfinished",
                          metrics=curve([0.6, 0.7]))  # fmt: skip
    with (unfinished / "metrics.jsonl").open("a") as f:
        f.write('{"step": 150, "val_acc')  # killed mid-write
    make_run(ablation, "8_no_metrics", seed=9, use_mlm=False, acc=0.5, metrics=[])
    make_run(ablation, "9_interrupted", seed=10, use_mlm=True, status="interrupted")
    assert report_cli.main([str(ablation)]) == 0
    text = capsys.readouterr().out
    interrupted_row = "interrupted | SIGUSR2 at step 50 of 100; rerun the sweep to resume it |"
    assert f"| sweep/9_interrupted | use_mlm=true | {interrupted_row}" in text
    assert "| sweep/6_failed | use_mlm=true | failed | RuntimeError: boom |" in text
    unfinished_row = "unfinished | no results.json (last evaluation at step 100) |"
    assert f"| sweep/7_unfinished | use_mlm=false | {unfinished_row}" in text
    _, summary, comparisons = summary_for(ablation)
    mlm, no_mlm = row(summary, use_mlm=True), row(summary, use_mlm=False)
    assert mlm["runs"] == "3 of 5" and no_mlm["runs"] == "4 of 5"
    assert mlm["test_accuracy_mean"] == pytest.approx(0.82, abs=1e-12)  # failed run not counted
    assert no_mlm["reached"] == "0/4"  # the run without metrics counts as not reached
    assert comparisons.iloc[0]["test"] == "welch"  # seeds 7, 8, 9 break the pairing
    table = pd.read_csv(ablation / "report.csv")
    runs = table[table["row"] == "run"].set_index("seed")
    assert runs.loc[7, "status"] == "failed" and runs.loc[8, "status"] == "unfinished"
    assert len(table) == 10 + 2


def test_report_files_and_markdown(ablation: Path, capsys) -> None:
    assert report_cli.main([str(ablation), "--target", "0.9"]) == 0
    assert {p.name for p in ablation.iterdir()} >= FILES
    md = (ablation / "report.md").read_text()
    assert md.startswith("# Sweep report") and f"`{ablation}`" in md
    for link in ("(val_accuracy.png)", "(test_accuracy.png)", "(losses.png)"):
        assert link in md
    assert md.strip() == capsys.readouterr().out.strip()
    assert "| use_mlm | runs (n of N) | test_accuracy mean |" in md
    assert "| false | true |  | paired | 3 | 3 | 0.7700 | 0.8200 | 0.0500 |" in md
    for png in ("val_accuracy.png", "test_accuracy.png", "losses.png"):
        assert (ablation / png).read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(ablation / "report.csv")
    assert table["row"].value_counts().to_dict() == {"run": 6, "group": 2}
    group = table[(table["row"] == "group") & (table["use_mlm"] == True)].iloc[0]  # noqa: E712
    assert group["reached"] == "1/3" and group["steps_to_target_mean"] == 150  # --target 0.9


def test_metric_option_summarizes_another_field(ablation: Path, capsys) -> None:
    _, summary, comparisons = summary_for(ablation, metric="test_f1")
    assert "test_f1_max" in summary and "test_accuracy_mean" in summary
    assert comparisons.iloc[0]["metric"] == "test_f1"
    assert report_cli.main([str(ablation), "--metric", "test_f1"]) == 0
    assert "test_f1 mean" in capsys.readouterr().out
    # Any numeric results.json field, timing included, gets the full statistics.
    assert report_cli.main([str(ablation), "--metric", "train_seconds"]) == 0
    assert "train_seconds std | train_seconds min" in capsys.readouterr().out
    for f in FILES:
        (ablation / f).unlink()
    assert report_cli.main([str(ablation), "--metric", "no_such_field"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert not FILES & {p.name for p in ablation.iterdir()}


def test_bad_folders_exit_2_and_write_nothing(tmp_path: Path, capsys) -> None:
    missing, empty, out = tmp_path / "missing", tmp_path / "empty", tmp_path / "out"
    (empty / "sub").mkdir(parents=True)
    assert report_cli.main([str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "no such folder" in err
    assert report_cli.main([str(empty)]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "no run folders" in err
    assert not out.exists() and [p.name for p in empty.iterdir()] == ["sub"]


def test_flatten_keeps_unresolvable_interpolations(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", seed=1)
    flat = report.read_run(run).config
    assert flat["runtime.experiments_dir"] == "/somewhere/data/../experiments"  # resolved
    assert flat["run_name"] == "${no_such_resolver:x}"  # not resolvable: raw text
    assert flat["optimizer.betas"] == (0.9, 0.999) and flat["data.path"] is None


def test_runs_of_an_earlier_layout_group_with_todays(tmp_path: Path) -> None:
    """Run folders written before `runtime` existed (device, paths.*, trainer.progress_bar,
    model.max_length) group with today's: their runtime keys are ignored either way."""
    make_run(tmp_path, "new", seed=1, acc=0.8)
    old = make_run(tmp_path, "old", seed=2, acc=0.9)
    cfg = OmegaConf.to_container(OmegaConf.load(old / ".hydra" / "config.yaml"))
    del cfg["runtime"]
    cfg |= {"device": "cpu", "checkpoint_dir": None,
            "paths": {"root": "/x", "data_dir": "${paths.root}/data"}}  # fmt: skip
    cfg["trainer"]["progress_bar"] = True
    # An interpolation into a key that is gone now still resolves.
    cfg["data"]["path"] = "${paths.root}/data/995,000_rows.csv"
    OmegaConf.save(OmegaConf.create(cfg), old / ".hydra" / "config.yaml")
    new_cfg = OmegaConf.load(tmp_path / "new" / ".hydra" / "config.yaml")
    new_cfg.data.path = "/x/data/995,000_rows.csv"
    OmegaConf.save(new_cfg, tmp_path / "new" / ".hydra" / "config.yaml")
    groups, summary, _ = summary_for(tmp_path)
    assert [g.label for g in groups] == ["all runs"] and summary.loc[0, "runs"] == "2 of 2"


def test_markdown_table() -> None:
    frame = pd.DataFrame({"a": ["x|y", "z"], "b": [0.5, math.nan], "c": [True, None]})
    assert report.markdown_table(frame, {"b": 1}).splitlines() == [
        "| a | b | c |", "|---|---|---|", "| x\\|y | 0.5 | true |", "| z | - | null |",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("experiment", "swept", "values"),
    [("mlm_ablation", "use_mlm", "true,false"), ("optimizer_comparison", "optimizer",
                                                 "adam,adamw,sgd")],
)  # fmt: skip
def test_named_studies_compose(experiment: str, swept: str, values: str) -> None:
    cfg = compose(f"+experiment={experiment}", with_hydra=True)
    changed = compose(f"+experiment={experiment}", "optimizer=sgd", "trainer.max_steps=7",
                      "optimizer.lr=0.05", with_hydra=True)  # fmt: skip
    params = cfg.hydra.sweeper.params
    assert params[swept] == values and params["seed"] == "42,69,123"
    assert cfg.hydra.sweep.dir.endswith(f"_{experiment}")
    assert 0 < cfg.train_frac <= 1 and cfg.trainer.max_steps <= 1000
    assert cfg.trainer.max_steps % cfg.trainer.eval_every == 0
    assert changed.trainer.max_steps == 7 and changed.optimizer.lr == 0.05
    assert changed.optimizer._target_ == "torch.optim.SGD"
    # The schedule the README's study figures were measured with, not today's default.
    assert cfg.scheduler.name == "constant" and compose().scheduler.name == "cosine"
    assert compose(f"+experiment={experiment}", "scheduler=linear").scheduler.name == "linear"


def test_real_sweep_gives_a_full_report(tiny_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_cli("tokentango.report", str(tiny_sweep), "--out", str(out))
    assert {p.name for p in out.iterdir()} == FILES
    # use_mlm, the domains of each split (a random split: shared), n of N.
    for use_mlm in ("false", "true"):
        assert re.search(rf"\| {use_mlm} \| \d+/\d+/\d+ \| 2 of 2 \|", proc.stdout), proc.stdout
    assert "| use_mlm | false | true |  | paired | 2 | 2 |" in proc.stdout
    assert "masked test acc mean" in proc.stdout
    table = pd.read_csv(out / "report.csv")
    runs = table[table["row"] == "run"]
    assert len(runs) == 4 and set(runs["status"]) <= {"completed", "early_stopped"}
    assert runs["test_accuracy"].between(0, 1).all() and (runs["samples_per_second"] > 0).all()
    assert runs["final_cls_loss"].notna().all()
    assert runs[runs["use_mlm"] == True]["final_mlm_loss"].notna().all()  # noqa: E712
