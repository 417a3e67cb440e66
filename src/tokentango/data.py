"""Data stage: CSV -> labelled, balanced, split frame -> BPE tokenizer -> token id arrays.

Everything after reading the CSV is cached under `<data_dir>/cache/<key>/`, where the key
hashes the input file's fingerprint and every preprocessing setting. The cache folder is
built in a temporary folder and renamed into place under a file lock, so the jobs of a
sweep build it once and never see a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from filelock import FileLock
from sklearn.model_selection import train_test_split
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from tqdm import tqdm

from tokentango.rundir import write_json

log = logging.getLogger(__name__)

LABEL_NAMES = ("reliable", "fake")  # index = class id
TYPE_TO_LABEL = {
    "fake": 1, "conspiracy": 1, "junksci": 1,
    "political": 0, "reliable": 0,
}  # fmt: skip
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
SPLITS = ("train", "val", "test")
CACHE_VERSION = 1


class DataError(ValueError):
    """The input file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class DataSettings:
    """Every setting that changes the preprocessed data (and so the cache key)."""

    path: str
    train_frac: float
    seed: int
    val_frac: float
    test_frac: float
    vocab_size: int
    max_length: int
    chunk_rows: int  # CSV rows read at a time: memory only, not part of the cache key


@dataclass
class Split:
    ids: np.ndarray  # (n, max_length) token ids: [CLS] + tokens, right-padded with [PAD]
    lengths: np.ndarray  # (n,) real tokens per row, [CLS] included
    labels: np.ndarray  # (n,) 0 = reliable, 1 = fake

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    splits: dict[str, Split]
    tokenizer: Tokenizer
    stats: dict
    cache_dir: Path
    from_cache: bool

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


# --- reading -------------------------------------------------------------------------


def read_labelled_rows(
    path: str | Path, train_frac: float, seed: int, chunk_rows: int
) -> tuple[pd.DataFrame, dict]:
    """Read only `type` and `content`, sample `train_frac` of the rows, map types to labels.

    Returns the kept rows (columns content, label) and counts of what was dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rng = np.random.default_rng(seed)
    stats = {"rows_read": 0, "rows_sampled": 0, "dropped_type": 0, "dropped_empty": 0}
    kept = []
    bar = progress(f"reading {path.name}")
    try:
        reader = pd.read_csv(
            path, usecols=["type", "content"], dtype=str, chunksize=chunk_rows,
            keep_default_na=False, na_values=[""], engine="c",
        )  # fmt: skip
        for chunk in reader:
            bar.update(len(chunk))
            stats["rows_read"] += len(chunk)
            if train_frac < 1.0:
                chunk = chunk[rng.random(len(chunk)) < train_frac]
            stats["rows_sampled"] += len(chunk)
            label = chunk["type"].str.strip().str.lower().map(TYPE_TO_LABEL)
            content = chunk["content"].fillna("")
            empty = content.str.strip() == ""
            stats["dropped_type"] += int(label.isna().sum())
            stats["dropped_empty"] += int((empty & label.notna()).sum())
            keep = label.notna() & ~empty
            kept.append(pd.DataFrame({"content": content[keep], "label": label[keep].astype(int)}))
    except ValueError as err:  # pandas: missing columns, bad quoting, not a CSV
        raise DataError(f"cannot read {path} as a FakeNewsCorpus CSV: {err}") from err
    finally:
        bar.close()
    frame = (
        pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=["content", "label"])
    )
    stats["rows_kept"] = len(frame)
    return frame, stats


def drop_duplicate_contents(frame: pd.DataFrame, stats: dict) -> pd.DataFrame:
    """Keep the first row of each exact content: FakeNewsCorpus repeats articles (and error
    pages), and a copy on both sides of a split would leak test rows into training."""
    deduplicated = frame.drop_duplicates("content", keep="first").reset_index(drop=True)
    stats["dropped_duplicate"] = len(frame) - len(deduplicated)
    return deduplicated


def balance(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Down-sample every class to the size of the smallest one."""
    counts = frame["label"].value_counts()
    if len(counts) < 2:
        raise DataError(f"need both classes after the label map, found only {dict(counts)}")
    n = counts.min()
    parts = [g.sample(n=n, random_state=seed) for _, g in frame.groupby("label")]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def split_frame(
    frame: pd.DataFrame, val_frac: float, test_frac: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Stratified train/val/test split, fixed by `seed`."""
    holdout = val_frac + test_frac
    train, rest = train_test_split(
        frame, test_size=holdout, random_state=seed, stratify=frame["label"]
    )
    val, test = train_test_split(
        rest, test_size=test_frac / holdout, random_state=seed, stratify=rest["label"]
    )
    return {"train": train, "val": val, "test": test}


# --- tokenizer -----------------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int) -> Tokenizer:
    """BPE on the given texts; encodes as [CLS] + tokens, truncated and padded."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )  # fmt: skip
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    configure_encoding(tokenizer, max_length)
    return tokenizer


def configure_encoding(tokenizer: Tokenizer, max_length: int) -> None:
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", CLS_ID)]
    )
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token="[PAD]", length=max_length)


# Rows encoded at a time: an Encoding keeps the tokens cut off past max_length, so holding a
# whole split's Encodings at once costs far more memory than its id arrays.
ENCODE_ROWS = 4096


def encode(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Batch-encode in Rust, ENCODE_ROWS at a time, straight into compact arrays:
    (ids, lengths)."""
    dtype = np.uint16 if tokenizer.get_vocab_size() <= np.iinfo(np.uint16).max else np.int32
    ids = np.empty((len(texts), tokenizer.padding["length"]), dtype=dtype)
    lengths = np.empty(len(texts), dtype=np.int32)
    bar = progress("encoding", total=len(texts)) if len(texts) > ENCODE_ROWS else None
    for start in range(0, len(texts), ENCODE_ROWS):
        encodings = tokenizer.encode_batch(texts[start : start + ENCODE_ROWS])
        stop = start + len(encodings)
        ids[start:stop] = [e.ids for e in encodings]
        lengths[start:stop] = [sum(e.attention_mask) for e in encodings]
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    return ids, lengths


def progress(desc: str, total: int | None = None) -> tqdm:
    """A rows/s progress bar on stderr, shown only when stderr is a terminal."""
    return tqdm(desc=desc, total=total, unit=" rows", unit_scale=True, leave=False,
                disable=None, dynamic_ncols=True)  # fmt: skip


# --- cache ---------------------------------------------------------------------------


def settings_from_config(cfg) -> DataSettings:
    """The data settings of a composed config; generates the embedded corpus if needed."""
    from tokentango.synthetic import ensure_sample_corpus

    path = cfg.data.path
    if path is None:
        path = ensure_sample_corpus(cfg.runtime.data_dir, cfg.data.sample_rows)
    return DataSettings(
        path=str(path), train_frac=cfg.train_frac, seed=cfg.data.seed,
        val_frac=cfg.data.val_frac, test_frac=cfg.data.test_frac,
        vocab_size=cfg.data.vocab_size, max_length=cfg.data.max_length,
        chunk_rows=cfg.runtime.csv_chunk_rows,
    )  # fmt: skip


def file_fingerprint(path: str | Path, sample_bytes: int = 1 << 22) -> str:
    """Size, mtime and the head and tail bytes: cheap even for several GB."""
    path = Path(path)
    st = path.stat()
    digest = hashlib.blake2b(f"{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=16)
    with path.open("rb") as f:
        digest.update(f.read(sample_bytes))
        if st.st_size > sample_bytes:
            f.seek(max(st.st_size - sample_bytes, sample_bytes))
            digest.update(f.read(sample_bytes))
    return digest.hexdigest()


def cache_key(settings: DataSettings) -> str:
    fields = {k: v for k, v in vars(settings).items() if k not in ("path", "chunk_rows")}
    fields["file"] = file_fingerprint(settings.path)
    fields["version"] = CACHE_VERSION
    blob = json.dumps(fields, sort_keys=True).encode()
    return f"{Path(settings.path).stem[:40]}-{hashlib.blake2b(blob, digest_size=8).hexdigest()}"


def _build(settings: DataSettings, out_dir: Path) -> None:
    frame, stats = read_labelled_rows(
        settings.path, settings.train_frac, settings.seed, settings.chunk_rows
    )
    frame = balance(drop_duplicate_contents(frame, stats), settings.seed)
    parts = split_frame(frame, settings.val_frac, settings.test_frac, settings.seed)
    for name, part in parts.items():
        if len(part) == 0 or part["label"].nunique() < 2:
            raise DataError(
                f"{settings.path}: the {name} split has {len(part)} rows; need both classes "
                "in every split (more rows or a larger train_frac)"
            )
    tokenizer = train_tokenizer(
        parts["train"]["content"].tolist(), settings.vocab_size, settings.max_length
    )
    tokenizer.save(str(out_dir / "tokenizer.json"))
    for name, part in parts.items():
        ids, lengths = encode(tokenizer, part["content"].tolist())
        np.save(out_dir / f"{name}_ids.npy", ids)
        np.save(out_dir / f"{name}_lengths.npy", lengths)
        np.save(out_dir / f"{name}_labels.npy", part["label"].to_numpy(np.int8))
        np.save(out_dir / f"{name}_rows.npy", part.index.to_numpy(np.int64))
        stats[f"{name}_rows"] = len(part)
    stats["balanced_rows"] = len(frame)
    stats["vocab_size"] = tokenizer.get_vocab_size()
    stats["settings"] = {k: v for k, v in vars(settings).items()}
    write_json(out_dir / "meta.json", stats)


def describe(stats: dict) -> str:
    """What preprocessing read, dropped (by reason), kept and split: for people and logs."""
    s = stats
    return "\n".join([
        f"{s['settings']['path']}",
        f"  read {s['rows_read']:,} rows, sampled {s['rows_sampled']:,} "
        f"(train_frac {s['settings']['train_frac']})",
        f"  dropped: {s['dropped_type']:,} unmapped or missing type, "
        f"{s['dropped_empty']:,} empty content, {s['dropped_duplicate']:,} repeated content",
        f"  kept {s['rows_kept'] - s['dropped_duplicate']:,}, balanced to "
        f"{s['balanced_rows']:,}: train {s['train_rows']:,}, val {s['val_rows']:,}, "
        f"test {s['test_rows']:,}; vocabulary {s['vocab_size']:,}",
    ])  # fmt: skip


def load_cache_dir(cache_dir: Path, from_cache: bool = True) -> Dataset:
    """A built cache folder as a Dataset (no CSV needed). The arrays are memory-mapped,
    read-only: opening is instant whatever their size, and the jobs of a sweep share one
    copy in the page cache."""
    tokenizer = Tokenizer.from_file(str(cache_dir / "tokenizer.json"))
    splits = {
        name: Split(*(np.load(cache_dir / f"{name}_{part}.npy", mmap_mode="r")
                      for part in ("ids", "lengths", "labels")))  # fmt: skip
        for name in SPLITS
    }
    stats = json.loads((cache_dir / "meta.json").read_text())
    return Dataset(splits, tokenizer, stats, cache_dir, from_cache)


def load_dataset(settings: DataSettings, data_dir: str | Path) -> Dataset:
    """The tokenized splits for `settings`, from the cache or built once."""
    path = Path(settings.path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    cache_root = Path(data_dir) / "cache"
    cache_root.mkdir(parents=True, exist_ok=True)
    cache_dir = cache_root / cache_key(settings)
    if (cache_dir / "meta.json").exists():
        return load_cache_dir(cache_dir, from_cache=True)
    with FileLock(str(cache_dir) + ".lock"):
        if (cache_dir / "meta.json").exists():  # another job built it while we waited
            return load_cache_dir(cache_dir, from_cache=True)
        log.info("preprocessing %s into %s", path, cache_dir)
        shutil.rmtree(cache_dir, ignore_errors=True)  # never complete without meta.json
        tmp = cache_root / f".{cache_dir.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build(settings, tmp)
            os.replace(tmp, cache_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load_cache_dir(cache_dir, from_cache=False)


def batch_tensors(
    split: Split, index: np.ndarray, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `index` of a split as (ids, labels) tensors, trimmed to the batch's longest row
    (dynamic padding: short articles do not pay for max_length)."""
    width = int(split.lengths[index].max())
    ids = torch.from_numpy(split.ids[index, :width].astype(np.int64))
    labels = torch.from_numpy(split.labels[index].astype(np.int64))
    return ids.to(device), labels.to(device)


def epoch_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, pool_batches: int = 50
) -> list[np.ndarray]:
    """The batches of one epoch, a function of (seed, epoch) alone so a run can resume at
    any batch. Rows are shuffled, then sorted by length within pools of `pool_batches`
    batches, and the batches shuffled again: each batch holds rows of similar length, so
    dynamic padding wastes little, while the order stays random."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
