"""`model=tfidf_lr`: the TF-IDF + logistic regression baseline trains on the encoders' own
rows and token ids, through the same entry point and sweeps, writes the same run folder
(results.json, metrics.jsonl, no checkpoint) in seconds, and every way of asking it for a
checkpoint is one clear line."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from tests.conftest import TINY, compose, read_metrics, read_results, run_cli, train_in_process
from tokentango import baseline, rundir
from tokentango.cli import evaluate as evaluate_cli
from tokentango.cli import predict as predict_cli
from tokentango.config import ConfigError, validate
from tokentango.data import load_run_dataset
from tokentango.interrupt import RunInterrupted

# TINY's data and budget without its encoder keys (a baseline has none of them).
TINY_DATA = [o for o in TINY if not o.startswith("model.")]
FILTER = "hydra.sweeper.filters=[{hydra_filter_sweeper.Expression: " \
         "{expr: \"model['name'] == 'tfidf_lr' and use_mlm\"}}]"  # fmt: skip


def baseline_cfg(data_dir: Path, *overrides: str):
    return compose("model=tfidf_lr", *TINY_DATA, f"runtime.data_dir={data_dir}", *overrides)


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One real tiny baseline run through the entry point (in-process): its run folder."""
    experiments = tmp_path_factory.mktemp("baseline")
    assert train_in_process("model=tfidf_lr", *TINY_DATA, f"runtime.data_dir={data_dir}",
                            f"runtime.experiments_dir={experiments}") == 0  # fmt: skip
    (run_dir,) = (experiments / "runs").iterdir()
    return run_dir


def test_a_sweep_may_set_the_encoders_keys_which_the_baseline_ignores() -> None:
    """`--multirun model=small,tfidf_lr model.d_model=128` must not fail its baseline jobs."""
    cfg = compose("model=tfidf_lr", "model.d_model=128", "model.n_layers=4")
    validate(cfg)
    assert cfg.model.d_model == 128 and compose("model=tfidf_lr").model.d_model is None


def test_the_preset_composes_and_reads_right() -> None:
    cfg = compose("model=tfidf_lr")
    validate(cfg)
    assert cfg.model.name == "tfidf_lr" and cfg.use_mlm is False
    assert list(cfg.model.ngram_range) == [1, 2] and len(cfg.model.C) >= 2
    # The encoders are unchanged by it.
    assert compose("model=original").model.d_model == 32
    assert compose().use_mlm is True and compose().model.name == "small"


def test_the_baseline_reads_the_transformer_rows(trained_run: Path, baseline_run: Path,
                                                  data_dir: Path) -> None:  # fmt: skip
    """Same cache folder, same split, same test rows; its feature rows are the split's."""
    from tests.conftest import tiny

    transformer, base = load_run_dataset(tiny(data_dir)), load_run_dataset(baseline_cfg(data_dir))
    assert transformer.cache_dir == base.cache_dir
    for name in ("train", "val", "test"):
        assert np.array_equal(transformer.splits[name].rows, base.splits[name].rows)
    test = base.splits["test"]
    vectorizer = baseline.make_vectorizer(baseline_cfg(data_dir).model)
    baseline.features(base.splits["train"], vectorizer, fit=True)
    assert baseline.features(test, vectorizer).shape[0] == len(test)
    # A row's document is its ids after [CLS], up to its length: no [CLS], no [PAD].
    docs = baseline.documents(test)
    i = int(np.argmin(test.lengths))
    assert docs[i].split() == [str(t) for t in test.ids[i, 1 : test.lengths[i]]]
    specials = {str(base.tokenizer.token_to_id(t)) for t in ("[CLS]", "[PAD]")}
    assert not specials & set(vectorizer.vocabulary_)
    # Both runs are scored on the whole, same test split.
    assert read_results(baseline_run)["test_rows"] == read_results(trained_run)["test_rows"] \
        == len(test)  # fmt: skip


def test_with_train_rows_the_baseline_fits_the_encoders_subsample(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.train_rows cuts the training split the same way (the run's seed) for both."""
    from tests.conftest import tiny
    from tokentango.loop import set_up

    training = set_up(tiny(data_dir, "data.train_rows=64", "seed=5"), tmp_path / "enc", "enc")
    fitted: list[np.ndarray] = []
    real_features = baseline.features

    def spy(split, vectorizer, fit=False):
        if fit:
            fitted.append(np.asarray(split.rows))
        return real_features(split, vectorizer, fit)

    monkeypatch.setattr(baseline, "features", spy)
    results = baseline.train(baseline_cfg(data_dir, "data.train_rows=64", "seed=5"),
                             tmp_path / "base", "base")  # fmt: skip
    assert np.array_equal(fitted[0], training.data.splits["train"].rows)
    assert results["train_rows"] == 64 and results["train_rows_available"] > 64
    assert results["split"] == "random"


def test_a_real_baseline_run_writes_results_and_metrics_in_seconds(baseline_run: Path) -> None:
    results = read_results(baseline_run)
    assert results["status"] == "completed" and results["model"] == "tfidf_lr"
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["baseline"] is True
    assert results["use_mlm"] is False and results["optimizer"] == baseline.SOLVER
    assert results["best_checkpoint"] is None and results["features"] > 0
    assert results["train_seconds"] < 60  # seconds, not minutes, even on 2 shared cores
    grid = results["config"]["model"]["C"]
    metrics = read_metrics(baseline_run)
    assert [m["step"] for m in metrics] == list(range(1, len(grid) + 1)) == \
        list(range(1, results["steps"] + 1))  # fmt: skip
    assert [m["C"] for m in metrics] == grid
    assert all(m["mlm_loss"] is None and 0 <= m["val_accuracy"] <= 1 and m["cls_loss"] > 0
               for m in metrics)  # fmt: skip
    best = metrics[results["best_step"] - 1]
    assert best["C"] == results["C"] and best["val_accuracy"] == results["best_val_accuracy"]
    assert best["val_accuracy"] == max(m["val_accuracy"] for m in metrics)
    cm = results["confusion_matrix"]
    assert cm["labels"] == ["reliable", "fake"]
    assert sum(map(sum, cm["matrix"])) == results["test_rows"]
    assert not (baseline_run / rundir.CHECKPOINT_DIR).exists()


def test_fit_and_select_keeps_the_best_c_on_validation() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((200, 30))
    y = (x[:, 0] + 0.3 * rng.random(200) > 0.65).astype(int)
    seen = []
    chosen = baseline.fit_and_select(csr_matrix(x[:150]), y[:150], csr_matrix(x[150:]), y[150:],
                                     [0.001, 1.0, 100.0], 100, 0, seen.append)  # fmt: skip
    assert [r["step"] for r in seen] == [1, 2, 3] and chosen.records == seen
    assert chosen.val_accuracy == max(r["val_accuracy"] for r in seen)
    assert seen[chosen.step - 1]["C"] == chosen.C
    assert chosen.model.C == chosen.C  # the fitted model itself, not a refit


def test_a_sweep_runs_both_models_reports_both_and_skips_them_on_rerun(
    tmp_path: Path, data_dir: Path
) -> None:  # fmt: skip
    sweep = tmp_path / "sweep"
    command = ["--multirun", "model=small,tfidf_lr", *TINY_DATA, "trainer.max_steps=2",
               "trainer.eval_every=2", f"runtime.data_dir={data_dir}",
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    run_cli("tokentango.train", *command)
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert folders == ["0_model=small", "1_model=tfidf_lr"]
    assert read_results(sweep / "1_model=tfidf_lr")["model"] == "tfidf_lr"
    proc = run_cli("tokentango.report", str(sweep))
    table = (sweep / "report.md").read_text()
    assert "| small |" in table and "| tfidf_lr |" in table, table
    assert "tfidf_lr" in proc.stdout
    # The status and checkpoint tools read the baseline's folder too.
    status = run_cli("tokentango.status", str(sweep)).stdout
    assert "1_model=tfidf_lr" in status and status.count("done") >= 2
    assert "tfidf_lr" not in run_cli("tokentango.checkpoints", "list", str(sweep)).stdout
    rerun = run_cli("tokentango.train", *command)
    assert "1_model=tfidf_lr: already completed, skipped" in rerun.stdout


def test_a_filtered_sweep_makes_no_baseline_job_with_mlm(tmp_path: Path, data_dir: Path) -> None:
    """hydra/sweeper=filter drops `model=tfidf_lr use_mlm=true` from a model x use_mlm grid
    (its expression filter resolves each job's config, our job folder name included)."""
    sweep = tmp_path / "sweep"
    proc = run_cli("tokentango.train", "--multirun", "hydra/sweeper=filter", FILTER,
                   "model=small,tfidf_lr", "use_mlm=true,false", *TINY_DATA,
                   "trainer.max_steps=2", "trainer.eval_every=2",
                   f"runtime.data_dir={data_dir}", f"hydra.sweep.dir={sweep}")  # fmt: skip
    runs = {p.name: read_results(p) for p in sweep.iterdir() if p.is_dir()}
    assert sorted(runs) == ["0_model=small,use_mlm=True", "1_model=small,use_mlm=False",
                            "2_model=tfidf_lr,use_mlm=False"], proc.stdout  # fmt: skip
    assert all(r["status"] == "completed" for r in runs.values())
    assert not [r for r in runs.values() if r["model"] == "tfidf_lr" and r["use_mlm"]]
    assert "Filtered: model=tfidf_lr use_mlm=True" in proc.stdout + proc.stderr


@pytest.mark.parametrize("overrides,named", [
    (["use_mlm=true"], "use_mlm=true has no meaning for model=tfidf_lr"),
    (["objective=mlm", "use_mlm=true"], "use_mlm=true has no meaning for model=tfidf_lr"),
    (["model.C=[0,1]"], "model.C=[0.0, 1.0]: every value must be > 0"),
    (["model.C=[]"], "model.C=[]: must list at least one value"),
    (["model.ngram_range=[2,1]"], "model.ngram_range=[2, 1]: must be [min_n, max_n]"),
    (["model.ngram_range=[1]"], "model.ngram_range=[1]"),
    (["model.min_df=0"], "model.min_df=0: must be >= 1"),
    (["model.max_iter=0"], "model.max_iter=0"),
    (["model.bogus=16"], "unknown key model.bogus"),
    (["checkpoint=latest"], "a model=tfidf_lr run writes no checkpoint"),
])  # fmt: skip
def test_bad_baseline_settings_are_one_line(overrides: list[str], named: str, tmp_path: Path,
                                            capsys) -> None:  # fmt: skip
    code = train_in_process("model=tfidf_lr", *TINY_DATA, f"runtime.data_dir={tmp_path / 'd'}",
                            f"runtime.experiments_dir={tmp_path / 'e'}", *overrides)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err, err
    runs = tmp_path / "e" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_a_bad_type_fails_at_composition_naming_the_key() -> None:
    from hydra.errors import ConfigCompositionException

    for override, key in [("model.C=abc", "model.C"), ("model.min_df=two", "model.min_df")]:
        with pytest.raises(ConfigCompositionException) as info:
            compose("model=tfidf_lr", override)
        assert key in str(info.value) + str(info.value.__cause__)


def test_a_baseline_run_has_no_checkpoint_to_evaluate_predict_or_resume(
    baseline_run: Path, tmp_path: Path, capsys
) -> None:  # fmt: skip
    said = "a model=tfidf_lr run has no checkpoint"
    assert evaluate_cli.main(["--checkpoint", str(baseline_run)]) == 2
    assert predict_cli.main(["--checkpoint", str(baseline_run), "--text", "some news"]) == 2
    assert train_in_process(f"checkpoint={baseline_run}",
                            f"runtime.experiments_dir={tmp_path}") == 2  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") and said in line
                                   for line in lines), lines  # fmt: skip
    assert "rerun it with model=tfidf_lr" in lines[0]


def test_a_stop_signal_records_interrupted(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    def stopped(*args, **kwargs):  # a real SIGTERM while it fits: StopRequests stops it
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(baseline, "fit_and_score", stopped)
    with pytest.raises(RunInterrupted):
        baseline.train(baseline_cfg(data_dir), tmp_path, "stopped-run")
    results = read_results(tmp_path)
    assert results["status"] == "interrupted" and results["signal"] == "SIGTERM"
    assert results["model"] == "tfidf_lr" and results["checkpoint"] is None


def test_validate_refuses_resuming_a_baseline(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="writes no checkpoint"):
        validate(baseline_cfg(data_dir, "checkpoint=/some/file.pt"))


@pytest.mark.parametrize("study", ["mlm_ablation", "split_comparison", "data_scaling"])
def test_the_studies_filter_out_exactly_the_mlm_baseline_jobs(study: str) -> None:
    from hydra_filter_sweeper import Expression
    from omegaconf import OmegaConf

    sweeper = compose(f"+experiment={study}", with_hydra=True).hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.filter.FilterSweeper"
    (spec,) = OmegaConf.to_container(sweeper.filters)
    expr = spec["hydra_filter_sweeper.Expression"]["expr"]
    dropped = []
    for model in ("small", "tfidf_lr"):
        for use_mlm in ("true", "false"):
            cfg = compose(f"+experiment={study}", f"model={model}", f"use_mlm={use_mlm}")
            plain = OmegaConf.to_container(cfg, resolve=True)  # as the sweeper hands it over
            if Expression(config=plain, directory="").filter(expr=expr):
                dropped.append((model, use_mlm))
            else:
                validate(cfg)
    assert dropped == [("tfidf_lr", "true")]
