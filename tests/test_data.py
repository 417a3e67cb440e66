"""The data stage: real-schema CSV in, balanced disjoint splits and cached token ids out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokentango import data as data_module
from tokentango.data import (
    CLS_ID,
    PAD_ID,
    DataError,
    DataSettings,
    balance,
    drop_duplicate_contents,
    epoch_batches,
    load_dataset,
    read_labelled_rows,
    split_frame,
)  # fmt: skip
from tokentango.synthetic import ensure_sample_corpus, generate_corpus


def settings(path: Path, **kw) -> DataSettings:
    base = dict(path=str(path), train_frac=1.0, seed=7, val_frac=0.1, test_frac=0.1,
                vocab_size=500, max_length=64, chunk_rows=100)  # fmt: skip
    return DataSettings(**{**base, **kw})


def read_rows(path: Path, train_frac: float = 1.0, seed: int = 0):
    return read_labelled_rows(path, train_frac, seed, chunk_rows=100)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated corpus in the real schema: for invariants that hold for any CSV."""
    return ensure_sample_corpus(tmp_path_factory.mktemp("corpus"), n_rows=600, seed=1)


def test_news_sample_rows_kept_and_dropped(news_sample: Path) -> None:
    frame, stats = read_rows(news_sample)
    # fake 155 + conspiracy 31 + junksci 6 -> fake; political 23 + reliable 3 -> reliable.
    assert stats["rows_read"] == 250
    assert (frame["label"] == 1).sum() == 192
    assert (frame["label"] == 0).sum() == 26
    # 12 empty types plus unreliable, bias, unknown (6 each), clickbait and hate (1 each).
    assert stats["dropped_type"] == 32
    assert stats["rows_kept"] == 218
    assert frame["content"].str.strip().ne("").all()
    # Multi-line quoted content survives intact.
    assert frame["content"].str.contains("\n").sum() > 100


def test_empty_content_and_odd_types_dropped(tmp_path: Path) -> None:
    csv = tmp_path / "odd.csv"
    pd.DataFrame({
        "id": range(6), "type": ["fake", "reliable", "Reliable ", "satire", None, "fake"],
        "content": ["a b", "c d", "e f", "g h", "i j", "   "],
    }).to_csv(csv)  # fmt: skip
    frame, stats = read_rows(csv)
    assert frame["label"].tolist() == [1, 0, 0]
    assert stats["dropped_type"] == 2 and stats["dropped_empty"] == 1


def test_duplicates_balance_and_disjoint_splits(news_sample: Path) -> None:
    frame, stats = read_rows(news_sample)
    # The sample repeats 11 labelled contents (one reliable); a copy must not straddle splits.
    unique = drop_duplicate_contents(frame, stats)
    assert stats["dropped_duplicate"] == 11 and unique["content"].is_unique
    balanced = balance(unique, seed=3)
    assert (balanced["label"] == 0).sum() == (balanced["label"] == 1).sum() == 25
    parts = split_frame(balanced, 0.1, 0.1, seed=3)
    texts = [set(p["content"]) for p in parts.values()]
    assert sum(len(p) for p in parts.values()) == 50
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert all(p["label"].nunique() == 2 for p in parts.values())


def test_split_is_fixed_by_data_seed_alone(corpus: Path, tmp_path: Path) -> None:
    a = load_dataset(settings(corpus), tmp_path / "a")
    b = load_dataset(settings(corpus, chunk_rows=7), tmp_path / "b")  # chunks: memory only
    c = load_dataset(settings(corpus, seed=8), tmp_path / "c")
    assert a.cache_dir.name == b.cache_dir.name
    np.testing.assert_array_equal(a.splits["test"].ids, b.splits["test"].ids)
    assert not np.array_equal(np.load(a.cache_dir / "test_rows.npy"),
                              np.load(c.cache_dir / "test_rows.npy"))  # fmt: skip


def test_token_arrays(corpus: Path, tmp_path: Path) -> None:
    ds = load_dataset(settings(corpus), tmp_path)
    train = ds.splits["train"]
    assert train.ids.shape[1] == 64 and train.ids.dtype == np.uint16
    assert (train.ids[:, 0] == CLS_ID).all()
    assert (train.lengths <= 64).all() and (train.lengths >= 2).all()
    for row, n in zip(train.ids, train.lengths, strict=True):
        assert (row[n:] == PAD_ID).all() and (row[:n] != PAD_ID).all()
    assert ds.vocab_size <= 500
    # Many articles are longer than 64 tokens: truncation happened.
    assert (train.lengths == 64).mean() > 0.3


def test_train_frac_samples_rows_first(corpus: Path) -> None:
    _, full = read_rows(corpus, train_frac=1.0, seed=1)
    _, half = read_rows(corpus, train_frac=0.5, seed=1)
    assert full["rows_sampled"] == full["rows_read"] == 600
    assert 250 <= half["rows_sampled"] <= 350


def test_second_load_is_a_cache_hit_without_reading_the_csv(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_dataset(settings(corpus), tmp_path)
    assert not first.from_cache

    def no_csv(*_a, **_k):
        raise AssertionError("the CSV was read again")

    monkeypatch.setattr(data_module, "read_labelled_rows", no_csv)
    second = load_dataset(settings(corpus), tmp_path)
    assert second.from_cache and second.cache_dir == first.cache_dir
    np.testing.assert_array_equal(first.splits["train"].ids, second.splits["train"].ids)
    # Any preprocessing setting changes the key.
    monkeypatch.undo()
    other = load_dataset(settings(corpus, max_length=32), tmp_path)
    assert other.cache_dir != first.cache_dir
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []


def test_unusable_csv_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\n1,hello\n")
    with pytest.raises(DataError, match=r"bad\.csv"):
        load_dataset(settings(bad), tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_dataset(settings(tmp_path / "missing.csv"), tmp_path)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # nothing half-built


def test_epoch_batches_cover_every_row_once_and_repeat() -> None:
    lengths = np.random.default_rng(0).integers(2, 300, size=1000)
    batches = epoch_batches(lengths, 32, seed=1, epoch=0)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    again = epoch_batches(lengths, 32, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert not np.array_equal(rows, np.concatenate(epoch_batches(lengths, 32, seed=1, epoch=1)))
    # Length-grouped: far less padding than a plain shuffle.
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = np.random.default_rng(0).permutation(1000)
    plain_padded = sum(32 * lengths[plain[i : i + 32]].max() for i in range(0, 1000, 32))
    assert padded < 0.8 * plain_padded


def test_generated_corpus_has_the_real_schema_and_quirks(tmp_path: Path) -> None:
    path = ensure_sample_corpus(tmp_path, n_rows=600, seed=0)
    head = path.read_text().splitlines()[0]
    assert head.startswith(",id,domain,type,url,content")
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert frame["type"].isna().any()
    assert {"fake", "conspiracy", "junksci", "political", "reliable"} <= set(frame["type"])
    assert (frame["type"].isin(["satire", "bias", "clickbait", "unknown"])).any()
    assert frame["content"].isna().any()  # empty contents
    assert frame["content"].str.contains("\n", na=False).any()
    words = frame["content"].dropna().str.split().str.len()
    assert words.min() <= 18 and words.max() > 300  # a sentence .. beyond max length
    assert ensure_sample_corpus(tmp_path, n_rows=600, seed=0) == path  # cached
    pd.testing.assert_frame_equal(generate_corpus(50, 3), generate_corpus(50, 3))


def test_generated_signal_is_learnable_but_not_trivial(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from tests.conftest import compose

    data = compose().data  # the corpus and split a default run trains on
    frame, stats = read_rows(ensure_sample_corpus(tmp_path, data.sample_rows))
    unique = drop_duplicate_contents(frame, stats)
    parts = split_frame(balance(unique, data.seed), data.val_frac, data.test_frac, data.seed)
    vectorizer = TfidfVectorizer()
    x_train = vectorizer.fit_transform(parts["train"]["content"])
    clf = LogisticRegression(max_iter=2000).fit(x_train, parts["train"]["label"])
    accuracy = clf.score(vectorizer.transform(parts["test"]["content"]), parts["test"]["label"])
    assert 0.80 <= accuracy <= 0.95, accuracy


def test_the_cache_opens_memory_mapped_and_read_only(corpus: Path, tmp_path: Path) -> None:
    load_dataset(settings(corpus), tmp_path)
    again = load_dataset(settings(corpus), tmp_path)
    ids = again.splits["train"].ids
    assert isinstance(ids, np.memmap) and not ids.flags.writeable
    assert all(isinstance(a, np.memmap) for s in again.splits.values()
               for a in (s.ids, s.lengths, s.labels))  # fmt: skip


def test_prepare_builds_the_cache_a_run_then_finds(tmp_path: Path, capsys) -> None:
    from tests.conftest import compose
    from tokentango.cli import prepare
    from tokentango.data import settings_from_config

    common = [f"runtime.data_dir={tmp_path}", "data.sample_rows=600", "data.vocab_size=300",
              "data.max_length=32"]  # fmt: skip
    assert prepare.main([*common, "train_frac=1.0,0.5"]) == 0  # a sweep: every value
    out = capsys.readouterr().out
    assert out.count("(built,") == 2 and "read 600 rows, sampled 600 (train_frac 1.0)" in out
    assert "unmapped or missing type" in out and "balanced to" in out
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    for frac in ("1.0", "0.5"):
        cfg = compose(*common, f"train_frac={frac}")
        assert load_dataset(settings_from_config(cfg), tmp_path).from_cache
    assert prepare.main([*common, "train_frac=0.5"]) == 0
    assert "(already there," in capsys.readouterr().out


@pytest.mark.parametrize("args,error", [
    (["data=fakenews"], "data.path"),
    (["train_frac=2"], "train_frac"),
    (["bogus=1"], "bogus"),
])  # fmt: skip
def test_prepare_bad_input_is_one_line(args: list[str], error: str, tmp_path: Path,
                                       capsys) -> None:  # fmt: skip
    from tokentango.cli import prepare

    assert prepare.main([*args, f"runtime.data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and error in err and err.count("\n") == 1
