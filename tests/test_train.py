"""Real (tiny) training runs through the CLI: run folders, sweeps, failures, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.conftest import (
    TINY,
    compose,
    metric_values,
    read_metrics,
    read_results,
    run_cli,
    tiny,
    train_in_process,
)
from tokentango.loop import train

RESULT_FIELDS = {
    "status", "test_accuracy", "optimizer", "use_mlm", "seed", "train_frac", "steps",
    "train_seconds", "run_name", "device", "samples_per_second", "test_precision",
    "test_recall", "test_f1", "confusion_matrix",
}  # fmt: skip


def assert_complete_run(run_dir: Path) -> dict:
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "metrics.jsonl",
                 "results.json"):  # fmt: skip
        assert (run_dir / name).is_file(), f"{run_dir} lacks {name}"
    results = read_results(run_dir)
    assert results.keys() >= RESULT_FIELDS
    assert results["status"] in ("completed", "early_stopped")
    assert 0.0 <= results["test_accuracy"] <= 1.0
    metrics = read_metrics(run_dir)
    assert metrics and {"step", "cls_loss", "mlm_loss", "val_accuracy"} <= metrics[0].keys()
    assert metrics[-1]["step"] == results["steps"]
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts and all(p.with_suffix(".json").is_file() for p in ckpts)
    return results


def test_short_real_run_writes_a_complete_folder(tmp_path: Path, data_dir: Path) -> None:
    proc = run_cli("tokentango.train", *TINY, f"runtime.experiments_dir={tmp_path}",
                   f"runtime.data_dir={data_dir}", "trainer.keep_last=1")  # fmt: skip
    (run_dir,) = (tmp_path / "runs").iterdir()
    # experiments/runs/<time>_<run_name>, the name chosen before Hydra started.
    match = re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_([a-z]+-[a-z]+-[0-9a-f]{6})",
                         run_dir.name)  # fmt: skip
    assert match and read_results(run_dir)["run_name"] == match[1]
    results = assert_complete_run(run_dir)
    assert results["status"] == "completed" and results["steps"] == 12
    assert results["optimizer"] == "adam" and results["use_mlm"] is True
    assert results["seed"] == 42 and results["train_frac"] == 1.0 and results["device"] == "cpu"
    assert results["samples_per_second"] > 0
    cm = results["confusion_matrix"]
    assert (
        cm["labels"] == ["reliable", "fake"] and sum(map(sum, cm["matrix"])) == results["test_rows"]
    )
    assert [m["step"] for m in read_metrics(run_dir)] == [4, 8, 12]
    assert all(m["mlm_loss"] is not None for m in read_metrics(run_dir))
    # keep_last=1 keeps the newest and the best checkpoint.
    assert 1 <= len(list((run_dir / "checkpoints").glob("*.pt"))) <= 2
    assert "test accuracy" in proc.stdout and "true \\ pred" in proc.stdout
    assert results["run_name"] in proc.stdout


def test_launches_in_the_same_second_get_different_folders() -> None:
    dirs = [compose(with_hydra=True).hydra for _ in range(2)]
    assert dirs[0].run.dir != dirs[1].run.dir and dirs[0].sweep.dir != dirs[1].sweep.dir


def test_given_run_name_names_the_folder() -> None:
    assert compose("run_name=mine", with_hydra=True).hydra.run.dir.endswith("_mine")


def test_same_seed_and_config_give_the_same_metrics(tmp_path: Path, data_dir: Path) -> None:
    def run(name: str, seed: int) -> tuple[list[dict], dict]:
        cfg = tiny(data_dir, f"seed={seed}")
        run_dir = tmp_path / name
        run_dir.mkdir()
        results = train(cfg, run_dir, name)
        return metric_values(run_dir), results

    a_metrics, a = run("a", 42)
    b_metrics, b = run("b", 42)
    c_metrics, _ = run("c", 7)
    assert a_metrics == b_metrics
    assert a["test_accuracy"] == b["test_accuracy"]
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a_metrics != c_metrics


def test_a_sweep_writes_one_complete_folder_per_job(tiny_sweep: Path) -> None:
    runs = sorted(p for p in tiny_sweep.iterdir() if p.is_dir())
    assert len(runs) == 4
    seen = set()
    for run_dir in runs:
        results = assert_complete_run(run_dir)
        # Folder names: the job number and the overrides that vary, nothing given once.
        assert re.fullmatch(r"\d_seed=\d,use_mlm=(True|False)", run_dir.name), run_dir.name
        assert f"seed={results['seed']}" in run_dir.name
        config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        assert config.seed == results["seed"] and config.use_mlm == results["use_mlm"]
        seen.add((results["seed"], results["use_mlm"]))
    assert seen == {(1, True), (1, False), (2, True), (2, False)}
    assert len({read_results(r)["run_name"] for r in runs}) == 4


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path, data_dir: Path) -> None:
    good = tmp_path / "good.csv"
    from tokentango.synthetic import generate_corpus

    generate_corpus(1500, seed=5).to_csv(good)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": [1], "title": ["no content column"]}).to_csv(bad)
    sweep = tmp_path / "sweep"
    code = train_in_process("--multirun", f"data.path={bad},{good}", "use_mlm=false", *TINY,
                            f"hydra.sweep.dir={sweep}", f"runtime.data_dir={data_dir}")  # fmt: skip
    assert code != 0  # Hydra reports the failed job at the end
    by_status = {}
    for run_dir in (p for p in sweep.iterdir() if p.is_dir()):
        results = read_results(run_dir)
        by_status[results["status"]] = (run_dir, results)
    assert set(by_status) == {"failed", "completed"}
    failed = by_status["failed"][1]
    assert "bad.csv" in failed["error"] and "DataError" in failed["error"]
    completed_dir = by_status["completed"][0]
    assert_complete_run(completed_dir)
    assert all(m["mlm_loss"] is None for m in read_metrics(completed_dir))
    assert json.loads((completed_dir / "results.json").read_text())["use_mlm"] is False


@pytest.mark.slow
def test_default_nine_run_sweep(tmp_path: Path, data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    run_cli("tokentango.train", "--multirun", "seed=42,69,123", "optimizer=adam,adamw,sgd",
            "trainer.max_steps=30", "trainer.eval_every=10", "runtime.progress_bar=false",
            f"hydra.sweep.dir={sweep}", f"runtime.data_dir={data_dir}")  # fmt: skip
    runs = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(runs) == 9
    for run_dir in runs:
        assert_complete_run(run_dir)


def test_early_stopping_stops_once_patience_runs_out(tmp_path: Path, data_dir: Path) -> None:
    # Threshold 0 is reached at the first evaluation; patience 1 then stops at the first
    # evaluation without a new best, long before the 60-step budget.
    cfg = tiny(data_dir, "trainer.max_steps=60", "trainer.eval_every=2",
               "trainer.early_stopping.threshold=0.0",
               "trainer.early_stopping.patience=1")  # fmt: skip
    results = train(cfg, tmp_path, "es")
    metrics = read_metrics(tmp_path)
    assert results["status"] == "early_stopped" and results["steps"] < 60
    best = [m["val_accuracy"] for m in metrics]
    assert best[-1] <= max(best[:-1])  # the last evaluation brought no gain
    assert results["steps"] == metrics[-1]["step"]


def test_bf16_autocast_trains_on_cpu(tmp_path: Path, data_dir: Path) -> None:
    results = train(tiny(data_dir, "runtime.precision=bf16", "trainer.max_steps=4"), tmp_path,
                    "bf16")  # fmt: skip
    assert results["precision"] == "bf16" and results["steps"] == 4
    losses = [m["cls_loss"] for m in read_metrics(tmp_path)]
    assert all(0 < loss < 5 for loss in losses)  # finite, sane losses in bf16


def test_learning_rate_schedules_warm_up_and_decay() -> None:
    from tokentango.loop import lr_factor

    def factors(name: str, warmup: int, floor: float) -> list[float]:
        schedule = OmegaConf.create({"name": name, "warmup_steps": warmup,
                                     "min_lr_ratio": floor})  # fmt: skip
        return [lr_factor(step, 110, schedule) for step in range(111)]

    cosine, linear, constant = factors("cosine", 10, 0.1), factors("linear", 10, 0.0), \
        factors("constant", 0, 1.0)  # fmt: skip
    assert cosine[:10] == [pytest.approx((s + 1) / 10) for s in range(10)]  # warm-up
    assert cosine[10] == pytest.approx(1.0) and cosine[110] == pytest.approx(0.1)
    assert cosine[60] == pytest.approx(0.55)  # half-way: the mean of 1 and the floor
    assert linear[60] == pytest.approx(0.5) and linear[110] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(cosine[10:], cosine[11:], strict=False))
    assert constant == [1.0] * 111


def test_a_run_follows_its_schedule(tmp_path: Path, data_dir: Path) -> None:
    train(tiny(data_dir, "scheduler=linear", "scheduler.warmup_steps=4",
               "optimizer.lr=1e-3", "trainer.early_stopping=null"), tmp_path, "r")  # fmt: skip
    # Evaluations after steps 4, 8 and 12 of 12 show the rate of steps 4, 8 and 12: the
    # warm-up's last, then 3/8 and 7/8 of the way down.
    lrs = [m["lr"] for m in read_metrics(tmp_path)]
    assert lrs == [pytest.approx(1e-3), pytest.approx(1e-3 * 5 / 8), pytest.approx(1e-3 / 8)]
