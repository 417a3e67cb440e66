"""The explorer (issue 13): tokentango.explore's functions, notebooks/explore.py run headless
as a script, and the app served by `marimo run` and driven in headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from tokentango import explore, rundir
from tokentango.checkpoints import filter_checkpoints, list_checkpoints
from tokentango.config import PROJECT_ROOT
from tokentango.report import compare, find_runs, group_runs, summarize

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore.py"
SWEEP_NAME = "2026-01-01_00-00-00_tiny"
SWEEP_LABEL = f"sweeps/{SWEEP_NAME}"


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory, tiny_sweep: Path) -> Path:
    """An experiments folder as a user has it: the tiny sweep, a sweep that has only just
    started (no run folder yet), and single runs, one failed and one unfinished (a copy of a
    sweep run without results.json, as a run still going looks)."""
    root = tmp_path_factory.mktemp("experiments")
    shutil.copytree(tiny_sweep, root / "sweeps" / SWEEP_NAME)
    (root / "sweeps" / "2026-01-02_00-00-00_starting").mkdir()
    first = sorted(p for p in tiny_sweep.iterdir() if rundir.is_run_dir(p))[0]
    failed = root / "runs" / "2026-01-01_00-00-00_failed"
    shutil.copytree(first, failed)
    (failed / rundir.RESULTS_FILE).write_text(json.dumps(
        {"status": "failed", "error": "RuntimeError: out of memory"}))  # fmt: skip
    unfinished = root / "runs" / "2026-01-01_00-00-01_running"
    shutil.copytree(first, unfinished)
    (unfinished / rundir.RESULTS_FILE).unlink()
    return root


def test_experiments_dir_from_argument_environment_and_default(monkeypatch, tmp_path):
    monkeypatch.delenv(explore.ENV_VAR, raising=False)
    assert explore.experiments_dir().name == "experiments"
    monkeypatch.setenv(explore.ENV_VAR, str(tmp_path))
    assert explore.experiments_dir() == tmp_path
    assert explore.experiments_dir(tmp_path / "given") == tmp_path / "given"


def test_empty_experiments_say_what_to_run_first(tmp_path):
    assert explore.list_folders(tmp_path / "absent") == []
    message = explore.empty_message(tmp_path, explore.list_folders(tmp_path))
    assert "python -m tokentango.train" in message and "--multirun" in message


def test_folders_runs_and_problems(experiments):
    folders = explore.list_folders(experiments)
    labels = [f.label for f in folders]
    assert labels[:2] == ["sweeps/2026-01-02_00-00-00_starting", SWEEP_LABEL]  # newest first
    assert set(labels[2:]) == {"runs/2026-01-01_00-00-00_failed",
                               "runs/2026-01-01_00-00-01_running"}  # fmt: skip
    assert explore.empty_message(experiments, folders) is None
    loaded = explore.load_runs([str(f.path) for f in folders])
    assert len(loaded.runs) == 6
    assert len(loaded.problems) == 1 and "no run folders" in loaded.problems[0]
    problems = explore.problem_runs(loaded.runs)
    assert sorted(problems["status"]) == ["failed", "unfinished"]
    assert "out of memory" in " ".join(problems["error"])
    jobs = explore.jobs([str(experiments / "sweeps" / SWEEP_NAME)])
    assert list(jobs["state"]) == ["done"] * 4


def test_sweep_views_are_the_reports(experiments):
    runs = find_runs([experiments / "sweeps" / SWEEP_NAME])
    groups = group_runs(runs)
    choices = explore.setting_choices(groups)
    assert choices == {"use_mlm": {"false": False, "true": True}}
    views = explore.sweep_views(groups, tune_key="use_mlm")
    pd.testing.assert_frame_equal(views.summary, summarize(groups))
    pd.testing.assert_frame_equal(views.comparisons, compare(groups))
    assert len(views.runs) == 4 and views.tune_error is None
    assert list(views.tuned["row"]) == ["tuned"]
    assert all(isinstance(f, Figure) for f in views.figures.values())
    assert {"validation accuracy", "test_accuracy", "losses", "tuned: use_mlm"} <= \
        set(views.figures)  # fmt: skip
    assert "not a setting" in explore.sweep_views(groups, tune_key="seed").tune_error
    shown = explore.metric_first(views.summary, "test_accuracy")
    assert list(shown.columns[:3]) == ["group", "use_mlm", "runs"]
    assert shown.columns[3] == "test_accuracy_mean"
    # Filters: one value of use_mlm; a value the filters did not offer yet is kept.
    only = explore.filter_groups(groups, {"use_mlm": [True]}, known=choices)
    assert [g.settings["use_mlm"] for g in only] == [True]
    assert explore.filter_groups(groups, {"use_mlm": [True]}, known={"use_mlm": {}}) == groups
    # What the filters leave out is remembered (a column not offered now is kept as it was).
    assert explore.excluded_values(choices, {"use_mlm": ["true"]}, {"optimizer": ["sgd"]}) == \
        {"optimizer": ["sgd"], "use_mlm": ["false"]}  # fmt: skip


def test_baseline_group_kept_by_its_switch_not_the_filters(experiments):
    groups = group_runs(find_runs([experiments / "sweeps" / SWEEP_NAME]))
    run = groups[0].runs[0]
    run.results = {**run.results, "baseline": True}
    assert explore.filter_groups(groups, {"use_mlm": []}) == [groups[0]]
    assert explore.filter_groups(groups, {"use_mlm": []}, baseline=False) == []
    # A data setting filters the baseline too: the reference row stands by its own data.
    groups[0].settings["data.split"] = "random"
    assert explore.filter_groups(groups, {"use_mlm": [], "data.split": ["domain"]}) == []
    assert explore.filter_groups(groups, {"use_mlm": [], "data.split": ["random"]}) == \
        [groups[0]]  # fmt: skip


def test_checkpoint_listing_metadata_and_curves(experiments):
    metas = list_checkpoints(experiments / "sweeps" / SWEEP_NAME)
    mlm = filter_checkpoints(metas, use_mlm=True, sort="accuracy")
    assert mlm and all(m["use_mlm"] is True for m in mlm)
    rows = explore.checkpoint_rows(mlm)
    assert list(rows.columns) == list(explore.LISTED) and len(rows) == len(mlm)
    assert explore.selected_index(mlm, mlm[-1]["path"]) == len(mlm) - 1
    assert explore.selected_index(mlm, "gone") == 0
    shown = explore.checkpoint_metadata(mlm[0])
    assert "config" not in shown and "cls_losses" not in shown
    run_dir = explore.checkpoint_run_dir(mlm[0])
    assert run_dir is not None and run_dir.parent == experiments / "sweeps" / SWEEP_NAME
    assert shown["run folder"] == str(run_dir)
    figure = explore.run_curves_figure(run_dir, "tiny")
    assert [len(ax.lines) for ax in figure.axes] == [2, 1]  # cls and MLM loss; val accuracy
    results = explore.run_results(run_dir)
    confusion = explore.confusion_figure(results["confusion_matrix"])
    labels = [t.get_text() for t in confusion.axes[0].get_xticklabels()]
    assert labels == ["reliable", "fake"]


def test_source_vs_masked_and_predictions(trained_run: Path):
    path = list_checkpoints(trained_run)[0]["path"]
    steps = []
    results = explore.source_vs_masked(path, "val", 0.5, step=steps.append)
    assert steps == ["source", "masked"]
    table = explore.evaluation_table(results)
    assert list(table["input"]) == ["source", "masked"]
    assert pd.isna(table["mask_prob"].iloc[0]) and table["mask_prob"].iloc[1] > 0
    texts = explore.csv_texts(b"id,content\n1,Shocking secret cure they hide\n2,The council met\n")
    assert len(texts) == 2
    predicted = explore.predictions(path, ["", *texts])  # a blank text is left out
    assert list(predicted["label"].isin(["fake", "reliable"])) == [True, True]
    assert ((predicted["p_fake"] + predicted["p_reliable"]).round(3) == 1.0).all()
    with pytest.raises(ValueError, match="no column 'content'"):
        explore.csv_texts(b"text\nhello\n")
    with pytest.raises(ValueError, match="binary"):
        explore.csv_texts(b"PK\x03\x04\x00\x00")


# --- the notebook ------------------------------------------------------------------------


def _marimo():
    if importlib.util.find_spec("marimo") is None:
        pytest.skip("marimo is not installed (uv sync --extra explore)")


def _run_notebook(monkeypatch, *args: str):
    """notebooks/explore.py run in this process as marimo's script mode runs it: (outputs,
    definitions)."""
    _marimo()
    monkeypatch.setattr(sys, "argv", [str(NOTEBOOK), *args])
    spec = importlib.util.spec_from_file_location("explore_notebook", NOTEBOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app.run()


def test_notebook_runs_as_a_script(experiments):
    _marimo()
    proc = subprocess.run([sys.executable, str(NOTEBOOK), "--experiments", str(experiments),
                           "--sweep", SWEEP_LABEL], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_notebook_cells_on_a_sweep_with_failed_and_unfinished_runs(experiments, monkeypatch):
    _, defs = _run_notebook(monkeypatch, "--experiments", str(experiments), "--sweep",
                            SWEEP_LABEL, "--sweep", "runs/2026-01-01_00-00-00_failed",
                            "--sweep", "runs/2026-01-01_00-00-01_running",
                            "--sweep", "sweeps/2026-01-02_00-00-00_starting")  # fmt: skip
    assert len(defs["loaded"].runs) == 6
    assert "no run folders" in defs["loaded"].problems[0]
    assert sorted(defs["views"].summary["runs"]) == ["2 of 2", "2 of 4"]
    assert defs["checkpoint"]["path"] == defs["listing"][0]["path"]


def test_notebook_on_empty_experiments_says_what_to_run(tmp_path, monkeypatch):
    outputs, defs = _run_notebook(monkeypatch, "--experiments", str(tmp_path))
    assert "views" not in defs and "checkpoint" not in defs
    assert any("python -m tokentango.train" in getattr(o, "text", "") for o in outputs)


# --- in a browser --------------------------------------------------------------------------


def test_app_in_headless_chromium(experiments, tmp_path):
    """`marimo run` on a loopback port, headless Chromium picks the sweep: the summary table
    and the plots are on the page (a screenshot goes to tmp_path, and to
    $TOKENTANGO_SCREENSHOT when set); then it evaluates the picked checkpoint and predicts."""
    _marimo()
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (uv sync: the dev group has it)")
    from benchmarks.explorer_screenshot import chromium, find_chromium, open_sweep, serve

    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's: apt-get install "
                    "chromium)")  # fmt: skip
    try:
        browser = chromium(executable, height=1800)
        page = browser.__enter__()
    except Exception as err:  # a Chromium that cannot start here (no display libraries, ...)
        pytest.skip(f"Chromium at {executable} did not start: {str(err).splitlines()[0]}")
    started = time.monotonic()
    try:
        with serve(experiments, log=tmp_path / "marimo.log") as url:
            open_sweep(page, url, SWEEP_LABEL)
            summary = page.get_by_role("table").filter(has_text="use_mlm=true").first
            assert summary.get_by_role("cell", name="use_mlm=false").count() >= 1
            assert summary.get_by_role("cell", name="2 of 2").count() == 2
            plots = page.locator("img")
            assert plots.count() >= 3
            plots.first.scroll_into_view_if_needed()
            assert page.evaluate("i => i.naturalWidth", plots.first.element_handle()) > 100
            page.screenshot(path=str(tmp_path / "explorer.png"))
            # The picked checkpoint (the newest): source vs masked, then a prediction.
            page.get_by_role("button", name="Evaluate source vs masked").click()
            page.get_by_role("cell", name="masked", exact=True).wait_for()
            page.get_by_placeholder("Paste an article").fill("Officials confirm the budget")
            page.get_by_role("button", name="Predict").click()
            page.get_by_text("p_reliable").first.wait_for()
            if target := os.environ.get("TOKENTANGO_SCREENSHOT"):
                shutil.copy(tmp_path / "explorer.png", target)
    finally:
        browser.__exit__(None, None, None)
    print(f"browser test: {time.monotonic() - started:.1f} s with the server start")
    assert (tmp_path / "explorer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
