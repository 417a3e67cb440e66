"""tokentango explorer: sweeps, checkpoints and predictions in the browser.

    uv sync --extra explore
    uv run marimo run notebooks/explore.py [-- --experiments DIR] [-- --sweep sweeps/NAME]

The experiments folder is --experiments, else $TOKENTANGO_EXPERIMENTS, else
`runtime.experiments_dir` (experiments/). The cells are glue: the logic lives in
tokentango.explore (and the report, checkpoint, evaluate and predict modules it calls).
`python notebooks/explore.py --experiments DIR --sweep sweeps/NAME` runs every cell headless.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="tokentango explorer")


@app.cell
def _():
    import marimo as mo

    from tokentango import explore
    from tokentango.checkpoints import filter_checkpoints, list_checkpoints
    from tokentango.data import SPLITS
    from tokentango.report import group_runs

    return SPLITS, explore, filter_checkpoints, group_runs, list_checkpoints, mo


@app.cell
def _(explore, mo):
    _args = mo.cli_args()
    experiments = explore.experiments_dir(_args.get("experiments"))
    _sweep = _args.get("sweep") or []
    get_picked, set_picked = mo.state([_sweep] if isinstance(_sweep, str) else list(_sweep))
    # The folder list is state: a refresh that finds no new folder leaves the picker, and so
    # every filter below it, as they are.
    get_folders, set_folders = mo.state(explore.list_folders(experiments))
    # The values each setting filter leaves out, and the --tune key: kept when the filters are
    # made anew (another folder picked, a new folder found).
    get_excluded, set_excluded = mo.state({})
    get_tune, set_tune = mo.state(None)
    refresh = mo.ui.refresh(options=["5s", "10s", "30s", "1m"], label="Refresh")
    mo.vstack([
        mo.md(f"# tokentango explorer\n\nExperiments folder: `{experiments}`"),
        mo.hstack([refresh, mo.md("re-reads the folders (a running sweep's new results); "
                                  "pick an interval to follow it")], justify="start"),
    ])
    return (
        experiments, get_excluded, get_folders, get_picked, get_tune, refresh, set_excluded,
        set_folders, set_picked, set_tune,
    )


@app.cell
def _(experiments, explore, get_folders, refresh, set_folders):
    refresh.value  # look for new folders on every refresh
    _now = explore.list_folders(experiments)
    if _now != get_folders():
        set_folders(_now)
    return


@app.cell
def _(experiments, explore, get_folders, get_picked, mo, set_picked):
    folders = get_folders()
    _empty = explore.empty_message(experiments, folders)
    mo.stop(_empty is not None, mo.callout(mo.md(_empty or ""), kind="warn"))
    _options = {f.label: str(f.path) for f in folders}
    folder_picker = mo.ui.multiselect(
        options=_options, value=[p for p in get_picked() if p in _options],
        label="Sweep or run folders", full_width=True,
        on_change=lambda paths: set_picked([f.label for f in folders if str(f.path) in paths]),
    )
    mo.vstack([mo.md("## Sweeps"), folder_picker])
    return (folder_picker,)


@app.cell
def _(
    explore, folder_picker, get_excluded, get_tune, group_runs, mo, set_excluded, set_tune,
):
    # The filters are made when the folders are chosen (not on refresh, which would reset them).
    _groups = group_runs(explore.load_runs(folder_picker.value).runs)
    choices = explore.setting_choices(_groups)
    _excluded = get_excluded()
    setting_filters = mo.ui.dictionary({
        column: mo.ui.multiselect(
            options=list(values), label=column,
            value=[v for v in values if v not in _excluded.get(column, ())])
        for column, values in choices.items()
    }, label="Swept settings", on_change=lambda chosen: set_excluded(
        explore.excluded_values(choices, chosen, get_excluded())))  # fmt: skip
    baseline_switch = mo.ui.switch(value=True, label="baseline row")
    metric = mo.ui.dropdown(options=list(explore.METRICS), value="test_accuracy", label="metric")
    target = mo.ui.number(start=0.0, stop=1.0, step=0.01, value=0.80, label="target accuracy")
    _tunable = explore.tune_choices(_groups)
    tune_key = mo.ui.dropdown(options=_tunable, label="--tune (best value by validation)",
                              value=get_tune() if get_tune() in _tunable else None,
                              on_change=set_tune)  # fmt: skip
    mo.stop(not folder_picker.value, mo.md("Pick one or more folders above."))
    mo.vstack([
        mo.hstack([metric, target, tune_key, baseline_switch], justify="start"),
        mo.hstack([setting_filters[c] for c in choices], justify="start", wrap=True)
        if choices else mo.md("_Only the seed varies: no settings to filter._"),
    ])
    return baseline_switch, choices, metric, setting_filters, target, tune_key


@app.cell
def _(
    baseline_switch, choices, explore, folder_picker, group_runs, metric, mo, refresh,
    setting_filters, target, tune_key,
):
    refresh.value  # re-read the runs on every refresh
    mo.stop(not folder_picker.value)
    loaded = explore.load_runs(folder_picker.value)
    _chosen = {c: [choices[c][v] for v in vs] for c, vs in setting_filters.value.items()}
    groups = explore.filter_groups(group_runs(loaded.runs), _chosen, baseline_switch.value,
                                   known=choices)  # fmt: skip
    views = explore.sweep_views(groups, metric.value, target.value, tune_key.value)
    return groups, loaded, views


@app.cell
def _(explore, folder_picker, loaded, metric, mo, views):
    _problems = explore.problem_runs(loaded.runs)
    _jobs = explore.jobs([p for p in folder_picker.value if "/sweeps/" in p.replace("\\", "/")])
    _notes = [mo.callout(mo.md(p), kind="warn") for p in loaded.problems]
    mo.stop(not loaded.runs, mo.vstack(_notes))
    _sections = {
        "Runs (every run, every status)": mo.ui.table(explore.rounded(views.runs),
                                                      selection=None),
        f"Comparisons ({len(views.comparisons)} pairs that differ in one setting)":
            mo.ui.table(explore.rounded(views.comparisons), selection=None),
    }  # fmt: skip
    if len(_problems):
        _sections[f"Failed or unfinished runs ({len(_problems)})"] = mo.ui.table(
            _problems, selection=None)
    if len(_jobs):
        _sections["Jobs (python -m tokentango.status)"] = mo.ui.table(_jobs, selection=None)
    _tuned = []
    if views.tune_error:
        _tuned = [mo.callout(mo.md(views.tune_error), kind="warn")]
    elif views.tuned is not None:
        _tuned = [mo.md("### Tuned on validation (`--tune`)"),
                  mo.ui.table(explore.rounded(views.tuned), selection=None),
                  mo.ui.table(explore.rounded(views.tuned_comparisons), selection=None)]
    if views.scaling is not None:
        _tuned += [mo.md("### Data-size curve"),
                   mo.ui.table(explore.rounded(views.scaling), selection=None)]
    mo.vstack([
        *_notes,
        mo.md(f"### Summary: {len(loaded.runs)} runs, "
              f"{len(views.summary)} groups (mean and std over seeds)"),
        mo.ui.table(explore.rounded(explore.metric_first(views.summary, metric.value)),
                    selection=None),
        *_tuned,
        mo.md("### Plots"),
        *[mo.hstack(_pair, widths="equal") for _pair in explore.plot_rows(views.figures)],
        mo.accordion(_sections),
    ])
    return


@app.cell
def _(experiments, folder_picker, list_checkpoints, mo):
    # Checkpoints of the chosen folders (all of experiments/ when none is chosen), filtered
    # and sorted as `python -m tokentango.checkpoints list` does.
    checkpoint_dirs = folder_picker.value or [str(experiments)]
    _metas = list_checkpoints(*checkpoint_dirs)
    _optimizers = sorted({str(m["optimizer"]) for m in _metas if m.get("optimizer")})
    _names = sorted({str(m["run_name"]) for m in _metas if m.get("run_name")})
    ckpt_sort = mo.ui.radio(options=["timestamp", "accuracy"], value="timestamp",
                            label="sort", inline=True)  # fmt: skip
    ckpt_optimizer = mo.ui.dropdown(options=_optimizers, value=None, label="optimizer")
    ckpt_mlm = mo.ui.dropdown(options={"true": True, "false": False}, value=None,
                              label="use_mlm")  # fmt: skip
    ckpt_min = mo.ui.number(start=0.0, stop=1.0, step=0.01, value=0.0, label="min accuracy")
    ckpt_run = mo.ui.dropdown(options=_names, value=None, label="run name")
    get_ckpt, set_ckpt = mo.state(None)  # the picked checkpoint's path, kept across a refresh
    mo.vstack([mo.md("## Checkpoints"),
               mo.hstack([ckpt_sort, ckpt_optimizer, ckpt_mlm, ckpt_min, ckpt_run],
                         justify="start")])  # fmt: skip
    return (
        checkpoint_dirs, ckpt_min, ckpt_mlm, ckpt_optimizer, ckpt_run, ckpt_sort, get_ckpt,
        set_ckpt,
    )


@app.cell
def _(
    checkpoint_dirs, ckpt_min, ckpt_mlm, ckpt_optimizer, ckpt_run, ckpt_sort, explore,
    filter_checkpoints, get_ckpt, list_checkpoints, mo, refresh, set_ckpt,
):
    refresh.value  # new checkpoints of a running sweep
    listing = filter_checkpoints(list_checkpoints(*checkpoint_dirs),
                                 optimizer=ckpt_optimizer.value, use_mlm=ckpt_mlm.value,
                                 min_accuracy=ckpt_min.value or None, run_name=ckpt_run.value,
                                 sort=ckpt_sort.value)  # fmt: skip
    mo.stop(not listing, mo.md("No checkpoints match (a run writes one at each evaluation)."))
    checkpoint_table = mo.ui.table(
        explore.checkpoint_rows(listing), selection="single", page_size=8,
        initial_selection=[explore.selected_index(listing, get_ckpt())],
        label="Pick a checkpoint (its run's curves, an evaluation and predictions below)",
        on_change=lambda rows: set_ckpt(rows["path"].iloc[0] if len(rows) else None),
    )
    checkpoint_table
    return checkpoint_table, listing


@app.cell
def _(checkpoint_table, explore, listing, mo):
    _picked = checkpoint_table.value
    _path = _picked["path"].iloc[0] if len(_picked) else listing[0]["path"]
    checkpoint = next(m for m in listing if m["path"] == _path)
    _run_dir = explore.checkpoint_run_dir(checkpoint)
    _results = explore.run_results(_run_dir)
    _parts = [
        mo.md(f"### `{checkpoint.get('run_name')}` step {checkpoint.get('step')}"),
        mo.hstack([mo.tree(explore.checkpoint_metadata(checkpoint)),
                   explore.run_curves_figure(_run_dir, str(checkpoint.get("run_name") or ""))],
                  widths=[1, 2]),  # fmt: skip
    ]
    if _results and _results.get("confusion_matrix"):
        _parts.append(explore.confusion_figure(
            _results["confusion_matrix"], "Run's test split (its best checkpoint)"))
    mo.vstack(_parts)
    return (checkpoint,)


@app.cell
def _(SPLITS, mo):
    eval_split = mo.ui.dropdown(options=list(SPLITS), value="test", label="split")
    eval_fraction = mo.ui.slider(start=0.05, stop=1.0, step=0.05, value=1.0,
                                 label="fraction of the split", show_value=True)  # fmt: skip
    eval_button = mo.ui.run_button(label="Evaluate source vs masked")
    mo.vstack([mo.md("### Source vs masked input"),
               mo.hstack([eval_split, eval_fraction, eval_button], justify="start")])
    return eval_button, eval_fraction, eval_split


@app.cell
def _(checkpoint, eval_button, eval_fraction, eval_split, explore, mo):
    mo.stop(not eval_button.value, mo.md("_Press the button to evaluate this checkpoint._"))
    with mo.status.progress_bar(total=2, title="Evaluating", subtitle="source text") as _bar:
        try:
            _results = explore.source_vs_masked(
                checkpoint["path"], eval_split.value, eval_fraction.value,
                step=lambda name: _bar.update(subtitle="masked input" if name == "source"
                                              else "done"))  # fmt: skip
        except Exception as _err:  # a checkpoint whose data is gone: say why, keep the app
            _results = _err
    mo.stop(isinstance(_results, Exception),
            mo.callout(mo.md(f"Cannot evaluate: {_results}"), kind="danger"))
    mo.vstack([
        mo.ui.table(explore.rounded(explore.evaluation_table(_results)), selection=None),
        mo.hstack([explore.confusion_figure(r["confusion_matrix"], f"{name}, {eval_split.value}")
                   for name, r in _results.items()], justify="start"),
    ])
    return


@app.cell
def _(mo):
    article = mo.ui.text_area(placeholder="Paste an article", label="Article", full_width=True,
                              rows=6)  # fmt: skip
    upload = mo.ui.file(filetypes=[".csv"], label="or upload a CSV")
    csv_column = mo.ui.text(value="content", label="CSV column")
    predict_button = mo.ui.run_button(label="Predict")
    mo.vstack([mo.md("## Predict with the chosen checkpoint"), article,
               mo.hstack([upload, csv_column, predict_button], justify="start")])
    return article, csv_column, predict_button, upload


@app.cell
def _(article, checkpoint, csv_column, explore, mo, predict_button, upload):
    mo.stop(not predict_button.value, mo.md("_Paste or upload, then press Predict._"))
    _texts = [article.value] if article.value.strip() else []
    try:
        if upload.value:
            _texts += explore.csv_texts(upload.contents(0), csv_column.value)
    except ValueError as _err:
        mo.stop(True, mo.callout(mo.md(str(_err)), kind="danger"))
    mo.stop(not _texts, mo.md("Nothing to classify: paste an article or upload a CSV."))
    with mo.status.spinner(title=f"Predicting {len(_texts)} texts"):
        _table = explore.predictions(checkpoint["path"], _texts)
    _table
    return


if __name__ == "__main__":
    app.run()
