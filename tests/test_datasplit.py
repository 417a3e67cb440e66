"""Issue 12's data settings: `data.split=domain` (no domain on two sides of the split) and
`data.train_rows` (a seeded training subsample for data-size curves), and the two
experiments that use them."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.conftest import (
    compose,
    read_results,
    tiny,
    train_in_process,  # fmt: skip
)
from tests.test_errors import assert_no_run_written, assert_one_error_line, tiny_run
from tokentango import rundir
from tokentango.config import ConfigError, upgrade_config, validate
from tokentango.data import (
    DataError,
    DataSettings,
    cache_key,
    load_dataset,
    load_run_dataset,
    split_rows,
    split_summary,
    subsample_train,
)  # fmt: skip
from tokentango.loop import set_up
from tokentango.synthetic import ensure_sample_corpus

WORDS = [f"w{i}" for i in range(40)]  # the words of the articles


def domain_csv(path: Path, fake_domains: int, reliable_domains: int, rows_per_domain: int = 12,
               empty_domain_rows: int = 0, seed: int = 0) -> Path:  # fmt: skip
    """A CSV in FakeNewsCorpus's schema with whole domains per class: each domain's rows of
    its class plus one row of the other class (a minority that goes wherever its domain
    goes), domain sizes varying; `empty_domain_rows` rows of each class have no domain."""
    rng = np.random.default_rng(seed)
    rows = []

    def add(domain: str, kind: str) -> None:
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(8, 30))))
        rows.append({"id": len(rows), "domain": domain, "type": kind,
                     "content": f"{text} {len(rows)}"})  # fmt: skip

    for prefix, kind, other, n in (("fake", "fake", "reliable", fake_domains),
                                   ("real", "reliable", "fake", reliable_domains)):  # fmt: skip
        for d in range(n):
            for _ in range(rows_per_domain + d % 5):
                add(f"{prefix}{d}.example", kind)
            add(f"{prefix}{d}.example", other)
    for _ in range(empty_domain_rows):
        add("", "fake")
        add("", "reliable")
    pd.DataFrame(rows).to_csv(path)
    return path


def settings(path: Path, **kw) -> DataSettings:
    base = dict(path=str(path), train_frac=1.0, seed=7, val_frac=0.1, test_frac=0.1,
                vocab_size=300, max_length=32, tokenizer_rows=None, chunk_rows=100)  # fmt: skip
    return DataSettings(**{**base, **kw})


# --- data.split=domain ------------------------------------------------------------------


def test_a_domain_split_puts_every_domain_on_one_side(tmp_path: Path) -> None:
    csv = domain_csv(tmp_path / "domains.csv", 30, 30, empty_domain_rows=10)
    ds = load_dataset(settings(csv, split="domain"), tmp_path)
    domains = {name: set(np.asarray(s.domains).tolist()) for name, s in ds.splits.items()}
    for a, b in itertools.combinations(domains, 2):
        assert not domains[a] & domains[b], (a, b)
    # The rows without a domain are one group, on one side only.
    empty = ds.domain_names.index("")
    assert sum(empty in d for d in domains.values()) == 1
    for name, split in ds.splits.items():
        counts = np.bincount(np.asarray(split.labels), minlength=2)
        assert counts[0] == counts[1] > 0, name  # each split balanced on its own
    # Per class, test and val get about test_frac and val_frac of the class's rows.
    assert 0.05 < len(ds.splits["test"]) / sum(map(len, ds.splits.values())) < 0.2
    meta = json.loads((ds.cache_dir / "meta.json").read_text())
    assert meta["split"] == "domain" and meta["settings"]["split"] == "domain"
    assert meta["split_domains"] == {name: len(d) for name, d in domains.items()}
    assert {n: meta[f"{n}_rows"] for n in ds.splits} == {n: len(s) for n, s in ds.splits.items()}
    assert split_summary(ds) == {
        "split": "domain", "split_rows": {n: len(s) for n, s in ds.splits.items()},
        "split_domains": meta["split_domains"]}  # fmt: skip
    # Seeded by the data seed: the same assignment again, another one with another seed.
    again = load_dataset(settings(csv, split="domain"), tmp_path / "again")
    np.testing.assert_array_equal(again.splits["test"].rows, ds.splits["test"].rows)
    other = load_dataset(settings(csv, split="domain", seed=8), tmp_path)
    assert set(np.asarray(other.splits["test"].domains).tolist()) != domains["test"]


def test_the_random_split_keeps_its_rows_and_its_cache_key(tmp_path: Path) -> None:
    corpus = ensure_sample_corpus(tmp_path, n_rows=600, seed=1)
    with (tmp_path / "spill.bin").open("w+b") as spill:
        parts, _, stats = split_rows(settings(corpus, vocab_size=500, max_length=64), spill)
    digest = hashlib.sha256()
    for name in ("train", "val", "test"):
        digest.update(np.asarray(parts[name]["row"], np.int64).tobytes())
    # The default split's rows, pinned (computed before data.split existed, re-pinned for
    # corpus v2): a random split never changes under anyone's results.
    assert {n: len(p) for n, p in parts.items()} == {"train": 321, "val": 40, "test": 41}
    assert digest.hexdigest() == RANDOM_ROWS_BEFORE_SPLIT
    assert parts["test"]["row"].tolist()[:8] == [408, 214, 424, 113, 78, 155, 420, 24]
    # A random split's domains overlap (that is the point of the domain split), and a
    # cache built before data.split keeps its key.
    assert stats["split"] == "random" and min(stats["split_domains"].values()) >= 30
    s = settings(corpus)
    before = {k: v for k, v in vars(s).items() if k != "split"}
    assert cache_key(s) == cache_key(SimpleNamespace(**before))  # the fields before split
    assert cache_key(s) != cache_key(settings(corpus, split="domain"))


RANDOM_ROWS_BEFORE_SPLIT = "668a42868331fd9018a44e0d18f8834306f9e9eb23ef1ba5b229f68139db3af7"


def test_too_few_domains_is_one_data_error_naming_file_class_and_count(tmp_path: Path) -> None:
    csv = domain_csv(tmp_path / "two_fake.csv", 2, 20)
    with pytest.raises(DataError) as err:
        load_dataset(settings(csv, split="domain"), tmp_path)
    assert str(err.value) == (f"data.split=domain needs at least 3 domains of each class; {csv} "
                              "has 2 fake domains")  # fmt: skip
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # nothing half-built
    # The same file splits at random.
    assert load_dataset(settings(csv), tmp_path).stats["split"] == "random"


def test_too_few_domains_exits_2_with_one_line_and_no_cache(tmp_path: Path, capsys) -> None:
    csv = domain_csv(tmp_path / "one_reliable.csv", 20, 1)
    code = train_in_process(*tiny_run(tmp_path, f"data.path={csv}", "data.split=domain"))
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, str(csv), "data.split=domain needs at least",
                          "has 1 reliable domain")  # fmt: skip
    assert_no_run_written(tmp_path)


def test_a_domain_split_run_with_a_subsample_records_both(tmp_path: Path, capsys) -> None:
    code = train_in_process(*tiny_run(tmp_path, "data.split=domain", "data.train_rows=64",
                                      "trainer.max_steps=8", "run_name=domain-run"))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "experiments" / "runs").iterdir()
    results = read_results(run_dir)
    assert results["split"] == "domain" and results["config"]["data"]["split"] == "domain"
    assert results["train_rows"] == 64 and results["train_rows_available"] > 64
    assert results["split_rows"]["train"] == 64
    assert results["split_rows"]["test"] == results["test_rows"]
    assert sum(results["split_domains"].values()) <= 80  # disjoint: 40 domains a class
    # 64 rows at batch 16: 4 steps an epoch.
    assert results["steps"] == 8 and results["epochs_completed"] == 2
    log = (run_dir / rundir.LOG_FILE).read_text()
    assert "split domain: domains train" in log and "(disjoint)" in log
    assert f"training on 64 of the {results['train_rows_available']} training rows" in log


def test_a_cache_built_before_data_split_is_read_as_a_random_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokentango import data as data_module

    cfg = tiny(tmp_path)
    built = load_run_dataset(cfg).cache_dir
    meta = json.loads((built / "meta.json").read_text())
    for key in ("split", "split_domains"):
        del meta[key]
    del meta["settings"]["split"]
    (built / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setattr(data_module, "CACHE_VERSION", 99)  # today's key: another folder

    def no_rebuild(*_a, **_k):
        raise AssertionError("the data was built again")

    monkeypatch.setattr(data_module, "scan_csv", no_rebuild)
    old = load_run_dataset(cfg, built.name)
    summary = split_summary(old)  # domains counted from the arrays
    assert summary["split"] == "random" and min(summary["split_domains"].values()) > 30
    assert "  split " not in data_module.describe(old.stats)
    with pytest.raises(AssertionError, match="built again"):  # not for a domain split
        load_run_dataset(tiny(tmp_path, "data.split=domain"), built.name)
    # Old run configs read as they did: random split, every training row.
    upgraded = upgrade_config({"data": {"seed": 1}, "seed": 1})
    assert upgraded["data"]["split"] == "random" and upgraded["data"]["train_rows"] is None


# --- data.train_rows ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("corpus")
    corpus = ensure_sample_corpus(path, n_rows=600, seed=1)
    return load_dataset(settings(corpus), path)


def test_subsample_train_is_seeded_stratified_and_leaves_val_and_test(dataset) -> None:
    full = dataset.splits["train"]
    sub = subsample_train(dataset, 100, seed=42)
    train = sub.splits["train"]
    assert len(train) == 100 and np.bincount(np.asarray(train.labels)).tolist() == [50, 50]
    assert set(np.asarray(train.rows).tolist()) <= set(np.asarray(full.rows).tolist())
    assert sub.splits["val"] is dataset.splits["val"]
    assert sub.splits["test"] is dataset.splits["test"]
    assert len(dataset.splits["train"]) == len(full)  # the dataset itself is left as it was
    same = subsample_train(dataset, 100, seed=42).splits["train"]
    np.testing.assert_array_equal(same.rows, train.rows)
    np.testing.assert_array_equal(same.ids, train.ids)
    other = subsample_train(dataset, 100, seed=43).splits["train"]
    assert set(np.asarray(other.rows).tolist()) != set(np.asarray(train.rows).tolist())
    # Nested: for one seed, a smaller sample is part of a larger one.
    small = subsample_train(dataset, 31, seed=42).splits["train"]
    assert set(np.asarray(small.rows).tolist()) <= set(np.asarray(train.rows).tolist())
    # The whole split (odd class sizes included), and null: all of it.
    assert len(subsample_train(dataset, len(full), seed=1).splits["train"]) == len(full)
    assert subsample_train(dataset, None, seed=1) is dataset


def test_more_train_rows_than_the_split_has_is_a_config_error(dataset) -> None:
    n = len(dataset.splits["train"])
    with pytest.raises(ConfigError, match=rf"data\.train_rows={n + 1}: the training split of "
                       rf".* has {n} rows; use at most {n}"):  # fmt: skip
        subsample_train(dataset, n + 1, seed=1)
    with pytest.raises(ConfigError, match=r"data\.train_rows=1: must be >= 2 or null"):
        validate(compose("data.train_rows=1"))


def test_train_rows_cuts_the_epoch(tmp_path: Path, data_dir: Path) -> None:
    cfg = tiny(data_dir, "data.train_rows=128", "trainer.batch_size=32", "trainer.max_steps=null",
               "trainer.epochs=3")  # fmt: skip
    training = set_up(cfg, tmp_path, "r")
    assert len(training.data.splits["train"]) == 128
    assert training.batches_per_epoch == 4 and training.total_steps == 12
    assert training.train_rows_available > 128
    with pytest.raises(ConfigError, match=r"data\.train_rows=100000: the training split"):
        set_up(tiny(data_dir, "data.train_rows=100000"), tmp_path / "big", "r")



# --- the experiments ---------------------------------------------------------------------


@pytest.mark.parametrize("name,swept", [
    ("split_comparison", {"model": ["small", "tfidf_lr"], "data.split": ["random", "domain"],
                          "use_mlm": ["true", "false"],
                          "seed": ["42", "69", "123"]}),
    ("data_scaling", {"model": ["small", "tfidf_lr"],
                      "data.train_rows": ["100", "400", "1600", "null"],
                      "use_mlm": ["true", "false"], "seed": ["42", "69", "123"]}),
])  # fmt: skip
def test_the_new_experiments_compose_and_validate(name: str, swept: dict) -> None:
    cfg = compose(f"+experiment={name}", with_hydra=True)
    params = cfg.hydra.sweeper.params
    assert {k: str(v).split(",") for k, v in params.items()} == swept
    assert cfg.hydra.sweep.dir.endswith(f"_{name}")
    for key, values in swept.items():  # every value of the grid composes and validates
        for value in values:
            job = compose(f"+experiment={name}", f"{key}={value}")
            validate(job)
            assert job.scheduler.name == "constant" and job.optimizer.lr == 1e-3
            assert job.trainer.max_steps == (300 if name == "data_scaling" else 400)
            assert job.trainer.eval_every == 50
    if name == "data_scaling":  # max_steps binds at the smallest size: 4 steps an epoch
        assert cfg.trainer.epochs * (100 // cfg.trainer.batch_size) >= cfg.trainer.max_steps
        assert cfg.trainer.early_stopping is not None
