"""Bad input through the real command line: one `error: ...` line naming the file, key or
value, exit code 2, no traceback, and nothing half-written; in a sweep the bad job is
recorded as failed and the others run on. `predict` refuses an empty text or a file that is
no text the same way."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY, read_results, run_cli, train_in_process
from tokentango import checkpoints
from tokentango.cli import predict as predict_cli
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
# Each in words, for the reliability table.
BAD_CSV_WHAT = {
    "missing": "a missing file",
    "folder": "a folder",
    "empty": "an empty file",
    "no_columns": "a CSV without type and content columns",
    "all_rows_dropped": "a CSV whose every row the label map drops",
    "one_class_left": "a CSV with one class left after the label map",
    "not_utf8": "a CSV that is not UTF-8",
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
def test_a_bad_data_file_is_one_line_and_exit_2(kind: str, tmp_path: Path, capsys,
                                                 reliability) -> None:  # fmt: skip
    """Whatever is wrong with data.path, a single run says what in one line naming the file,
    as it does for a bad config value, and leaves no half-made run folder or cache."""
    csv = write_bad_csv(tmp_path, kind)
    code = train_in_process(*tiny_run(tmp_path, f"data.path={csv}"))
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, str(csv), BAD_CSV_ERRORS[kind])
    assert_no_run_written(tmp_path)
    reliability.record(fault=f"train data.path= {BAD_CSV_WHAT[kind]}",
                       happened=f"exit {code}: {err}", kept="nothing: no run folder, no cache")


@pytest.mark.parametrize("overrides,named", [
    (["train_frac=0.05"], ["too few to split", "larger train_frac"]),
    (["trainer.batch_size=5000"], ["trainer.batch_size=5000", "training rows"]),
])  # fmt: skip
def test_data_too_small_for_the_settings_is_one_line(overrides: list[str], named: list[str],
                                                     tmp_path: Path, capsys,
                                                     reliability) -> None:  # fmt: skip
    """A good file that the settings leave too little of (an empty split, a batch larger
    than the training split) fails as a bad value does, naming the file and the setting."""
    csv = write_corpus(tmp_path / "small.csv", 200)
    code = train_in_process(*tiny_run(tmp_path, f"data.path={csv}", *overrides))
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, str(csv), *named)
    runs = tmp_path / "experiments" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    reliability.record(fault=f"train on a 200-row CSV with {' '.join(overrides)}",
                       happened=f"exit {code}: {err}", kept="nothing: no run folder")


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
                                              capsys, reliability) -> None:  # fmt: skip
    """A key nothing reads would train silently with a setting that does nothing: it fails
    before any work, naming the key (the `+` prefix adds no key the schema lacks)."""
    options = [o for o in overrides if o.startswith("--")]  # Hydra's options come first
    given = [o for o in overrides if o not in options]
    code = train_in_process(*options, *tiny_run(tmp_path, *given))
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, named)
    assert_no_run_written(tmp_path)
    reliability.record(fault=f"train {' '.join(overrides)}", happened=f"exit {code}: {err}",
                       kept="nothing: no run folder, no cache")


@pytest.mark.parametrize("name", ["../evil", "a/b", "/../../../escaped", "..\\evil"])
def test_a_run_name_with_a_path_never_writes_outside(name: str, tmp_path: Path, capsys,
                                                      reliability) -> None:  # fmt: skip
    """The run's name is part of its folder's: a path in it is refused before Hydra makes
    the folder, so nothing is written anywhere."""
    (tmp_path / "inside").mkdir()
    experiments = tmp_path / "inside" / "experiments"
    code = train_in_process(*TINY, f"runtime.experiments_dir={experiments}",
                            f"run_name={name}")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, "run_name=", "must be a plain name")
    written = [p.name for p in tmp_path.rglob("*")]
    assert written == ["inside"]
    reliability.record(fault=f"train run_name={name}", happened=f"exit {code}: {err}",
                       kept=f"nothing written anywhere (the test folder holds only {written})")


def test_the_real_process_prints_only_the_error(tmp_path: Path, reliability) -> None:
    """As a user sees it: stderr is the one line (logging goes to stdout), exit code 2."""
    csv = write_bad_csv(tmp_path, "no_columns")
    proc = run_cli("tokentango.train", *tiny_run(tmp_path, f"data.path={csv}"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, str(csv), "has no 'type' or 'content' column")
    assert_no_run_written(tmp_path)
    reliability.record(fault="a real `python -m tokentango.train` process on a CSV without "
                       "type and content columns",
                       happened=f"exit {proc.returncode}, stderr is one line: {proc.stderr}",
                       kept="nothing: no run folder, no cache")  # fmt: skip


def test_a_one_megabyte_article_trains_truncated(tmp_path: Path, capsys, reliability) -> None:
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
    status = read_results(run_dir)["status"]
    assert status == "completed"
    reliability.record(fault="train on a CSV with a 1,000,000-character article",
                       happened=f"exit {code}, results.json status {status}",
                       kept="the run, the article cut to data.max_length tokens")


def test_in_a_sweep_a_bad_file_fails_its_job_and_the_sweep_goes_on(
    tmp_path: Path, capsys, reliability
) -> None:
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
    reliability.record(fault="a sweep with one job's data.path a CSV whose rows are all dropped",
                       happened=f"sweep exit {code}; that job's results.json: status failed, "
                       f"error {error}",
                       kept="the other job ran: status "
                       f"{by_status['completed']['status']}")  # fmt: skip


# --- predict: nothing to classify, or no text at all ---------------------------------------

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"
# Kind -> (in words, the flag, the text or the file's bytes, what the one line says).
BAD_PREDICT = {
    "empty_text": ("an empty --text", "--text", "", "empty text, nothing to classify"),
    "blank_text": ("a --text of spaces, after a good one", "--text", " \t ", "empty text"),
    "empty_file": ("an empty --file", "--file", b"", "is empty: nothing to classify"),
    "blank_file": ("a --file of blank lines", "--file", b"\n  \n\t\n", "is empty"),
    "binary_file": ("a binary --file (a PNG)", "--file", PNG_HEAD,
                    "is a binary file, not text (a NUL byte at offset 8)"),
    "latin1_file": ("a --file that is not UTF-8", "--file", b"caf\xe9 au lait",
                    "is not UTF-8 text: 'utf-8' codec can't decode byte 0xe9"),
    "binary_csv": ("a binary --csv (a PNG)", "--csv", PNG_HEAD, "is a binary file, not text"),
    "header_only_csv": ("a --csv with a header and no rows", "--csv", b"content\n",
                        "has no rows: nothing to classify"),
}  # fmt: skip


def predict_args(tmp_path: Path, kind: str) -> list[str]:
    _, flag, given, _ = BAD_PREDICT[kind]
    if flag == "--text":
        return ["--text", "a good headline", "--text", given] if given else ["--text", given]
    path = tmp_path / f"{kind}.{'csv' if flag == '--csv' else 'txt'}"
    path.write_bytes(given)
    return [flag, str(path)]


@pytest.mark.parametrize("kind", list(BAD_PREDICT))
def test_predict_with_no_text_is_one_line_and_exit_2(kind: str, trained_run: Path, tmp_path: Path,
                                                     capsys, reliability) -> None:  # fmt: skip
    """An empty text would be classified as the [CLS] token alone and a binary file as
    replacement characters, each with a confident label: both are refused before the model
    loads, and nothing is printed on stdout."""
    what, _, _, named = BAD_PREDICT[kind]
    ckpt = checkpoints.latest_checkpoint(trained_run)
    code = predict_cli.main(["--checkpoint", str(ckpt), *predict_args(tmp_path, kind)])
    assert code == 2
    out, err = capsys.readouterr()
    assert_one_error_line(err, named)
    assert out == ""
    reliability.record(fault=f"predict {what}", happened=f"exit {code}: {err}",
                       kept="no label printed (stdout empty)")


def test_predict_in_a_real_process_refuses_a_binary_file(trained_run: Path, tmp_path: Path,
                                                         reliability) -> None:  # fmt: skip
    """As a user sees it: stderr is the one line, exit code 2."""
    args = predict_args(tmp_path, "binary_file")
    proc = run_cli("tokentango.predict", "--checkpoint", str(trained_run), *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, args[1], "is a binary file, not text")
    assert proc.stdout == ""
    reliability.record(fault="a real `python -m tokentango.predict` process on a binary --file",
                       happened=f"exit {proc.returncode}, stderr is one line: {proc.stderr}",
                       kept="no label printed (stdout empty)")
