"""The embedded default corpus: FakeNewsCorpus's CSV schema, generated deterministically.

A fresh clone has no FakeNewsCorpus, so `data=sample` writes a corpus in the same schema
(leading unnamed index column, multi-line quoted content, empty and unmapped types, empty
contents). Each article mixes Zipf-distributed filler words with cue words whose class
lean is only probabilistic, so the signal is learnable but capped: short articles carry
few cues, some sources write subtly, and a few labels are flipped. TF-IDF + logistic
regression lands between 80% and 95% on its test split (tests/test_data.py checks it).

`write_corpus` writes a corpus of any size block by block (flat memory, several processes),
in a `CorpusShape`: `SAMPLE` is the embedded default, `FAKENEWS` is shaped like
FakeNewsCorpus's `995,000_rows.csv` for benchmarks/data_scale.py. A written file of n rows
is the first n rows of any larger one with the same seed.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from tokentango.rundir import write_atomically

COLUMNS = [
    "id", "domain", "type", "url", "content", "scraped_at", "inserted_at", "updated_at",
    "title", "authors", "keywords", "meta_keywords", "meta_description", "tags", "summary",
]  # fmt: skip

FAKE_CUES = [
    "shocking",
    "exposed",
    "secret",
    "miracle",
    "truth",
    "hoax",
    "cover-up",
    "globalist",
    "elites",
    "banned",
    "censored",
    "wake",
    "sheeple",
    "bombshell",
    "insider",
    "leaked",
    "agenda",
    "plandemic",
    "chemtrails",
    "rigged",
    "traitor",
    "outrageous",
    "unbelievable",
    "destroy",
    "cure",
    "toxic",
    "hidden",
    "conspiracy",
    "patriots",
    "deep-state",
    "mainstream",
    "lies",
    "doom",
    "collapse",
    "warning",
    "urgent",
    "alarming",
    "scandal",
    "cabal",
    "puppet",
]
RELIABLE_CUES = [
    "according",
    "reported",
    "percent",
    "officials",
    "study",
    "analysis",
    "data",
    "survey",
    "quarter",
    "statement",
    "spokesperson",
    "committee",
    "researchers",
    "estimated",
    "federal",
    "agency",
    "published",
    "court",
    "ruling",
    "economists",
    "budget",
    "policy",
    "announced",
    "confirmed",
    "sources",
    "interview",
    "review",
    "findings",
    "university",
    "council",
    "legislation",
    "department",
    "measured",
    "annual",
    "evidence",
    "testimony",
]
FLAVOUR = ("café", "naïve", "—", "“quoted”", "résumé", "Zürich", "€", "señor")

@dataclass(frozen=True)
class CorpusShape:
    """What a generated corpus looks like: its type mix, article lengths and repeats."""

    dropped_frac: float  # rows whose type the label map drops
    missing_type_frac: float  # rows with no type
    fake_frac: float  # of the rows with a mapped type
    fake_types: tuple[tuple[str, float], ...]  # (type, probability) on each side
    reliable_types: tuple[tuple[str, float], ...]
    dropped_types: tuple[str, ...]
    dropped_weights: tuple[float, ...] | None  # None: uniform
    median_sentences: float  # article length: lognormal, about 75 characters a sentence
    max_sentences: int
    repeat_frac: float  # rows repeating a recent row's content, as the real file does
    repeat_window: int
    description_words: int
    domains: int  # per side


# The embedded default corpus (data=sample): short articles, a mild class imbalance.
SAMPLE = CorpusShape(
    dropped_frac=0.08, missing_type_frac=0.03, fake_frac=0.56,
    fake_types=(("fake", 0.6), ("conspiracy", 0.25), ("junksci", 0.15)),
    reliable_types=(("reliable", 0.5), ("political", 0.5)),
    dropped_types=("satire", "bias", "clickbait", "unreliable", "hate", "rumor", "unknown",
                   "state"),
    dropped_weights=None, median_sentences=7.0, max_sentences=60, repeat_frac=0.0,
    repeat_window=0, description_words=0, domains=40,
)  # fmt: skip

# Shaped like FakeNewsCorpus (benchmarks/data_scale.py): the full corpus's published type
# counts (8.5 M rows), 5% without a type (as in its 250-row sample), articles of 2.9 KB
# median and 4.3 KB mean with a long tail, about 4.7 KB a CSV row, 4% repeated contents.
FAKENEWS = CorpusShape(
    dropped_frac=0.95 * 2_175_929 / 8_510_542, missing_type_frac=0.05,
    fake_frac=1_979_003 / 6_334_613,
    fake_types=(("fake", 928_083 / 1_979_003), ("conspiracy", 905_981 / 1_979_003),
                ("junksci", 144_939 / 1_979_003)),
    reliable_types=(("reliable", 1_920_139 / 4_355_610), ("political", 2_435_471 / 4_355_610)),
    dropped_types=("satire", "bias", "hate", "clickbait", "unreliable"),
    dropped_weights=tuple(n / 2_175_929 for n in (146_080, 1_300_444, 117_374, 292_201,
                                                  319_830)),
    median_sentences=38.0, max_sentences=1500, repeat_frac=0.04, repeat_window=200,
    description_words=25, domains=400,
)  # fmt: skip


_SYLLABLES = [
    "ba",
    "be",
    "bi",
    "bo",
    "bu",
    "ca",
    "ce",
    "co",
    "da",
    "de",
    "di",
    "do",
    "fa",
    "fe",
    "fi",
    "ga",
    "ge",
    "go",
    "ha",
    "he",
    "hi",
    "ka",
    "ke",
    "ko",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "pa",
    "pe",
    "pi",
    "po",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "ta",
    "te",
    "ti",
    "to",
    "tu",
    "va",
    "ve",
    "vi",
    "wa",
    "we",
    "za",
    "zo",
    "ar",
    "er",
    "in",
    "on",
    "st",
    "tr",
    "pl",
    "gr",
]


def _filler_vocabulary(rng: np.random.Generator, size: int) -> np.ndarray:
    words: set[str] = set()
    while len(words) < size:
        n = rng.integers(1, 4)
        words.add("".join(rng.choice(_SYLLABLES, size=n)))
    return np.array(sorted(words), dtype=object)  # Python strings: cheap to index and join


def _article(
    rng: np.random.Generator, label: int, filler: np.ndarray, zipf_cdf: np.ndarray,
    shape: CorpusShape,
) -> str:
    """One article: paragraphs of sentences; cue words lean towards `label` (1 = fake)."""
    own, other = (FAKE_CUES, RELIABLE_CUES) if label == 1 else (RELIABLE_CUES, FAKE_CUES)
    # Per-article style: how often cues appear and how strongly they lean.
    cue_rate = rng.beta(2.0, 10.0)
    lean = rng.uniform(0.6, 0.95)
    n_sentences = int(np.clip(rng.lognormal(np.log(shape.median_sentences), 0.9), 1,
                              shape.max_sentences))  # fmt: skip
    lengths = rng.integers(6, 19, size=n_sentences)
    words = filler[np.searchsorted(zipf_cdf, rng.random(lengths.sum()))]
    cue_at = np.flatnonzero(rng.random(len(words)) < cue_rate)
    from_own = rng.random(len(cue_at)) < lean
    if len(cue_at):  # one draw per cue, bounded by the size of its pool
        picks = rng.integers(np.where(from_own, len(own), len(other)))
        own_words, other_words = np.array(own, dtype=object), np.array(other, dtype=object)
        words[cue_at] = np.where(from_own, own_words[np.minimum(picks, len(own) - 1)],
                                 other_words[np.minimum(picks, len(other) - 1)])  # fmt: skip
    flavour_at = np.flatnonzero(rng.random(len(words)) < 0.004)
    if len(flavour_at):
        words[flavour_at] = np.array(FLAVOUR, dtype=object)[
            rng.integers(len(FLAVOUR), size=len(flavour_at))]  # fmt: skip
    words = words.tolist()
    ends = lengths.cumsum().tolist()
    sentences = [
        " ".join(words[start:end]).capitalize() + "."
        for start, end in zip([0, *ends[:-1]], ends, strict=True)
    ]
    for i in np.flatnonzero(rng.random(n_sentences) < 0.1):
        sentences[i] = f'"{sentences[i]}"'
    breaks = (np.flatnonzero(rng.random(n_sentences - 1) < 0.3) + 1).tolist()
    return "\n\n".join(
        " ".join(sentences[start:end])
        for start, end in zip([0, *breaks], [*breaks, n_sentences], strict=True)
    )


def _row(
    rng: np.random.Generator, i: int, filler: np.ndarray, zipf_cdf: np.ndarray,
    shape: CorpusShape, earlier: list[str],
) -> dict:
    """Row `i` of a corpus of `shape`; `earlier` holds contents it may repeat."""
    u = rng.random()
    if u < shape.dropped_frac:
        names = shape.dropped_types
        pick = (rng.integers(len(names)) if shape.dropped_weights is None
                else rng.choice(len(names), p=shape.dropped_weights))  # fmt: skip
        kind, label = names[pick], int(rng.random() < 0.5)
    elif u < shape.dropped_frac + shape.missing_type_frac:
        kind, label = "", int(rng.random() < 0.5)
    else:
        label = int(rng.random() < shape.fake_frac)
        names, probs = zip(*(shape.fake_types if label == 1 else shape.reliable_types),
                           strict=True)  # fmt: skip
        kind = names[rng.choice(len(names), p=probs)]
    # A few flipped labels cap the best achievable accuracy.
    written_label = 1 - label if rng.random() < 0.04 else label
    if shape.repeat_frac and earlier and rng.random() < shape.repeat_frac:
        content = earlier[rng.integers(len(earlier))]  # a repeated article (or error page)
    else:
        content = "" if rng.random() < 0.02 else _article(rng, written_label, filler, zipf_cdf,
                                                           shape)  # fmt: skip
    if shape.repeat_frac and content:
        earlier.append(content)
        del earlier[: -shape.repeat_window]
    domain = f"{'news' if label == 0 else 'truth'}{rng.integers(shape.domains)}.example"
    title = " ".join(filler[np.searchsorted(zipf_cdf, rng.random(5))]).title()
    description = (
        " ".join(filler[np.searchsorted(zipf_cdf, rng.random(shape.description_words))])
        if shape.description_words else ""
    )  # fmt: skip
    return {
        "id": 1000 + i, "domain": domain, "type": kind,
        "url": f"https://{domain}/{i}", "content": content,
        "scraped_at": "2018-01-25 16:17:44.789555", "inserted_at": "2018-02-02 01:19:41.756632",
        "updated_at": "2018-02-02 01:19:41.756664", "title": title, "authors": "",
        "keywords": "", "meta_keywords": "['']", "meta_description": description, "tags": "",
        "summary": "",
    }  # fmt: skip


def _vocabulary(seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """The seeded generator after drawing the filler words, the words and their Zipf CDF."""
    rng = np.random.default_rng(seed)
    filler = _filler_vocabulary(rng, 3000)
    ranks = np.arange(1, len(filler) + 1)
    zipf_cdf = np.cumsum(1.0 / ranks**1.05)
    zipf_cdf /= zipf_cdf[-1]
    return rng, filler, zipf_cdf


@functools.cache
def _block_vocabulary(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Filler words and CDF for `seed`, drawn once per worker process."""
    return _vocabulary(seed)[1:]


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["type"] = frame["type"].replace("", None)
    return frame


def generate_corpus(n_rows: int, seed: int = 0, shape: CorpusShape | None = None) -> pd.DataFrame:
    """A FakeNewsCorpus-schema frame of `n_rows` rows, the same for the same arguments."""
    shape = shape or SAMPLE
    rng, filler, zipf_cdf = _vocabulary(seed)
    earlier: list[str] = []
    return _frame([_row(rng, i, filler, zipf_cdf, shape, earlier) for i in range(n_rows)])


def _block(args: tuple[int, int, int, CorpusShape]) -> str:
    """Rows [start, start + n) of a written corpus as CSV text (no header): each block has
    its own generator, so blocks can be made in any order, in parallel."""
    seed, start, n, shape = args
    filler, zipf_cdf = _block_vocabulary(seed)
    rng = np.random.default_rng([seed, start])
    earlier: list[str] = []
    frame = _frame([_row(rng, start + i, filler, zipf_cdf, shape, earlier) for i in range(n)])
    frame.index = pd.RangeIndex(start, start + n)
    return frame.to_csv(header=False)


def write_corpus(
    path: str | Path, n_rows: int, shape: CorpusShape, seed: int = 0, workers: int = 1,
    block_rows: int = 5000,
) -> Path:
    """Write a corpus of any size to `path` block by block (memory stays flat), with
    `workers` processes generating blocks; atomically, so `path` is never half-written."""
    from concurrent.futures import ProcessPoolExecutor

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, start, min(block_rows, n_rows - start), shape)
            for start in range(0, n_rows, block_rows)]  # fmt: skip

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as out, ProcessPoolExecutor(workers) as pool:
            out.write("," + ",".join(COLUMNS) + "\n")
            pending: deque = deque()
            for job in jobs:  # in order, at most two blocks a worker ahead of the file
                pending.append(pool.submit(_block, job))
                if len(pending) > 2 * workers:
                    out.write(pending.popleft().result())
            while pending:
                out.write(pending.popleft().result())

    write_atomically(path, write)
    return path


def ensure_sample_corpus(data_dir: str | Path, n_rows: int, seed: int = 0) -> Path:
    """Path of the generated corpus, writing it once (atomically, under a lock)."""
    out_dir = Path(data_dir) / "sample"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"news_sample_{n_rows}_{seed}.csv"
    if path.exists():
        return path
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return path
        frame = generate_corpus(n_rows, seed, SAMPLE)
        # index=True gives the leading unnamed index column of the real file.
        write_atomically(path, lambda tmp: frame.to_csv(tmp, index=True))
    return path
