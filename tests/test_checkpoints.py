"""Checkpoints: safe format, exact resume, selection, inspection, evaluation, prediction."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, compose_config, read_metrics, read_results, run_cli
from tokentango import checkpoints, evaluate, predict
from tokentango.checkpoints import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)  # fmt: skip
from tokentango.config import PROJECT_ROOT, legacy_env_overrides
from tokentango.model import BertClassifier
from tokentango.train import prepare_argv, train


def tiny_model(d_model: int = 16) -> BertClassifier:
    return BertClassifier(300, d_model=d_model, n_heads=2, n_layers=1, d_ff=32, max_length=48)


def metric_values(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "elapsed_seconds"} for m in read_metrics(run_dir)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny real run (in-process) whose checkpoints the read-only tests share."""
    root = tmp_path_factory.mktemp("trained")
    cfg = compose_config([*TINY, f"paths.data_dir={root / 'data'}", "trainer.keep_last=10"])
    run_dir = root / "experiments" / "runs" / "2026-01-01_00-00-00_tiny-run-000000"
    run_dir.mkdir(parents=True)
    train(cfg, run_dir, "tiny-run-000000")
    return run_dir


# --- format ----------------------------------------------------------------------------


def test_save_is_atomic_and_loads_with_weights_only(tmp_path: Path) -> None:
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path, model, opt, {"step": 7, "val_accuracy": 0.625,
                                                  "run_name": "r"})  # fmt: skip
    assert re.fullmatch(r"ckpt_\d{8}-\d{6}_step0000007_acc0\.6250\.pt", path.name)
    assert {p.name for p in tmp_path.iterdir()} == {path.name, path.with_suffix(".json").name}
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == checkpoints.FORMAT_VERSION
    other = tiny_model()
    meta = load_checkpoint(other, path)
    assert meta["step"] == 7 and meta["run_name"] == "r"
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_kill_during_a_write_leaves_no_file_under_the_real_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies_half_way(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, tiny_model(), None, {"step": 1, "val_accuracy": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_listing_reads_metadata_without_loading_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_model()
    for step, acc in [(1, 0.5), (2, 0.7), (3, 0.6)]:
        save_checkpoint(tmp_path / "run", model, None, {"step": step, "val_accuracy": acc,
                                                        "run_name": "r"})  # fmt: skip
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("tensors were loaded"))
    metas = list_checkpoints(tmp_path)
    assert [m["step"] for m in metas] == [3, 2, 1]  # newest first


def test_keep_last_and_best_of_one_run_only(tmp_path: Path) -> None:
    model = tiny_model()
    other = save_checkpoint(tmp_path, model, None, {"step": 9, "val_accuracy": 0.1,
                                                    "run_name": "other"})  # fmt: skip
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.6), (4, 0.7), (5, 0.65)]:
        save_checkpoint(tmp_path, model, None, {"step": step, "val_accuracy": acc,
                                                "run_name": "r"})  # fmt: skip
        checkpoints.prune_checkpoints(tmp_path, keep_last=2, run_name="r")
    assert sorted(m["step"] for m in list_checkpoints(tmp_path) if m["run_name"] == "r") == [
        2,
        4,
        5,
    ]
    assert other.exists()  # another run's checkpoint in a shared folder is never pruned
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_resuming_from_an_earlier_checkpoint_sets_the_later_ones_aside(tmp_path: Path) -> None:
    model = tiny_model()
    paths = [save_checkpoint(tmp_path, model, None, {"step": s, "val_accuracy": a,
                                                     "run_name": "r"})
             for s, a in [(1, 0.5), (2, 0.9), (3, 0.6)]]  # fmt: skip
    moved = checkpoints.set_aside_after(tmp_path, 1, "r")
    assert sorted(moved) == sorted(paths[1:])
    assert [m["step"] for m in list_checkpoints(tmp_path)] == [1]
    assert all(p.with_name(p.name + ".abandoned").exists() for p in paths[1:])


def test_a_failed_extension_keeps_the_finished_results(tmp_path: Path) -> None:
    from tokentango.train import record_failure

    finished = {"status": "completed", "test_accuracy": 0.9}
    (tmp_path / "results.json").write_text(json.dumps(finished))
    record_failure(tmp_path, finished, {"status": "failed", "error": "DataError: gone"})
    assert json.loads((tmp_path / "results.json").read_text()) == finished
    (failure,) = tmp_path.glob("results.failed-*.json")
    assert json.loads(failure.read_text())["error"] == "DataError: gone"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    record_failure(fresh, None, {"status": "failed", "error": "x"})
    assert json.loads((fresh / "results.json").read_text())["status"] == "failed"


def legacy_pth(path: Path, model: torch.nn.Module, full: bool = True) -> Path:
    """A file as the original tokentango wrote it."""
    payload = {"model_state_dict": model.state_dict(), "optimizer_state_dict": {}}
    if full:
        payload.update(
            config={"train_frac": 0.1, "batch_size": 32, "lr": 1e-4, "optimizer_type": "adamw",
                    "use_mlm": True, "seed": 42, "device": "cpu", "run_name": "old-run",
                    "checkpoint_dir": "checkpoints"},
            epoch=2, accuracy=0.8123, timestamp="2025-03-01 10:00:00",
            cls_losses=[0.7, 0.6], mlm_losses=[7.0, 6.5],
        )  # fmt: skip
    torch.save(payload, path)
    return path


def test_original_pth_files_are_listed_and_inspected(tmp_path: Path, capsys) -> None:
    legacy_pth(tmp_path / "model_20250301_0.8123.pth", tiny_model())
    legacy_pth(tmp_path / "older.pth", tiny_model(), full=False)
    save_checkpoint(
        tmp_path,
        tiny_model(),
        None,
        {"step": 3, "val_accuracy": 0.7, "run_name": "new", "optimizer": "adam"},
    )
    metas = {Path(m["path"]).name: m for m in list_checkpoints(tmp_path)}
    assert len(metas) == 3
    old = metas["model_20250301_0.8123.pth"]
    assert old["legacy"] and old["run_name"] == "old-run" and old["val_accuracy"] == 0.8123
    assert old["optimizer"] == "adamw" and old["epoch"] == 2 and old["cls_losses"] == [0.7, 0.6]
    assert metas["older.pth"]["run_name"] is None
    assert checkpoints.main(["list", str(tmp_path), "--optimizer", "adamw"]) == 0
    out = capsys.readouterr().out
    assert "old-run" in out and "original format" in out and "new" not in out.split("\n", 1)[1]
    assert checkpoints.main(["show", str(tmp_path / "model_20250301_0.8123.pth")]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["optimizer_type"] == "adamw"
    with pytest.raises(CheckpointError, match="original tokentango"):
        read_metadata(tmp_path / "older.pth", require_resumable=True)


class _RunsCode:
    def __reduce__(self):
        return (subprocess.call, (["touch", str(_RunsCode.marker)],))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    _RunsCode.marker = tmp_path / "pwned"
    evil = tmp_path / "ckpt_evil.pt"
    torch.save({"model": {}, "x": _RunsCode()}, evil)
    evil.with_suffix(".pth").write_bytes(pickle.dumps({"model_state_dict": _RunsCode()}))
    for path in (evil, evil.with_suffix(".pth")):
        with pytest.raises(CheckpointError, match="cannot load"):
            checkpoints.read_payload(path)
    assert list_checkpoints(tmp_path) == []
    assert not _RunsCode.marker.exists()


def test_truncated_corrupt_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path, tiny_model(), None, {"step": 1, "val_accuracy": 0.5})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    for path in (truncated, corrupt):
        with pytest.raises(CheckpointError, match=re.escape(path.name)):
            load_checkpoint(tiny_model(), path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tiny_model(), tmp_path / "missing.pt")


def test_another_model_size_names_the_setting(tmp_path: Path) -> None:
    cfg = {"model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "max_length": 48}}
    path = save_checkpoint(tmp_path, tiny_model(16), None,
                           {"step": 1, "val_accuracy": 0.5, "config": cfg})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"model\.d_model: 16 there, 32 here"):
        load_checkpoint(tiny_model(32), path)


# --- resume ----------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [
    ["trainer.max_steps=24", "trainer.early_stopping=null"],
    # Past an epoch boundary (~58 batches an epoch) with live early-stopping counters.
    ["trainer.max_steps=100", "trainer.eval_every=10", "optimizer.lr=3e-3",
     "trainer.early_stopping.threshold=0.5", "trainer.early_stopping.patience=6"],
], ids=["within-an-epoch", "across-epochs-with-early-stopping"])  # fmt: skip
def test_killed_after_third_checkpoint_and_resumed_gives_identical_metrics(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, budget: list[str]
) -> None:
    overrides = [*TINY, f"paths.data_dir={data_dir}", *budget]
    straight = tmp_path / "straight"
    straight.mkdir()
    expected = train(compose_config(overrides), straight, "r")
    crosses_epochs = "trainer.max_steps=100" in budget
    assert expected["epochs_completed"] >= 1 or not crosses_epochs

    killed = tmp_path / "killed"
    killed.mkdir()
    real_save, saved = checkpoints.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        saved.append(real_save(*args, **kwargs))
        if len(saved) == 3:
            raise KeyboardInterrupt  # killed right after its third checkpoint

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(overrides), killed, "r")
    monkeypatch.undo()
    assert len(read_metrics(killed)) == 3
    latest = checkpoints.latest_checkpoint(killed / "checkpoints")
    resumed = train(compose_config(overrides), killed, "r", resume_from=latest)

    assert metric_values(killed) == metric_values(straight)
    for key in ("status", "test_accuracy", "confusion_matrix", "steps", "best_step", "samples",
                "epochs_completed"):  # fmt: skip
        assert resumed[key] == expected[key], key


def test_cli_checkpoint_latest_resumes_that_run(tmp_path: Path, data_dir: Path) -> None:
    common = [*TINY, f"paths.experiments_dir={tmp_path}", f"paths.data_dir={data_dir}",
              "trainer.early_stopping=null"]  # fmt: skip
    run_cli("tokentango.train", *common, "trainer.max_steps=8", "optimizer=sgd", "seed=5")
    (run_dir,) = (tmp_path / "runs").iterdir()
    first = read_results(run_dir)
    config_before = (run_dir / ".hydra" / "config.yaml").read_text()
    # Resume with defaults on the command line: the run's own config (sgd, seed 5) wins.
    run_cli("tokentango.train", *common, "checkpoint=latest", "trainer.max_steps=12")
    assert list((tmp_path / "runs").iterdir()) == [run_dir]  # same folder, no new one
    results = read_results(run_dir)
    assert results["run_name"] == first["run_name"]
    assert results["steps"] == 12 and results["optimizer"] == "sgd" and results["seed"] == 5
    assert [m["step"] for m in read_metrics(run_dir)] == [4, 8, 12]
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before
    assert list((run_dir / ".hydra").glob("resumed_*/overrides.yaml"))


def test_sweep_rerun_skips_completed_and_resumes_interrupted(
    tmp_path: Path, data_dir: Path
) -> None:
    sweep = tmp_path / "sweep"
    command = ["--multirun", "seed=1,2", *TINY, "trainer.early_stopping=null",
               f"hydra.sweep.dir={sweep}", f"paths.data_dir={data_dir}"]  # fmt: skip
    run_cli("tokentango.train", *command)
    done, interrupted = sorted(p for p in sweep.iterdir() if p.is_dir())
    expected = metric_values(interrupted)
    done_results = (done / "results.json").read_text()
    # Interrupt job 1 after its second evaluation: drop what came later.
    (interrupted / "results.json").unlink()
    for path in sorted((interrupted / "checkpoints").glob("*.pt")):
        meta = read_metadata(path)
        if meta["step"] > 8:
            path.unlink()
            path.with_suffix(".json").unlink()
    lines = (interrupted / "metrics.jsonl").read_text().splitlines()
    (interrupted / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")

    # The rerun adds a setting that folder names leave out (it is the same for every job).
    proc = run_cli("tokentango.train", *command, "trainer.keep_last=7")
    assert "already completed, skipped" in proc.stdout
    assert (done / "results.json").read_text() == done_results
    assert read_results(interrupted)["status"] == "completed"
    assert metric_values(interrupted) == expected
    # Each job folder's .hydra/config.yaml still says what the job ran; the rerun's own
    # Hydra files are kept aside.
    for job in (done, interrupted):
        assert OmegaConf.load(job / ".hydra" / "config.yaml").trainer.keep_last == 3
        (aside,) = (job / ".hydra").glob("resumed_*")
        assert OmegaConf.load(aside / "config.yaml").trainer.keep_last == 7


def test_latest_in_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("tokentango.train", "checkpoint=latest", f"paths.experiments_dir={tmp_path}",
                   check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "no checkpoint found" in proc.stderr and str(tmp_path) in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_original_environment_variables_are_defaults_the_command_line_beats() -> None:
    env = {"TT_TRAIN_FRAC": "0.25", "TT_OPTIMIZER_TYPE": "SGD", "TT_USE_MLM": "0",
           "TT_SEED": "9", "TT_LR": "0.01", "TT_BATCH_SIZE": "8", "TT_RUN_NAME": "legacy",
           "TT_DEVICE": "cpu", "TT_CHECKPOINT_DIR": "/tmp/ck"}  # fmt: skip
    overrides = legacy_env_overrides(env, ["seed=3"])
    assert "seed=9" not in overrides
    cfg = compose_config([*overrides, "seed=3"])
    assert cfg.train_frac == 0.25 and cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.use_mlm is False and cfg.seed == 3 and cfg.optimizer.lr == 0.01
    assert cfg.trainer.batch_size == 8 and cfg.run_name == "legacy"
    assert cfg.checkpoint_dir == "/tmp/ck" and cfg.device == "cpu"


def test_model_checkpoint_path_selects_a_checkpoint(trained_run: Path) -> None:
    argv = prepare_argv([], {"MODEL_CHECKPOINT_PATH": str(trained_run)})
    newest = checkpoints.latest_checkpoint(trained_run)
    assert f"checkpoint='{newest}'" in argv
    assert f"hydra.run.dir='{trained_run}'" in argv
    assert prepare_argv(["checkpoint=train"], {"MODEL_CHECKPOINT_PATH": "latest"}) == [
        "checkpoint=train"
    ]


# --- using checkpoints -----------------------------------------------------------------


def test_evaluate_writes_a_new_result_beside_the_checkpoint(trained_run: Path, capsys) -> None:
    ckpt = checkpoints.best_checkpoint(trained_run / "checkpoints")
    assert evaluate.main([f"checkpoint={ckpt}", "split=val"]) == 0
    assert evaluate.main([f"checkpoint={ckpt}", "split=val"]) == 0
    results = sorted(ckpt.parent.glob(f"{ckpt.stem}.eval-val-*.json"))
    assert len(results) == 2  # the second never overwrites the first
    first = json.loads(results[0].read_text())
    assert first["split"] == "val" and 0 <= first["accuracy"] <= 1
    assert first["confusion_matrix"]["labels"] == ["reliable", "fake"]
    out = capsys.readouterr().out
    assert "accuracy" in out and "true \\ pred" in out
    # The whole test split, unmasked, reproduces the run's own final figures.
    run = read_results(trained_run)
    assert evaluate.main([f"checkpoint={ckpt}"]) == 0
    test = json.loads(max(ckpt.parent.glob(f"{ckpt.stem}.eval-test-*.json")).read_text())
    assert test["accuracy"] == run["test_accuracy"] and test["n"] == run["test_rows"]


def test_evaluate_masked_tokens_and_fraction(trained_run: Path) -> None:
    ckpt = checkpoints.latest_checkpoint(trained_run)
    cfg = evaluate.EvaluateConf(checkpoint=str(ckpt), fraction=0.5, use_masked_tokens=True)
    masked = evaluate.evaluate_checkpoint(cfg, ckpt)
    half = evaluate.evaluate_checkpoint(
        evaluate.EvaluateConf(checkpoint=str(ckpt), fraction=0.5), ckpt
    )
    full = evaluate.evaluate_checkpoint(evaluate.EvaluateConf(checkpoint=str(ckpt)), ckpt)
    assert masked["use_masked_tokens"] and masked["n"] == half["n"] == round(full["n"] / 2)
    # Same rows, masked inputs: the model sees other tokens, so its predictions move.
    p_masked = evaluate.predict(*_model_and_half_split(ckpt), mask_prob=0.15)
    p_plain = evaluate.predict(*_model_and_half_split(ckpt))
    assert not np.allclose(p_masked, p_plain)
    # Seeded masks: the same figures every time.
    again = evaluate.evaluate_checkpoint(cfg, ckpt)
    assert {k: v for k, v in again.items() if k != "evaluated_at"} == {
        k: v for k, v in masked.items() if k != "evaluated_at"
    }


def _model_and_half_split(ckpt: Path):
    from omegaconf import OmegaConf

    from tokentango.data import load_dataset, settings_from_config

    model, meta, _ = checkpoints.restore_model(ckpt)
    cfg = OmegaConf.create(meta["config"])
    test = load_dataset(settings_from_config(cfg), cfg.paths.data_dir).splits["test"]
    return model, test, 64, torch.device("cpu")


@pytest.mark.parametrize("args,error", [
    (["checkpoint=/no/such.pt"], "no such file"),
    (["device=tpu"], "device"),
    (["batch_size=0"], "batch_size"),
    (["split=dev"], "split"),
    (["fraction=2"], "fraction"),
    (["bogus=1"], "bogus"),
    (["batch_size=many"], "batch_size"),
])  # fmt: skip
def test_evaluate_bad_input(trained_run: Path, args: list[str], error: str, capsys) -> None:
    ckpt = checkpoints.latest_checkpoint(trained_run)
    assert evaluate.main([f"checkpoint={ckpt}", *args]) == 2
    assert error in capsys.readouterr().err


def test_predict_text_file_and_csv(trained_run: Path, tmp_path: Path, capsys) -> None:
    ckpt = checkpoints.latest_checkpoint(trained_run)
    assert predict.main([f"checkpoint={ckpt}", "text=Officials reported the survey data."]) == 0
    line = capsys.readouterr().out.strip()
    assert re.match(r"(fake|reliable) +p_fake=0\.\d{4}  Officials", line)
    article = tmp_path / "article.txt"
    article.write_text("Shocking secret exposed!\n\nThe elites lied.")
    assert predict.main([f"checkpoint={ckpt}", f"file={article}", "json=true"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] in ("fake", "reliable") and 0 <= row["p_fake"] <= 1
    rows = tmp_path / "rows.csv"
    rows.write_text('content,type\n"one\nline two",fake\nthree,reliable\n,\n')
    assert predict.main([f"checkpoint={ckpt}", f"csv={rows}"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert predict.main([f"checkpoint={ckpt}"]) == 2
    assert "exactly one of" in capsys.readouterr().err


def test_checkpoints_cli_list_filters_sort_and_losses(trained_run: Path, tmp_path: Path,
                                                      capsys) -> None:  # fmt: skip
    root = trained_run.parent
    assert checkpoints.main(["list", str(root), "--sort", "accuracy", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and [r["val_accuracy"] for r in rows] == sorted(
        (r["val_accuracy"] for r in rows), reverse=True
    )
    assert checkpoints.main(["list", str(root), "--use-mlm", "false"]) == 0
    assert capsys.readouterr().out.strip() == "no checkpoints match"
    assert (
        checkpoints.main(
            [
                "list",
                str(root),
                "--run-name",
                "tiny-run-000000",
                "--limit",
                "1",
                "--optimizer",
                "adam",
                "--min-accuracy",
                "0",
            ]
        )
        == 0
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # header + one
    png = tmp_path / "losses.png"
    assert checkpoints.main(["losses", "tiny-run-000000", str(root), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert len([ln for ln in out.splitlines() if re.match(r" +\d+ ", ln)]) == 12  # every step
    assert png.stat().st_size > 1000
    assert checkpoints.main(["losses", "nobody", str(root)]) == 2
    assert checkpoints.main(["list", str(tmp_path / "missing")]) == 2


def test_nothing_loads_a_checkpoint_unsafely() -> None:
    load_call = re.compile(r"torch\.load\(")
    calls = [(path, line) for path in (PROJECT_ROOT / "src").rglob("*.py")
             for line in path.read_text().splitlines() if load_call.search(line)]  # fmt: skip
    assert calls  # the one place that loads: checkpoints.read_payload
    for path, line in calls:
        assert "weights_only=True" in line, f"{path}: {line.strip()}"
