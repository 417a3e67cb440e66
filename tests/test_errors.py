"""Bad input through the real command line: one `error: ...` line naming the file, key or
value, exit code 2, no traceback, and nothing half-written; in a sweep the bad job is
recorded as failed and the others run on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY, read_results, run_cli, train_in_process
from tokentango.synthetic import generate_corpus

# What makes each bad CSV (None: no file at all; "folder": a folder in its place).
BAD_CSVS = {
    "missing": None,
    "folder": "folder",
    "empty": b"",
    "no_columns": b"id,title\n1,hello\n",
    "all_rows_dropped": b"id,type,content\n0,satire,a b\n1,bias,c d\n2,,e f\n",
    "one_class_left": b"id,type,content\n0,fake,a b\n1,conspiracy,c d\n2,junksci,e f\n",
    "not_utf8": b"id,type,content\n0,fake,caf\xe9 \xff\n1,reliable,c d\n",
}
# What the one line says about each (besides the file's path).
BAD_CSV_ERRORS = {
    "missing": "no such file",
    "folder": "a folder, not a CSV file",
    "empty": "No columns to parse",
    "no_columns": "has no 'type' or 'content' column",
    "all_rows_dropped": "need rows of both classes after the label map, found none",
    "one_class_left": "need rows of both classes after the label map, found 3 fake",
    "not_utf8": "'utf-8' codec can't decode",
}


def write_bad_csv(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.csv"
    content = BAD_CSVS[kind]
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


def write_corpus(path: Path, n_rows: int, seed: int = 5) -> Path:
    """A good CSV in FakeNewsCorpus's schema (the generated corpus's rows)."""
    generate_corpus(n_rows, seed=seed).to_csv(path)
    return path


def tiny_run(tmp_path: Path, *overrides: str) -> list[str]:
    """A tiny single run's command line with every folder under tmp_path."""
    return [*TINY, f"runtime.data_dir={tmp_path / 'data'}",
            f"runtime.experiments_dir={tmp_path / 'experiments'}", *overrides]  # fmt: skip


def assert_one_error_line(err: str, *named: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for text in named:
        assert text in err, f"{text!r} not in {err!r}"


def assert_no_run_written(tmp_path: Path) -> None:
    """No run folder under the experiments folder, and no data cache left half-built."""
    runs = tmp_path / "experiments" / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())
    cache = tmp_path / "data" / "cache"
    assert not cache.exists() or not [p.name for p in cache.iterdir() if p.is_dir()]


@pytest.mark.parametrize("kind", list(BAD_CSVS))
def test_a_bad_data_file_is_one_line_and_exit_2(kind: str, tmp_path: Path, capsys) -> None:
    """Whatever is wrong with data.path, a single run says what in one line naming the file,
    as it does for a bad config value, and leaves no half-made run folder or cache."""
    csv = write_bad_csv(tmp_path, kind)
    assert train_in_process(*tiny_run(tmp_path, f"data.path={csv}")) == 2
    assert_one_error_line(capsys.readouterr().err, str(csv), BAD_CSV_ERRORS[kind])
    assert_no_run_written(tmp_path)


@pytest.mark.parametrize("overrides,named", [
    (["train_frac=0.05"], ["too few to split", "larger train_frac"]),
    (["trainer.batch_size=5000"], ["trainer.batch_size=5000", "training rows"]),
])  # fmt: skip
def test_data_too_small_for_the_settings_is_one_line(overrides: list[str], named: list[str],
                                                     tmp_path: Path, capsys) -> None:  # fmt: skip
    """A good file that the settings leave too little of (an empty split, a batch larger
    than the training split) fails as a bad value does, naming the file and the setting."""
    csv = write_corpus(tmp_path / "small.csv", 200)
    assert train_in_process(*tiny_run(tmp_path, f"data.path={csv}", *overrides)) == 2
    assert_one_error_line(capsys.readouterr().err, str(csv), *named)
    runs = tmp_path / "experiments" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("overrides,named", [
    (["+nonsense_key=1"], "unknown key nonsense_key: no schema has it"),
    (["+trainer.foo=2"], "unknown key trainer.foo"),
    (["bogus=1"], "unknown key bogus"),
    (["trainer.batchsize=8"], "unknown key trainer.batchsize"),
    (["+optimizer.momentumm=0.9"], "unknown key optimizer.momentumm"),  # found by the schema
    (["optimizer=rmsprop"], "unknown optimizer 'rmsprop': the choices are adam, adamw, sgd"),
    (["objective=foo"], "unknown objective 'foo'"),
    (["--multirun", "optimizer=adam,rmsprop"], "unknown optimizer 'rmsprop'"),
])  # fmt: skip
def test_an_unknown_key_or_option_is_one_line(overrides: list[str], named: str, tmp_path: Path,
                                              capsys) -> None:  # fmt: skip
    """A key nothing reads would train silently with a setting that does nothing: it fails
    before any work, naming the key (the `+` prefix adds no key the schema lacks)."""
    options = [o for o in overrides if o.startswith("--")]  # Hydra's options come first
    given = [o for o in overrides if o not in options]
    assert train_in_process(*options, *tiny_run(tmp_path, *given)) == 2
    assert_one_error_line(capsys.readouterr().err, named)
    assert_no_run_written(tmp_path)


@pytest.mark.parametrize("name", ["../evil", "a/b", "/../../../escaped", "..\\evil"])
def test_a_run_name_with_a_path_never_writes_outside(name: str, tmp_path: Path,
                                                      capsys) -> None:  # fmt: skip
    """The run's name is part of its folder's: a path in it is refused before Hydra makes
    the folder, so nothing is written anywhere."""
    (tmp_path / "inside").mkdir()
    experiments = tmp_path / "inside" / "experiments"
    code = train_in_process(*TINY, f"runtime.experiments_dir={experiments}",
                            f"run_name={name}")  # fmt: skip
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "run_name=", "must be a plain name")
    assert [p.name for p in tmp_path.rglob("*")] == ["inside"]


def test_the_real_process_prints_only_the_error(tmp_path: Path) -> None:
    """As a user sees it: stderr is the one line (logging goes to stdout), exit code 2."""
    csv = write_bad_csv(tmp_path, "no_columns")
    proc = run_cli("tokentango.train", *tiny_run(tmp_path, f"data.path={csv}"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, str(csv), "has no 'type' or 'content' column")
    assert_no_run_written(tmp_path)


def test_a_one_megabyte_article_trains_truncated(tmp_path: Path, capsys) -> None:
    """One huge cell is cut to max_length tokens like any other article, not an error."""
    corpus = generate_corpus(400, seed=5)
    kept = corpus.index[corpus["type"] == "fake"][0]
    corpus.loc[kept, "content"] = ("word " * 210_000)[:1_000_000]
    csv = tmp_path / "big_cell.csv"
    corpus.to_csv(csv)
    assert pd.read_csv(csv)["content"].str.len().max() == 1_000_000
    code = train_in_process(*tiny_run(tmp_path, f"data.path={csv}", "trainer.max_steps=4",
                                      "run_name=big-cell"))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "experiments" / "runs").iterdir()
    assert read_results(run_dir)["status"] == "completed"


def test_in_a_sweep_a_bad_file_fails_its_job_and_the_sweep_goes_on(tmp_path: Path,
                                                                   capsys) -> None:  # fmt: skip
    """Inside a sweep the bad job is recorded (status failed, the error in results.json),
    the good job still runs, and the sweep exits non-zero at the end (Hydra's way)."""
    bad = write_bad_csv(tmp_path, "all_rows_dropped")
    good = write_corpus(tmp_path / "good.csv", 400)
    sweep = tmp_path / "sweep"
    code = train_in_process("--multirun", f"data.path={bad},{good}", *TINY,
                            "trainer.max_steps=4", f"runtime.data_dir={tmp_path / 'data'}",
                            f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert code != 0
    by_status = {read_results(d)["status"]: read_results(d) for d in sweep.iterdir() if d.is_dir()}
    assert set(by_status) == {"failed", "completed"}
    error = by_status["failed"]["error"]
    assert error.startswith("DataError: ") and str(bad) in error and "found none" in error
