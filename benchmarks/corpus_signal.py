"""How much of the embedded corpus's label signal a bag of words sees, and how fast it is made.

    uv run python benchmarks/corpus_signal.py [--rows 16000] [--seed 0] [--speed-rows 20000]

On the embedded corpus (`data=sample`: `SAMPLE`, 16,000 rows, seed 0), after the data
stage's own label map, de-duplication and balancing, trains TF-IDF + logistic regression
on unigrams and on (1,2)-grams and prints its test accuracy on two splits:

- random: the split a default run trains and tests on (`data.seed` 1234, 80/10/10; the
  validation rows are unused here);
- domain: a domain-disjoint split (sklearn's GroupShuffleSplit on the `domain` column, 20%
  of the domains held out), where no test site was seen in training.

Then the generation speed of `generate_corpus` (rows/s, MB/s of CSV text) for the
`SAMPLE` and `FAKENEWS` shapes. A bag-of-words model should land well below the
transformer on the random split (part of the signal lives in word order and context),
and lower still on the domain split (part of it is each site's style).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from tokentango.data import TYPE_TO_LABEL, balance, split_frame
from tokentango.synthetic import FAKENEWS, SAMPLE, CorpusShape, generate_corpus

DATA_SEED = 1234  # conf/data/sample.yaml: the default run's split


def labelled(frame: pd.DataFrame, seed: int = DATA_SEED) -> pd.DataFrame:
    """The rows a run trains on: mapped types, non-empty unique contents, balanced."""
    frame = frame.assign(label=frame["type"].map(TYPE_TO_LABEL))
    frame = frame[frame["label"].notna() & frame["content"].str.strip().ne("")]
    frame = frame.drop_duplicates("content").astype({"label": int}).reset_index(drop=True)
    return balance(frame, seed)


def splits(frame: pd.DataFrame, seed: int = DATA_SEED) -> dict[str, tuple]:
    """(train, test) frames of the random split and of a domain-disjoint one."""
    from sklearn.model_selection import GroupShuffleSplit

    parts = split_frame(frame, 0.1, 0.1, seed)
    grouped = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=0)
    train_at, test_at = next(grouped.split(frame, groups=frame["domain"]))
    return {"random": (parts["train"], parts["test"]),
            "domain": (frame.iloc[train_at], frame.iloc[test_at])}  # fmt: skip


def tfidf_accuracy(train: pd.DataFrame, test: pd.DataFrame, ngrams: tuple[int, int]) -> float:
    """Test accuracy of TF-IDF (`ngrams`) + logistic regression trained on `train`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=ngrams, min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform(train["content"])
    clf = LogisticRegression(max_iter=3000, C=4.0).fit(x_train, train["label"])
    return float(clf.score(vectorizer.transform(test["content"]), test["label"]))


def speed(shape: CorpusShape, rows: int, seed: int = 0) -> dict[str, float]:
    """Rows/s and MB/s (of CSV text) of `generate_corpus` for `rows` rows of `shape`."""
    started = time.perf_counter()
    frame = generate_corpus(rows, seed, shape)
    seconds = time.perf_counter() - started
    megabytes = len(frame.to_csv().encode()) / 1e6
    return {"rows_per_s": rows / seconds, "mb_per_s": megabytes / seconds, "seconds": seconds}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-rows", type=int, default=20000)
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)

    frame = labelled(generate_corpus(args.rows, args.seed, SAMPLE))
    print(f"{len(frame)} balanced rows, {frame['domain'].nunique()} domains")
    figures: dict[str, float] = {}
    for split, (train, test) in splits(frame).items():
        for name, ngrams in (("unigram", (1, 1)), ("bigram", (1, 2))):
            accuracy = tfidf_accuracy(train, test, ngrams)
            figures[f"{split}_{name}"] = accuracy
            print(f"TF-IDF {ngrams} + LR, {split} split ({len(train)} train, {len(test)} test):"
                  f" {accuracy:.4f}", flush=True)  # fmt: skip
    if not args.no_speed:
        for shape_name, shape in (("SAMPLE", SAMPLE), ("FAKENEWS", FAKENEWS)):
            result = speed(shape, args.speed_rows, args.seed)
            figures[f"{shape_name}_rows_per_s"] = result["rows_per_s"]
            print(f"generate_corpus {shape_name}: {args.speed_rows} rows in "
                  f"{result['seconds']:.1f} s, {result['rows_per_s']:,.0f} rows/s, "
                  f"{result['mb_per_s']:.1f} MB/s", flush=True)  # fmt: skip
    return figures


if __name__ == "__main__":
    main()
