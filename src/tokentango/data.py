"""Data stage: CSV -> labelled, balanced, split rows -> BPE tokenizer -> token id arrays.

The build streams, so its memory barely grows with the file (~55 bytes a CSV row; the
file is 4 GB at FakeNewsCorpus's 995,000 rows and 8.5 million rows make the corpus):

1. scan: read the CSV once, in chunks; keep per labelled row only its label, a 128-bit
   digest of its content, its domain and positions, and write its content (cut where no
   kept token can change, see `cut_at_whitespace`) to a spill file on disk;
2. on those small columns: drop repeated contents by digest, balance, split (the same
   functions, so the same rows as reading every content into one frame); or, with
   `split=domain`, assign whole domains to the splits and balance each split (see
   `split_by_domain`);
3. train the BPE tokenizer on at most `tokenizer_rows` training rows (a seeded sample);
4. encode in chunks, in spill order, straight into the final `.npy` files.

Everything is cached under `<data_dir>/cache/<key>/`, where the key hashes the input
file's fingerprint and every preprocessing setting. The cache folder is built in a
temporary folder and renamed into place under a file lock, so the jobs of a sweep build
it once and never see a half-written cache; they open its arrays memory-mapped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from filelock import FileLock
from tokenizers import Tokenizer
from tqdm import tqdm

from tokentango.rundir import write_json
from tokentango.tokenization import Encoder, chars_to_fill, cut_at_whitespace, train_tokenizer

# torch, pandas and scikit-learn load when used: `prepare` needs no torch, and a run that
# opens a built cache no pandas or scikit-learn.
if TYPE_CHECKING:
    import pandas as pd
    import torch

log = logging.getLogger(__name__)

LABEL_NAMES = ("reliable", "fake")  # index = class id
TYPE_TO_LABEL = {
    "fake": 1, "conspiracy": 1, "junksci": 1,
    "political": 0, "reliable": 0,
}  # fmt: skip
SPLITS = ("train", "val", "test")
SPLIT_KINDS = ("random", "domain")  # data.split: rows at random, or whole domains per split
CACHE_VERSION = 2  # 2: per-row domain and CSV position; tokenizer on a bounded sample
REQUIRED_COLUMNS = ("type", "content")
# Characters spilled per token of max_length: generous, since a text that this leaves
# short of max_length tokens costs a second read of the CSV.
SPILL_CHARS_PER_TOKEN = 64
# Rows encoded at a time (an Encoding keeps the tokens cut off past max_length: a whole
# split's at once would cost far more memory than its ids).
ENCODE_ROWS = 4096


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
    tokenizer_rows: int | None  # training rows the tokenizer learns from; None: all
    chunk_rows: int  # CSV rows read at a time: memory only, not part of the cache key
    # random: a stratified random split of the rows; domain: every domain on one side only.
    # Keys the cache only when not `random`, so the caches built before it stay valid.
    split: str = "random"


@dataclass
class Split:
    ids: np.ndarray  # (n, max_length) token ids: [CLS] + tokens, right-padded with [PAD]
    lengths: np.ndarray  # (n,) real tokens per row, [CLS] included
    labels: np.ndarray  # (n,) 0 = reliable, 1 = fake
    # From the cache; None for texts that come from no CSV (predict).
    domains: np.ndarray | None = None  # (n,) index into Dataset.domain_names
    rows: np.ndarray | None = None  # (n,) position among the CSV's data rows (0 = first)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        """Rows `index` of this split, as arrays in memory."""
        arrays = (self.ids, self.lengths, self.labels, self.domains, self.rows)
        return Split(*(None if a is None else np.asarray(a[index]) for a in arrays))


@dataclass
class Dataset:
    splits: dict[str, Split]
    tokenizer: Tokenizer
    domain_names: list[str]
    stats: dict
    cache_dir: Path
    from_cache: bool

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def progress(desc: str, total: int | None = None) -> tqdm:
    """A rows/s progress bar on stderr, shown only when stderr is a terminal."""
    return tqdm(desc=desc, total=total, unit=" rows", unit_scale=True, leave=False,
                disable=None, dynamic_ncols=True)  # fmt: skip


# --- pass 1: scan --------------------------------------------------------------------

def content_digests(contents: list[bytes]) -> np.ndarray:
    """(n, 2) uint64: a 128-bit digest of each content, to find repeated contents without
    keeping them (64 bits would risk a wrong duplicate at FakeNewsCorpus's 8.5 M rows)."""
    digests = b"".join(hashlib.blake2b(c, digest_size=16).digest() for c in contents)
    return np.frombuffer(digests, dtype=np.uint64).reshape(len(contents), 2)


def _unreadable(path: Path, err: Exception) -> DataError:
    return DataError(f"cannot read {path} as a FakeNewsCorpus CSV: {err}")


def _csv_chunks(path: Path, chunk_rows: int, columns: list[str]) -> Iterator[pd.DataFrame]:
    import pandas as pd

    try:
        yield from pd.read_csv(
            path, usecols=columns, dtype=str, chunksize=chunk_rows,
            keep_default_na=False, na_values=[""], engine="c",
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as err:  # bad quoting, not a CSV
        raise _unreadable(path, err) from err


def _columns(path: Path) -> list[str]:
    """The columns a build reads; a clear error when the file lacks one it needs."""
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0).columns
    except (ValueError, pd.errors.ParserError) as err:  # empty file, not a CSV
        raise _unreadable(path, err) from err
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path} has no {' or '.join(repr(c) for c in missing)} column "
                        "(a FakeNewsCorpus CSV has 'type', 'content' and 'domain')")  # fmt: skip
    return [c for c in ("domain", "type", "content") if c in header]


def scan_csv(
    path: str | Path, train_frac: float, seed: int, chunk_rows: int, spill: BinaryIO,
    spill_chars: int,
) -> tuple[pd.DataFrame, list[str], dict]:
    """Read the CSV once: sample `train_frac` of the rows, map types to labels, drop empty
    contents. Each kept content goes to `spill` (cut at `spill_chars`, see
    `cut_at_whitespace`); what is kept in memory is ~50 bytes a row.

    Returns the kept rows (label, digest_a/b, domain, row, offset, size, cut), the domain
    names the `domain` codes index, and counts of what was read and dropped.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    columns = _columns(path)
    rng = np.random.default_rng(seed)
    stats = {"rows_read": 0, "rows_sampled": 0, "dropped_type": 0, "dropped_empty": 0}
    domain_codes: dict[str, int] = {}
    kept, offset = [], 0
    bar = progress(f"reading {path.name}")
    for chunk in _csv_chunks(path, chunk_rows, columns):
        rows = np.arange(stats["rows_read"], stats["rows_read"] + len(chunk))
        bar.update(len(chunk))
        stats["rows_read"] += len(chunk)
        if train_frac < 1.0:
            sampled = rng.random(len(chunk)) < train_frac
            chunk, rows = chunk[sampled], rows[sampled]
        stats["rows_sampled"] += len(chunk)
        label = chunk["type"].str.strip().str.lower().map(TYPE_TO_LABEL)
        content = chunk["content"].fillna("")
        empty = content.str.strip() == ""
        stats["dropped_type"] += int(label.isna().sum())
        stats["dropped_empty"] += int((empty & label.notna()).sum())
        keep = (label.notna() & ~empty).to_numpy()
        texts = content.to_numpy(object)[keep]
        encoded = [t.encode() for t in texts]
        spilled = [cut_at_whitespace(t, spill_chars) for t in texts]
        cut = np.fromiter((s is not t for s, t in zip(spilled, texts, strict=True)), bool,
                          len(texts))  # fmt: skip
        spilled_bytes = [s.encode() if is_cut else e
                         for s, e, is_cut in zip(spilled, encoded, cut, strict=True)]  # fmt: skip
        sizes = np.fromiter(map(len, spilled_bytes), np.int64, len(spilled_bytes))
        spill.writelines(spilled_bytes)
        starts = offset + np.cumsum(sizes) - sizes
        offset += int(sizes.sum())
        domain = chunk["domain"].fillna("") if "domain" in chunk else pd.Series([""] * len(chunk))
        codes, names = pd.factorize(domain.to_numpy(object)[keep])
        global_codes = np.array([domain_codes.setdefault(n, len(domain_codes)) for n in names],
                                dtype=np.int32)  # fmt: skip
        digests = content_digests(encoded)
        kept.append(pd.DataFrame({
            "label": label.to_numpy()[keep].astype(np.int8),
            "digest_a": digests[:, 0], "digest_b": digests[:, 1],
            "domain": global_codes[codes] if len(codes) else np.empty(0, np.int32),
            "row": rows[keep], "offset": starts, "size": sizes, "cut": cut,
        }))  # fmt: skip
    bar.close()
    frame = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(
        columns=["label", "digest_a", "digest_b", "domain", "row", "offset", "size", "cut"])
    stats["rows_kept"] = len(frame)
    return frame, list(domain_codes), stats


# --- pass 2: rows ----------------------------------------------------------------------


def drop_duplicate_contents(frame: pd.DataFrame, stats: dict) -> pd.DataFrame:
    """Keep the first row of each exact content: FakeNewsCorpus repeats articles (and error
    pages), and a copy on both sides of a split would leak test rows into training."""
    deduplicated = frame.drop_duplicates(["digest_a", "digest_b"], keep="first")
    stats["dropped_duplicate"] = len(frame) - len(deduplicated)
    return deduplicated.reset_index(drop=True)


def require_both_classes(frame: pd.DataFrame) -> pd.Series:
    """The rows of each class; DataError unless both classes have some."""
    counts = frame["label"].value_counts()
    if len(counts) < 2:
        found = ", ".join(f"{counts[k]} {LABEL_NAMES[k]}" for k in sorted(counts.index))
        raise DataError(f"need rows of both classes after the label map, found {found or 'none'}"
                        f" (types kept: {', '.join(TYPE_TO_LABEL)})")
    return counts


def balance(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Down-sample every class to the size of the smallest one."""
    import pandas as pd

    n = require_both_classes(frame).min()
    parts = [g.sample(n=n, random_state=seed) for _, g in frame.groupby("label")]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def split_frame(
    frame: pd.DataFrame, val_frac: float, test_frac: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Stratified train/val/test split, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    holdout = val_frac + test_frac
    try:
        train, rest = train_test_split(
            frame, test_size=holdout, random_state=seed, stratify=frame["label"]
        )
        val, test = train_test_split(
            rest, test_size=test_frac / holdout, random_state=seed, stratify=rest["label"]
        )
    except ValueError as err:  # too few rows of a class for a stratified split
        raise DataError(f"{len(frame)} balanced rows are too few to split into train, val "
                        "and test; need more rows or a larger train_frac") from err
    return {"train": train, "val": val, "test": test}


def domain_strata(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per domain code of `frame`: its rows and its class (the majority label of
    its rows; a tie counts as reliable), in code order."""
    import pandas as pd

    codes = frame["domain"].to_numpy(np.int64)
    n = int(codes.max()) + 1 if len(codes) else 0
    counts = np.bincount(codes * 2 + frame["label"].to_numpy(np.int64),
                         minlength=2 * n).reshape(n, 2)  # fmt: skip
    present = np.flatnonzero(counts.sum(axis=1))
    return pd.DataFrame({"domain": present, "rows": counts[present].sum(axis=1),
                         "label": (counts[present, 1] > counts[present, 0]).astype(np.int8)})


def assign_domains(
    strata: pd.DataFrame, val_frac: float, test_frac: float, seed: int
) -> dict[str, np.ndarray]:
    """The domain codes of each split: per class, the domains shuffled with `seed`, then
    test and val filled in that order up to `test_frac` and `val_frac` of the class's rows
    (a domain goes where the middle of its rows falls on the cumulative count), train the
    rest; every split gets at least one domain of each class. The strata must hold at
    least 3 domains of each class."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in (0, 1):
        group = strata[strata["label"] == label]
        order = rng.permutation(len(group))
        domains = group["domain"].to_numpy()[order]
        rows = group["rows"].to_numpy()[order].astype(np.float64)
        middle = (np.cumsum(rows) - rows / 2) / rows.sum()
        n = len(domains)
        n_test = min(max(1, int((middle < test_frac).sum())), n - 2)
        n_val = int((middle < test_frac + val_frac).sum()) - n_test
        n_val = min(max(1, n_val), n - n_test - 1)
        chosen["test"].append(domains[:n_test])
        chosen["val"].append(domains[n_test : n_test + n_val])
        chosen["train"].append(domains[n_test + n_val :])
    return {name: np.concatenate(parts) for name, parts in chosen.items()}


def split_by_domain(
    frame: pd.DataFrame, val_frac: float, test_frac: float, seed: int, path: str | Path
) -> dict[str, pd.DataFrame]:
    """Train/val/test with every domain on one side only (FakeNewsCorpus labels rows by
    their site, so a random split lets a model learn a site's style): whole domains are
    assigned per class (`assign_domains`), then each split is balanced on its own. Rows
    without a domain are one domain. DataError, naming the file, when a class has fewer
    than 3 domains."""
    strata = domain_strata(frame)
    for label in (1, 0):
        n = int((strata["label"] == label).sum())
        if n < 3:
            raise DataError(f"data.split=domain needs at least 3 domains of each class; {path} "
                            f"has {n} {LABEL_NAMES[label]} domain{'' if n == 1 else 's'}")
    assigned = assign_domains(strata, val_frac, test_frac, seed)
    parts = {}
    for name in SPLITS:
        part = frame[frame["domain"].isin(assigned[name])]
        try:
            parts[name] = balance(part, seed)
        except DataError as err:  # one class only: its domains hold no row of the other
            raise DataError(f"{path}: the {name} split's {len(assigned[name])} domains hold "
                            f"{len(part)} rows, not both classes; {err}") from err
    return parts


def split_rows(
    settings: DataSettings, spill: BinaryIO
) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """Passes 1 and 2: the balanced train/val/test rows (no contents: see `scan_csv`)."""
    path = settings.path
    frame, domain_names, stats = scan_csv(
        path, settings.train_frac, settings.seed, settings.chunk_rows, spill,
        settings.max_length * SPILL_CHARS_PER_TOKEN,
    )  # fmt: skip
    if settings.split not in SPLIT_KINDS:
        raise DataError(f"unknown data.split {settings.split!r}: one of {', '.join(SPLIT_KINDS)}")
    try:
        frame = drop_duplicate_contents(frame, stats)
        if settings.split == "domain":
            require_both_classes(frame)  # the same error as a random split's
            parts = split_by_domain(frame, settings.val_frac, settings.test_frac,
                                    settings.seed, path)  # fmt: skip
            balanced_rows = sum(len(p) for p in parts.values())
        else:
            frame = balance(frame, settings.seed)
            parts = split_frame(frame, settings.val_frac, settings.test_frac, settings.seed)
            balanced_rows = len(frame)
    except DataError as err:  # the same messages, naming the file
        message = str(err)
        raise DataError(message if str(path) in message else f"{path}: {message}") \
            from err.__cause__  # fmt: skip
    for name, part in parts.items():
        if len(part) == 0 or part["label"].nunique() < 2:
            raise DataError(
                f"{path}: the {name} split has {len(part)} rows; need both classes "
                "in every split (more rows or a larger train_frac)"
            )
    stats["balanced_rows"] = balanced_rows
    stats["split"] = settings.split
    stats["split_domains"] = {name: int(part["domain"].nunique()) for name, part in parts.items()}
    return parts, domain_names, stats


def read_spilled(spill: BinaryIO, rows: pd.DataFrame) -> list[str]:
    """The spilled contents of `rows` (their offset and size)."""
    return list(iter_spilled(spill, rows))


def iter_spilled(spill: BinaryIO, rows: pd.DataFrame) -> Iterator[str]:
    """The spilled contents of `rows`, one at a time."""
    fd, offsets, sizes = spill.fileno(), rows["offset"].tolist(), rows["size"].tolist()
    for at, size in zip(offsets, sizes, strict=True):
        yield os.pread(fd, size, at).decode()


# --- pass 3: tokenizer ---------------------------------------------------------------


def tokenizer_sample(train: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """The training rows the tokenizer learns from: all of them up to `limit`, else a
    seeded sample of `limit` (kept in split order)."""
    if limit is None or len(train) <= limit:
        return train
    chosen = np.random.default_rng(seed).choice(len(train), size=limit, replace=False)
    return train.iloc[np.sort(chosen)]


# --- pass 4: encode --------------------------------------------------------------------


class _SplitWriter:
    """One split's arrays: ids written row by row into their final `.npy` file (memory
    stays flat however many rows), the small per-row arrays kept and saved at the end."""

    def __init__(self, out_dir: Path, name: str, part: pd.DataFrame, width: int, dtype) -> None:
        self.out_dir, self.name, self.part = out_dir, name, part
        path = out_dir / f"{name}_ids.npy"
        # open_memmap writes the header and sizes the file; rows then go in with pwrite.
        np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(len(part), width))
        self.row_bytes = np.dtype(dtype).itemsize * width
        self.header = path.stat().st_size - self.row_bytes * len(part)
        self.file = path.open("r+b")
        self.lengths = np.zeros(len(part), np.int32)

    def write(self, index: np.ndarray, ids: np.ndarray, lengths: np.ndarray) -> None:
        fd = self.file.fileno()
        for i, row in zip(index.tolist(), ids, strict=True):
            if os.pwrite(fd, row.tobytes(), self.header + i * self.row_bytes) != self.row_bytes:
                raise OSError(f"short write to {self.file.name}")
        self.lengths[index] = lengths

    def close(self) -> None:
        self.file.close()
        save = self.out_dir / self.name
        np.save(f"{save}_lengths.npy", self.lengths)
        np.save(f"{save}_labels.npy", self.part["label"].to_numpy(np.int8))
        np.save(f"{save}_domains.npy", self.part["domain"].to_numpy(np.int32))
        np.save(f"{save}_rows.npy", self.part["row"].to_numpy(np.int64))


def encode_splits(
    tokenizer: Tokenizer, parts: dict[str, pd.DataFrame], spill: BinaryIO, out_dir: Path,
    csv_path: Path, chunk_rows: int,
) -> dict:
    """Encode every split's rows in spill order (a sequential read) into `out_dir`. Rows
    whose spilled text was cut and still does not fill max_length are encoded from the
    CSV itself, in one more read that happens only when there are any."""
    import pandas as pd

    encoder, counts = Encoder(tokenizer), {"fast": 0, "encoded_again": 0}
    width = encoder.max_length
    writers = {name: _SplitWriter(out_dir, name, part, width, encoder.dtype)
               for name, part in parts.items()}  # fmt: skip
    every = pd.concat([part.assign(split=name, index_in_split=np.arange(len(part)))
                       for name, part in parts.items()]).sort_values("offset")  # fmt: skip
    probe = every.iloc[:: max(1, len(every) // 2000)]  # ~2000 rows spread over the file
    cut_chars = chars_to_fill(tokenizer, read_spilled(spill, probe))
    short_cut = []
    bar = progress("encoding", total=len(every))
    for start in range(0, len(every), ENCODE_ROWS):
        batch = every.iloc[start : start + ENCODE_ROWS]
        ids, lengths, batch_counts = encoder.encode(read_spilled(spill, batch), cut_chars)
        counts = {k: v + batch_counts[k] for k, v in counts.items()}
        for name, at in batch.groupby("split").indices.items():
            writers[name].write(batch["index_in_split"].to_numpy()[at], ids[at], lengths[at])
        short_cut.append(batch[(lengths < width) & batch["cut"].to_numpy()])
        bar.update(len(batch))
    bar.close()
    from_csv = pd.concat(short_cut)
    if len(from_csv):
        texts = read_contents(csv_path, from_csv["row"].to_numpy(), chunk_rows)
        ids, lengths, _ = encoder.encode(texts)
        for name, at in from_csv.groupby("split").indices.items():
            writers[name].write(from_csv["index_in_split"].to_numpy()[at], ids[at], lengths[at])
    for writer in writers.values():
        writer.close()
    return {"encode_cut_chars": cut_chars, "rows_encoded_fast": counts["fast"],
            "rows_encoded_again": counts["encoded_again"], "rows_encoded_from_csv": len(from_csv)}


def read_contents(path: str | Path, rows: np.ndarray, chunk_rows: int) -> list[str]:
    """The contents of CSV data rows `rows`, in that order (one read of the file)."""
    import pandas as pd

    wanted = pd.Index(rows)
    found: dict[int, str] = {}
    start = 0
    for chunk in _csv_chunks(Path(path), chunk_rows, ["content"]):
        here = wanted[(wanted >= start) & (wanted < start + len(chunk))]
        for row in here:
            found[int(row)] = chunk["content"].iat[row - start]
        start += len(chunk)
    if len(found) < len(set(rows.tolist())):
        raise DataError(f"{path} changed while it was read (rows missing on a second read)")
    return [found[int(row)] for row in rows]


# --- cache ---------------------------------------------------------------------------


def settings_from_config(cfg) -> DataSettings:
    """The data settings of a composed config; generates the embedded corpus if needed."""
    from tokentango.synthetic import CORPUS_VERSION, ensure_sample_corpus

    path = cfg.data.path
    if path is None:
        version = cfg.data.get("sample_version", CORPUS_VERSION)
        if version != CORPUS_VERSION:  # a run of an earlier version, its cache gone
            raise DataError(f"this run was trained on the embedded corpus v{version}, which "
                            f"this version no longer generates (it writes v{CORPUS_VERSION}); "
                            "its data cache is gone, so it cannot be resumed or evaluated")
        path = ensure_sample_corpus(cfg.runtime.data_dir, cfg.data.sample_rows)
    return _settings(cfg, str(path))


def _settings(cfg, path: str) -> DataSettings:
    return DataSettings(
        path=path, train_frac=cfg.train_frac, seed=cfg.data.seed,
        val_frac=cfg.data.val_frac, test_frac=cfg.data.test_frac,
        vocab_size=cfg.data.vocab_size, max_length=cfg.data.max_length,
        tokenizer_rows=cfg.data.tokenizer_rows, chunk_rows=cfg.runtime.csv_chunk_rows,
        split=str(cfg.data.split),
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
    if fields.get("split") == "random":  # as before `split` existed: those caches stay valid
        del fields["split"]
    fields["file"] = file_fingerprint(settings.path)
    fields["version"] = CACHE_VERSION
    blob = json.dumps(fields, sort_keys=True).encode()
    return f"{Path(settings.path).stem[:40]}-{hashlib.blake2b(blob, digest_size=8).hexdigest()}"


def _build(settings: DataSettings, out_dir: Path) -> None:
    times = [time.perf_counter()]  # the end of each pass: read, tokenizer, encode
    with (out_dir / "spill.bin").open("w+b") as spill:
        parts, domain_names, stats = split_rows(settings, spill)
        spill.flush()
        times.append(time.perf_counter())
        sample = tokenizer_sample(parts["train"], settings.tokenizer_rows, settings.seed)
        tokenizer = train_tokenizer(iter_spilled(spill, sample), settings.vocab_size,
                                    settings.max_length)  # fmt: skip
        tokenizer.save(str(out_dir / "tokenizer.json"))
        times.append(time.perf_counter())
        stats.update(encode_splits(tokenizer, parts, spill, out_dir, Path(settings.path),
                                   settings.chunk_rows))  # fmt: skip
        times.append(time.perf_counter())
    (out_dir / "spill.bin").unlink()
    write_json(out_dir / "domains.json", domain_names)
    stats.update({f"{name}_rows": len(part) for name, part in parts.items()})
    stats["tokenizer_rows"] = len(sample)
    stats["domains"] = len(domain_names)
    stats["vocab_size"] = tokenizer.get_vocab_size()
    laps = np.diff(times).round(2).tolist()
    stats["seconds"] = dict(zip(("read", "tokenizer", "encode"), laps, strict=True))
    stats["settings"] = {k: v for k, v in vars(settings).items()}
    stats["cache_version"] = CACHE_VERSION
    write_json(out_dir / "meta.json", stats)


def describe(stats: dict) -> str:
    """What preprocessing read, dropped (by reason), kept and split: for people and logs."""
    s = stats
    domains = f" from {s['domains']:,} domains" if "domains" in s else ""  # not in version 1
    learnt_from = s.get("tokenizer_rows", s["train_rows"])
    split = s.get("split", s["settings"].get("split", "random"))
    if "split_domains" in s:  # built since data.split: the domains of each split
        d = s["split_domains"]
        how = "disjoint" if split == "domain" else "shared between splits"
        split_line = [f"  split {split}: domains train {d['train']:,}, val {d['val']:,}, "
                      f"test {d['test']:,} ({how})"]
    else:
        split_line = []
    return "\n".join([
        f"{s['settings']['path']}",
        f"  read {s['rows_read']:,} rows, sampled {s['rows_sampled']:,} "
        f"(train_frac {s['settings']['train_frac']})",
        f"  dropped: {s['dropped_type']:,} unmapped or missing type, "
        f"{s['dropped_empty']:,} empty content, {s['dropped_duplicate']:,} repeated content",
        f"  kept {s['rows_kept'] - s['dropped_duplicate']:,}{domains}, "
        f"balanced to {s['balanced_rows']:,}: train {s['train_rows']:,}, "
        f"val {s['val_rows']:,}, test {s['test_rows']:,}",
        *split_line,
        f"  tokenizer: {s['vocab_size']:,} tokens learnt from {learnt_from:,} training rows",
    ])  # fmt: skip


def _cached_array(path: Path) -> np.ndarray:
    """One cached array, memory-mapped and never unpickled: a file holding Python objects
    (a pickle) is refused before anything in it runs."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise DataError(f"unusable cache file {path}: {err}; delete {path.parent} to rebuild "
                        "it") from err  # fmt: skip


def load_cache_dir(cache_dir: Path, from_cache: bool = True) -> Dataset:
    """A built cache folder as a Dataset (no CSV needed). The arrays are memory-mapped,
    read-only: opening is instant whatever their size, and the jobs of a sweep share one
    copy in the page cache."""
    stats = json.loads((cache_dir / "meta.json").read_text())
    tokenizer = Tokenizer.from_file(str(cache_dir / "tokenizer.json"))
    parts = ("ids", "lengths", "labels", "domains", "rows")
    if stats.get("cache_version", 1) < 2:  # no domains; its `rows` counted other rows
        parts = parts[:3]
    splits = {
        name: Split(*(_cached_array(cache_dir / f"{name}_{part}.npy") for part in parts))
        for name in SPLITS
    }
    domains = cache_dir / "domains.json"
    domain_names = json.loads(domains.read_text()) if domains.is_file() else []
    return Dataset(splits, tokenizer, domain_names, stats, cache_dir, from_cache)


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
        for stale in cache_root.glob(f".{cache_dir.name}.tmp*"):  # a killed build's (spill)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = cache_root / f".{cache_dir.name}.tmp{os.getpid()}"
        tmp.mkdir()
        try:
            _build(settings, tmp)
            os.replace(tmp, cache_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load_cache_dir(cache_dir, from_cache=False)


def load_run_dataset(cfg, data_cache: str | None = None) -> Dataset:
    """The data a run trains on: the cache it was trained on (`data_cache`, a folder name
    under `<data_dir>/cache/`) while it is there and was built for the same data settings,
    so a resumed or evaluated run keeps its token ids whatever changed in preprocessing
    since; else the cache for its settings, built if needed."""
    from tokentango.synthetic import CORPUS_VERSION, sample_corpus_name

    cache = Path(cfg.runtime.data_dir) / "cache" / (data_cache or "-")
    if data_cache and (cache / "meta.json").is_file():
        built_for = json.loads((cache / "meta.json").read_text())["settings"]
        built_for = {**_SAME_DATA_BEFORE, **built_for}
        # The settings of `cfg`, without generating the embedded corpus to name its path.
        wanted = _settings(cfg, cfg.data.path or "")
        # A given CSV by its name; the generated one by the name its version gave it.
        name = Path(cfg.data.path).name if cfg.data.path is not None else sample_corpus_name(
            cfg.data.sample_rows, version=cfg.data.get("sample_version", CORPUS_VERSION))
        if all(built_for[k] == getattr(wanted, k) for k in _SAME_DATA) and \
                Path(built_for["path"]).name == name:  # fmt: skip
            return load_cache_dir(cache)
    return load_dataset(settings_from_config(cfg), cfg.runtime.data_dir)


# The settings that make the same rows and tokens, whatever the preprocessing version.
_SAME_DATA = ("train_frac", "seed", "val_frac", "test_frac", "vocab_size", "max_length",
              "split")  # fmt: skip
# What a cache built before a setting existed was built with.
_SAME_DATA_BEFORE = {"split": "random"}


def split_summary(dataset: Dataset) -> dict:
    """Each split's rows and domains, and the kind of split: for results.json and logs.
    Domains are counted on the splits as trained on (after data.train_rows), from their
    domain arrays; else from the cache's stats; None where the cache keeps no domains."""
    stats = dataset.stats
    domains = stats.get("split_domains")
    if all(s.domains is not None for s in dataset.splits.values()):
        domains = {name: int(len(np.unique(np.asarray(s.domains))))
                   for name, s in dataset.splits.items()}  # fmt: skip
    return {
        "split": stats.get("split", stats.get("settings", {}).get("split", "random")),
        "split_rows": {name: len(s) for name, s in dataset.splits.items()},
        "split_domains": domains,
    }


_SUBSAMPLE_STREAM = 0x7472  # keeps the subsample's draws apart from other uses of the seed


def subsample_train(dataset: Dataset, n_rows: int | None, seed: int) -> Dataset:
    """`dataset` with its training split cut to a seeded, class-stratified sample of
    `n_rows` rows (half of each class, as far as the split has them; kept in split order);
    val and test unchanged. `n_rows` None: `dataset` itself. The same seed draws the same
    rows, and for one seed a smaller sample is part of a larger one, so the points of a
    data-size curve differ only by the rows added. ConfigError (data.train_rows) when the
    split has fewer rows."""
    if n_rows is None:
        return dataset
    train = dataset.splits["train"]
    if not 1 <= n_rows <= len(train):
        from tokentango.config import ConfigError

        path = dataset.stats.get("settings", {}).get("path", dataset.cache_dir)
        raise ConfigError(f"invalid config value data.train_rows={n_rows}: the training split "
                          f"of {path} has {len(train)} rows; use at most {len(train)} or "
                          "null (all)")  # fmt: skip
    labels = np.asarray(train.labels)
    rng = np.random.default_rng([seed, _SUBSAMPLE_STREAM])
    by_class = [rng.permutation(np.flatnonzero(labels == label)) for label in (0, 1)]
    fake = min(len(by_class[1]), n_rows // 2)
    reliable = min(len(by_class[0]), n_rows - fake)
    fake = n_rows - reliable  # the other class fills in where one has too few
    index = np.sort(np.concatenate([by_class[0][:reliable], by_class[1][:fake]]))
    return dataclasses.replace(dataset, splits={**dataset.splits, "train": train.subset(index)})


def batch_tensors(
    split: Split, index: np.ndarray, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `index` of a split as (ids, labels) tensors, trimmed to the batch's longest row
    (dynamic padding: short articles do not pay for max_length)."""
    import torch

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
