"""Hyper-parameter search (`+experiment=search`: the `hydra/sweeper=search` preset on AdamW), run
for real: a seeded Optuna study kept in the sweep folder, maximizing validation accuracy,
that survives a failing trial, resumes with new trials in new folders, and whose best trial
the report shows."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY, compose, read_results, run_cli
from tests.test_report import make_run
from tokentango import report, rundir
from tokentango.cli import report as report_cli

SEARCH_CONFIG = compose("+experiment=search", with_hydra=True)
PRESET = SEARCH_CONFIG.hydra.sweeper
# The preset's lr and warm-up ranges suit the default run's 622 steps; these let a 30-step
# tiny run leave chance, so trials score differently. A negative weight decay makes torch's
# AdamW raise as the run sets up: those trials fail for real. The batch size is the preset's.
SEARCH = [
    "--multirun", "+experiment=search",
    *[o for o in TINY if not o.startswith("trainer.batch_size=")],
    "trainer.max_steps=30", "trainer.eval_every=10", "trainer.early_stopping=null",
    "use_mlm=false", "optimizer.lr=tag(log,interval(1e-2,5e-2))",
    "optimizer.weight_decay=choice(-1.0,0.0)", "scheduler.warmup_steps=int(interval(0,10))",
]  # fmt: skip
SEARCHED = ["optimizer.lr", "optimizer.weight_decay", "scheduler.warmup_steps",
            "trainer.batch_size"]  # fmt: skip


def search_command(data_dir: Path, trials: int, sweep: Path) -> list[str]:
    return [*SEARCH, f"hydra.sweeper.n_trials={trials}", f"runtime.data_dir={data_dir}",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip


def copy_of(sweep: Path, to: Path) -> tuple[Path, dict[str, str]]:
    """A copy of a sweep folder, and each run folder's results.json text there."""
    shutil.copytree(sweep, to)
    return to, {p.name: (p / rundir.RESULTS_FILE).read_text() for p in to.iterdir() if p.is_dir()}


def load_study(sweep: Path):
    with warnings.catch_warnings():
        # optuna 2.10 on SQLAlchemy 1.4 (pinned below 2: pyproject) warns about 2.0 APIs.
        warnings.simplefilter("ignore", DeprecationWarning)
        import optuna

        return optuna.load_study(study_name=PRESET.study_name,
                                 storage=f"sqlite:///{sweep}/optuna.db")  # fmt: skip


def trial_folder(sweep: Path, number: int) -> Path:
    [folder] = [p for p in sweep.iterdir() if p.is_dir() and p.name.startswith(f"{number}_")]
    return folder


def folder_params(folder: Path) -> dict:
    config = OmegaConf.load(folder / rundir.CONFIG_FILE)
    return {key: OmegaConf.select(config, key) for key in SEARCHED}


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One real 4-trial search in the sweep folder it names itself (after the launch time:
    the study must be in the same folder as the trials), shared by the tests that only
    read it."""
    experiments = tmp_path_factory.mktemp("search")
    run_cli("tokentango.train", *SEARCH, "hydra.sweeper.n_trials=4",
            f"runtime.data_dir={data_dir}", f"runtime.experiments_dir={experiments}")
    [sweep] = (experiments / "sweeps").iterdir()
    return sweep


def test_the_preset_is_a_seeded_tpe_search_for_the_best_validation_accuracy() -> None:
    assert SEARCH_CONFIG.optimizer._target_ == "torch.optim.AdamW"
    preset = compose("hydra/sweeper=search", with_hydra=True).hydra.sweeper
    assert OmegaConf.to_container(preset) == OmegaConf.to_container(PRESET)  # as written
    assert PRESET.sampler._target_ == "optuna.samplers.TPESampler"
    assert PRESET.sampler.seed is not None
    assert PRESET.direction == "maximize" and PRESET.max_failure_rate == 1.0
    assert OmegaConf.to_container(PRESET, resolve=False)["storage"] == (
        "sqlite:///${hydra.sweep.dir}/optuna.db")  # fmt: skip
    assert sorted(PRESET.params) == sorted(SEARCHED)
    assert "log" in PRESET.params["optimizer.lr"]


def test_every_trial_is_a_run_folder_and_the_study_is_in_the_sweep_folder(search: Path) -> None:
    study = load_study(search)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert (search / "optimization_results.yaml").is_file()
    for trial in study.trials:
        # The job number is the trial's; the folder holds the run with the trial's settings.
        folder = trial_folder(search, trial.number)
        assert folder_params(folder) == pytest.approx(trial.params)
        assert folder.name.startswith(f"{trial.number}_optimizer.lr=")
        if trial.state.name == "COMPLETE":
            # What the study maximizes is the run's best validation accuracy, never test's.
            results = read_results(folder)
            assert trial.value == results["best_val_accuracy"]
    values = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    assert len(set(values)) > 1  # the trials really differ, so "best" means something


def test_a_failing_trial_is_recorded_as_failed_and_the_study_goes_on(search: Path) -> None:
    # run_cli checked the exit status: 0, the search ran to its end.
    study = load_study(search)
    states = [t.state.name for t in study.trials]
    assert "FAIL" in states and states.index("FAIL") < len(states) - 1
    assert states.count("COMPLETE") >= 2
    for trial in study.trials:
        results = read_results(trial_folder(search, trial.number))
        if trial.params["optimizer.weight_decay"] < 0:
            assert trial.state.name == "FAIL" and trial.value is None
            assert results["status"] == "failed" and "weight_decay" in results["error"]
        else:
            assert trial.state.name == "COMPLETE" and results["status"] == "completed"


def test_the_same_search_samples_the_same_trials(search: Path, tmp_path: Path,
                                                 data_dir: Path) -> None:  # fmt: skip
    again = tmp_path / "again"
    run_cli("tokentango.train", *search_command(data_dir, 2, again))
    first, second = load_study(search).trials[:2], load_study(again).trials
    assert [t.params for t in second] == [t.params for t in first]
    assert [(t.state, t.value) for t in second] == [(t.state, t.value) for t in first]
    assert sorted(p.name for p in again.iterdir() if p.is_dir()) == sorted(
        trial_folder(search, n).name for n in (0, 1))  # fmt: skip


def test_rerunning_into_the_sweep_folder_adds_trials_in_new_folders(
    search: Path, tmp_path: Path, data_dir: Path
) -> None:
    sweep, before = copy_of(search, tmp_path / "sweep")
    run_cli("tokentango.train", *search_command(data_dir, 2, sweep))
    study = load_study(sweep)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4, 5]
    # Hydra numbers a rerun's jobs from 0: the sweeper numbers them as the study's trials, so
    # the new trials get folders of their own and the earlier ones are left as they were.
    folders = {p.name for p in sweep.iterdir() if p.is_dir()}
    assert len(folders) == 6 and set(before) < folders
    for name, text in before.items():
        assert (sweep / name / rundir.RESULTS_FILE).read_text() == text
    for trial in study.trials[4:]:
        assert folder_params(trial_folder(sweep, trial.number)) == pytest.approx(trial.params)
        assert read_results(trial_folder(sweep, trial.number))["status"] in ("completed", "failed")
    # A seeded sampler built afresh would draw the first run's points again; it does not.
    earlier = [t.params["optimizer.lr"] for t in study.trials[:4]]
    assert all(t.params["optimizer.lr"] not in earlier for t in study.trials[4:])


def test_a_study_rebuilt_over_its_run_folders_takes_finished_trials_from_them(
    search: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Without optuna.db, the same command samples the same first trials into the same
    folders: a finished one is skipped, and the study is told its best validation accuracy."""
    sweep, before = copy_of(search, tmp_path / "sweep")
    (sweep / "optuna.db").unlink()
    proc = run_cli("tokentango.train", *search_command(data_dir, 2, sweep))
    old, new = load_study(search).trials[:2], load_study(sweep).trials
    assert [t.params for t in new] == [t.params for t in old]
    assert [(t.state, t.value) for t in new] == [(t.state, t.value) for t in old]
    for trial in new:
        folder = trial_folder(sweep, trial.number)
        if trial.state.name == "COMPLETE":
            assert f"{folder.name}: already completed, skipped" in proc.stdout
            assert (folder / rundir.RESULTS_FILE).read_text() == before[folder.name]


def test_a_search_in_which_no_trial_finishes_says_so(tmp_path: Path, data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("tokentango.train", *search_command(data_dir, 1, sweep),
                   "optimizer.weight_decay=-1.0", check=False)  # fmt: skip
    assert proc.returncode != 0
    assert f"no trial of study {PRESET.study_name} finished" in proc.stderr
    assert [t.state.name for t in load_study(sweep).trials] == ["FAIL"]


def test_the_report_reads_a_search_and_shows_its_best_trial(search: Path, tmp_path: Path,
                                                           capsys) -> None:  # fmt: skip
    assert report_cli.main([str(search), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    study = load_study(search)
    best = study.best_trial
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert f"4 runs ({4 - len(failed)} finished) in 4 groups" in text
    assert "## Best trial" in text
    assert f"Optuna search: 4 trials ({4 - len(failed)} finished, {len(failed)} failed" in text
    folder = trial_folder(search, best.number)
    results = read_results(folder)
    assert (f"**Trial {best.number}**: validation accuracy {best.value:.4f} (step "
            f"{results['best_step']}), test accuracy {results['test_accuracy']:.4f}") in text
    assert f"run folder: `{folder}`" in text
    assert f"optimizer.lr={best.params['optimizer.lr']:g}" in text
    for trial in failed:  # listed with the others that did not finish
        assert trial_folder(search, trial.number).name in text
    # The study's own files sit beside the runs and are no runs.
    assert {"optuna.db", "optimization_results.yaml"} <= {p.name for p in search.iterdir()}


def test_a_sweep_of_another_sweeper_has_no_best_trial(tmp_path: Path) -> None:
    for seed in (1, 2):
        make_run(tmp_path, f"{seed - 1}_seed={seed}", seed=seed)
    runs = report.find_runs([tmp_path])
    assert report.search_trials(runs) == []
    assert "Best trial" not in report.write_report(tmp_path / "out", [tmp_path], runs)


def test_long_numbers_are_written_short_only_where_a_job_name_would_be_cut() -> None:
    searched = ["optimizer.lr=0.0005611516415334506", "optimizer.weight_decay=0.09507143064099162",
                "scheduler.warmup_steps=147", "trainer.batch_size=16"]  # fmt: skip
    assert rundir.job_dirname(3, searched, searched) == (
        "3_optimizer.lr=0.000561152,optimizer.weight_decay=0.0950714,"
        "scheduler.warmup_steps=147,trainer.batch_size=16")  # fmt: skip
    grid = ["optimizer.lr=0.00012345678", "optimizer=adamw"]
    assert rundir.job_dirname(0, grid, grid) == "0_optimizer.lr=0.00012345678,optimizer=adamw"
