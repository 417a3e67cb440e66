"""The report's views for the studies of issue 12 (hand-built run folders): the best lr per
optimizer by validation (--tune), the TF-IDF baseline as a reference row, the data-size
curve, the masked-input test accuracy and the domain split's sizes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.test_report import FILES, curve, make_run, row
from tokentango import report
from tokentango.cli import report as report_cli
from tokentango.report.plots import plot_losses, plot_metric_bars, plot_val_accuracy

SEEDS = (1, 2, 3)


def study_run(root: Path, name: str, *, seed: int, acc: float, results: dict[str, Any],
              changes: dict[str, Any] | None = None, **kwargs: Any) -> Path:  # fmt: skip
    """make_run, then results.json gets the fields of the new studies (`results`)."""
    run = make_run(root, name, seed=seed, acc=acc, changes=changes, **kwargs)
    path = run / "results.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | results))
    return run


def baseline_changes(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tfidf_lr run's config: model.name names it, the encoder's sizes are gone."""
    return {"model.name": "tfidf_lr", "model.d_model": None, "model.n_layers": None,
            **(extra or {})}  # fmt: skip


def baseline_metrics(val: float) -> list[dict]:
    """A baseline's metrics.jsonl: steps 1..3 (not training steps), no losses."""
    return [{"step": i, "val_accuracy": val - 0.01 * (3 - i), "cls_loss": None,
             "mlm_loss": None} for i in (1, 2, 3)]  # fmt: skip


# --- tuned on validation --------------------------------------------------------------------

# (optimizer, lr) -> (validation accuracy, test accuracy) before a per-seed offset. The lr
# with the best test accuracy never has the best validation accuracy; adam's 1e-3 and 3e-3
# tie on validation (the smaller wins).
GRID = {
    ("adam", 3e-4): (0.70, 0.90), ("adam", 1e-3): (0.80, 0.78), ("adam", 3e-3): (0.80, 0.70),
    ("sgd", 0.01): (0.60, 0.95), ("sgd", 0.03): (0.75, 0.72), ("sgd", 0.1): (0.65, 0.60),
}  # fmt: skip
VAL_OFFSET = {1: -0.01, 2: 0.0, 3: 0.01}
TEST_OFFSET = {("adam", 1): -0.01, ("adam", 2): 0.0, ("adam", 3): 0.02,
               ("sgd", 1): 0.0, ("sgd", 2): 0.01, ("sgd", 3): -0.01}  # fmt: skip


@pytest.fixture
def lr_grid(tmp_path: Path) -> Path:
    root = tmp_path / "lr_grid"
    for (optimizer, lr), (val, test) in GRID.items():
        for seed in SEEDS:
            study_run(root, f"{optimizer}_{lr}_{seed}", seed=seed, optimizer=optimizer,
                      acc=test + TEST_OFFSET[optimizer, seed], changes={"optimizer.lr": lr},
                      metrics=curve([0.5, 0.55]),  # the results' best_val_accuracy counts
                      results={"best_val_accuracy": val + VAL_OFFSET[seed]})  # fmt: skip
    return root


def test_tuned_view_chooses_by_validation_not_test(lr_grid: Path) -> None:
    groups = report.group_runs(report.find_runs([lr_grid]))
    assert list(groups[0].settings) == ["optimizer", "optimizer.lr"]
    chosen = report.best_by_validation(groups, ["optimizer.lr"])
    assert [(g.settings, g.tuned, g.tried) for g in chosen] == [
        ({"optimizer": "adam"}, {"optimizer.lr": 1e-3}, 3),  # tie with 3e-3: the smaller
        ({"optimizer": "sgd"}, {"optimizer.lr": 0.03}, 3),  # 0.01 has the best test mean
    ]  # fmt: skip
    tuned = report.tune(groups, ["optimizer.lr"])
    (c,) = tuned.comparisons.itertuples()  # only the chosen groups are compared
    assert (c.setting, c.a, c.b, c.test) == ("optimizer", "adam", "sgd", "paired")
    adam = [0.78 + TEST_OFFSET["adam", s] for s in SEEDS]
    sgd = [0.72 + TEST_OFFSET["sgd", s] for s in SEEDS]
    assert c.diff == pytest.approx(np.mean(sgd) - np.mean(adam), abs=1e-12)
    adam_row = row(tuned.summary, optimizer="adam")
    assert adam_row["best_val_accuracy_mean"] == pytest.approx(0.80, abs=1e-12)
    assert adam_row["test_accuracy_mean"] == pytest.approx(np.mean(adam), abs=1e-12)
    assert adam_row["test_accuracy_std"] == pytest.approx(np.std(adam, ddof=1), abs=1e-12)
    # The full table still compares lrs within an optimizer, never adam with sgd.
    assert set(report.compare(groups)["setting"]) == {"optimizer.lr"}


def test_tuned_view_in_the_report_files(lr_grid: Path, capsys) -> None:
    assert report_cli.main([str(lr_grid), "--tune", "optimizer.lr"]) == 0
    md = (lr_grid / "report.md").read_text()
    assert md.strip() == capsys.readouterr().out.strip()
    assert "## Tuned on validation: optimizer.lr" in md and "(tuned.png)" in md
    assert "| optimizer | optimizer.lr (chosen) | tried | val mean |" in md
    assert "| adam | 0.001 | 3 | 0.8000 | 0.7833 |" in md
    assert "| optimizer | adam | sgd |  | paired | 3 | 3 |" in md
    assert (lr_grid / "tuned.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(lr_grid / "report.csv")
    tuned = table[table["row"] == "tuned"]
    assert tuned["optimizer.lr"].tolist() == [0.001, 0.03] and tuned["tried"].tolist() == [3, 3]
    assert table["row"].value_counts().to_dict() == {"run": 18, "group": 6, "tuned": 2}


@pytest.mark.parametrize("key", ["optimizer.momentum", "no_such.key", "seed"])
def test_a_bad_tune_key_is_one_line_and_exit_2(lr_grid: Path, key: str, capsys) -> None:
    out = lr_grid.parent / "out"
    assert report_cli.main([str(lr_grid), "--tune", key, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and "optimizer, optimizer.lr" in err
    assert not out.exists()


# --- baseline and data size -----------------------------------------------------------------

ROWS = {64: 64, 256: 256, None: 9000}  # data.train_rows -> results.json train_rows
BASE_ACC = {(False, 64): 0.60, (False, 256): 0.70, (False, None): 0.80,
            (True, 64): 0.55, (True, 256): 0.72, (True, None): 0.85,
            ("tfidf", 64): 0.65, ("tfidf", 256): 0.74, ("tfidf", None): 0.82}  # fmt: skip
SEED_SHIFT = {1: -0.01, 2: 0.02}


def scaling_acc(arm: Any, rows: int | None, seed: int) -> float:
    return BASE_ACC[arm, rows] + SEED_SHIFT[seed]


@pytest.fixture
def data_sizes(tmp_path: Path) -> Path:
    """BERT with and without MLM and the TF-IDF baseline at 64, 256 and all rows, 2 seeds."""
    root = tmp_path / "sizes"
    for rows, used in ROWS.items():
        for seed in SEED_SHIFT:
            for use_mlm in (False, True):
                study_run(root, f"bert_{rows}_{use_mlm}_{seed}", seed=seed, use_mlm=use_mlm,
                          acc=scaling_acc(use_mlm, rows, seed),
                          changes={"data.train_rows": rows},
                          results={"train_rows": used})  # fmt: skip
            study_run(root, f"tfidf_{rows}_{seed}", seed=seed,
                      acc=scaling_acc("tfidf", rows, seed),
                      changes=baseline_changes({"data.train_rows": rows}),
                      metrics=baseline_metrics(0.75),
                      results={"train_rows": used, "baseline": True, "model": "tfidf_lr",
                               "best_val_accuracy": 0.75})  # fmt: skip
    return root


def test_baseline_is_a_marked_reference_row(data_sizes: Path, tmp_path: Path) -> None:
    runs = report.find_runs([data_sizes])
    assert sum(map(report.is_baseline, runs)) == 6
    groups = report.group_runs(runs)
    assert list(groups[0].settings) == ["data.train_rows", "model", "use_mlm"]
    baselines = [g for g in groups if report.is_baseline(g)]
    assert [g.label for g in baselines] == [  # null (all rows) after the numbers
        f"data.train_rows={r}, model=tfidf_lr, use_mlm=true (baseline)"
        for r in ("64", "256", "null")
    ]
    summary = report.summarize(groups)
    assert summary["baseline"].tolist() == [report.is_baseline(g) for g in groups]
    # Its evaluation steps are not training steps: no convergence for the baseline.
    assert summary[summary["baseline"]]["reached"].eq("0/2").all()
    comparisons = report.compare(groups)
    model = comparisons[comparisons["setting"] == "model"]
    assert set(model["b"]) == {"tfidf_lr"} and len(model) == 3  # vs BERT with MLM, per size
    # The plots take the baseline as a reference: a dashed level, no loss curve, own colour.
    for plot, name in ((plot_val_accuracy, "val.png"), (plot_losses, "loss.png"),
                       (plot_metric_bars, "bars.png")):  # fmt: skip
        assert plot(groups, tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    only = [g for g in groups if report.is_baseline(g)]
    assert plot_val_accuracy(only, tmp_path / "only.png").is_file()


def test_data_scaling_table_and_plot(data_sizes: Path, capsys) -> None:
    assert report_cli.main([str(data_sizes)]) == 0
    md = (data_sizes / "report.md").read_text()
    assert md.strip() == capsys.readouterr().out.strip()
    assert (data_sizes / "data_scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 64 | tfidf_lr | true | yes | 2 of 2 |" in md
    assert "| all (9000) | small | false |  | 2 of 2 |" in md  # null shown as all (N)
    assert "baseline: a reference model (tfidf_lr" in md
    section = md.split("## Test accuracy by training rows")[1].split("\n## ")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert lines[0] == ("| training rows | model=small, use_mlm=false | model=small, "
                        "use_mlm=true | model=tfidf_lr, use_mlm=true (baseline) |")  # fmt: skip
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| 64", "| 256", "| all (9000)"]
    for line, rows in zip(lines[2:], ROWS, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        for cell, arm in zip(cells, (False, True, "tfidf"), strict=True):
            values = [scaling_acc(arm, rows, s) for s in SEED_SHIFT]
            assert cell == f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} (2)"
    scaling = report.data_scaling(report.group_runs(report.find_runs([data_sizes])))
    tfidf_all = row(scaling, line="model=tfidf_lr, use_mlm=true (baseline)",
                    rows_label="all (9000)")  # fmt: skip
    assert tfidf_all["train_rows"] == 9000 and tfidf_all["baseline"]
    assert tfidf_all["mean"] == pytest.approx(0.82 + 0.005, abs=1e-12)


# --- masked evaluation and the domain split --------------------------------------------------


def test_masked_column_and_domain_sizes_only_where_runs_have_them(tmp_path: Path,
                                                                  capsys) -> None:  # fmt: skip
    domains = {"train": 40, "val": 5, "test": 5}
    for seed in (1, 2):
        study_run(tmp_path, f"random_{seed}", seed=seed, acc=0.8, changes={"data.split": "random"},
                  results={"split": "random", "masked_test_accuracy": 0.70 + 0.02 * seed})
        study_run(tmp_path, f"domain_{seed}", seed=seed, acc=0.7, changes={"data.split": "domain"},
                  results={"split": "domain", "split_domains": domains})  # fmt: skip
    assert report_cli.main([str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert ("| data.split | domains train/val/test | runs (n of N) | test_accuracy mean | "
            "test_accuracy std | test_accuracy min | test_accuracy max | masked test acc mean |"
            in md)  # fmt: skip
    assert "| domain | 40/5/5 | 2 of 2 | 0.7000 | 0.0000 | 0.7000 | 0.7000 | - |" in md
    assert "| random |  | 2 of 2 | 0.8000 | 0.0000 | 0.8000 | 0.8000 | 0.7300 |" in md
    assert "BERT-masked input" in md
    assert "| data.split | domain | random |  | paired | 2 | 2 |" in md
    table = pd.read_csv(tmp_path / "report.csv")
    runs = table[table["row"] == "run"].set_index("run")
    assert runs.loc[f"{tmp_path.name}/random_2", "masked_test_accuracy"] == pytest.approx(0.74)
    assert math.isnan(runs.loc[f"{tmp_path.name}/domain_1", "masked_test_accuracy"])
    groups = table[table["row"] == "group"].set_index("data.split")
    assert groups.loc["domain", "split_domains"] == "40/5/5"


def test_old_sweep_report_has_no_new_sections(tmp_path: Path, capsys) -> None:
    for use_mlm in (True, False):
        for seed in SEEDS:
            make_run(tmp_path, f"{use_mlm}_{seed}", seed=seed, use_mlm=use_mlm,
                     acc=0.7 + seed / 100)  # fmt: skip
    assert report_cli.main([str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} - {f"{u}_{s}" for u in (True, False)
                                                   for s in SEEDS} == FILES  # fmt: skip
    for absent in ("Tuned", "training rows", "masked", "aseline", "domains"):
        assert absent not in md
    assert [ln for ln in md.splitlines() if ln.startswith("## ")] == [
        "## Groups", "## Comparisons", "## Failed and unfinished runs", "## Plots"]
    columns = set(pd.read_csv(tmp_path / "report.csv").columns)
    assert not columns & {"baseline", "masked_test_accuracy", "split_domains", "tried"}
