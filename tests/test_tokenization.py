"""Tokenization: the fast, cut-first encoding gives the tokenizer's own ids, bit for bit."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tokenizers import normalizers

from tests.conftest import SHARED_SAMPLE
from tokentango import tokenization
from tokentango.synthetic import ensure_sample_corpus
from tokentango.tokenization import (
    _CANDIDATES,
    Encoder,
    chars_to_fill,
    cut_at_whitespace,
    train_tokenizer,
)  # fmt: skip

# Texts where a careless cut or a careless word split would change tokens: long words,
# combining marks and compatibility characters (ligatures, full-width, NBSP, en spaces)
# next to a cut, special tokens written out, emoji, tabs, CRLF, no whitespace at all.
TRICKY = [
    "word " * 400,
    "x" * 5000,
    ("ﬁne ﬂow " * 30) + "e\u0301 " * 200,
    " \u0301a" * 300,
    "a\u00a0b\tc\r\nd\u2002e " * 300,
    "ＡＢＣ １２３ " * 200,
    "Ünïcödé CAFÉ — “quoted” naïve Zürich €5 señor ŒUVRE ǅ ß " * 40,
    "the [MASK] token and [cls] and [SEP]" * 30,
    "emoji 😀 and 日本語 text " * 50,
    "it’s a ‘test’… isn't it?! (yes) -- 3.5% of $10,000_000 " * 30,
    "short text",
    "",
]


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    corpus = ensure_sample_corpus(tmp_path_factory.mktemp("corpus"), n_rows=600, seed=1)
    texts = pd.read_csv(corpus)["content"].dropna().tolist()[:300] + TRICKY
    if SHARED_SAMPLE.is_file():
        texts += pd.read_csv(SHARED_SAMPLE)["content"].dropna().tolist()
    return texts


@pytest.fixture(scope="module")
def tokenizer(texts: list[str]):
    return train_tokenizer(texts, 600, 64)


def reference(tokenizer, texts: list[str]) -> tuple[list, list]:
    encodings = tokenizer.encode_batch(texts)  # the tokenizer itself, on whole texts
    return [e.ids for e in encodings], [sum(e.attention_mask) for e in encodings]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("cut_chars", [None, 64, 8])  # 8 and 64: most cuts fall short
def test_encoding_gives_the_tokenizers_own_ids(texts, tokenizer, fast, cut_chars) -> None:
    encoder = Encoder(tokenizer)
    assert encoder.fast
    encoder.fast = fast
    ids, lengths, counts = encoder.encode(texts, cut_chars)
    expected_ids, expected_lengths = reference(tokenizer, texts)
    assert ids.tolist() == expected_ids and lengths.tolist() == expected_lengths
    assert counts["fast"] > (0.8 * len(texts) if fast else -1)


def test_only_checked_characters_take_the_fast_path(tokenizer) -> None:
    encoder = Encoder(tokenizer)
    slow = [encoder._fast_ids(text, 512) is None for text in TRICKY]
    # Slow: combining marks, full-width forms, special tokens written out, emoji.
    assert slow == [False, False, True, True, False, True, False, True, True, False, False,
                    False]  # fmt: skip


def test_random_texts_over_checked_and_unchecked_characters(tokenizer) -> None:
    rng = np.random.default_rng(0)
    alphabet = list(_CANDIDATES) + ["\u0301", "ﬁ", "😀", "日", "\u00a0", "[MASK]"]
    weights = np.array([8.0 if c.isascii() and c.isalnum() else 1.0 for c in alphabet])
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 400), p=weights / weights.sum()))
             for _ in range(400)]  # fmt: skip
    ids, lengths, counts = Encoder(tokenizer).encode(texts, 100)
    assert (ids.tolist(), lengths.tolist()) == reference(tokenizer, texts)
    assert 0 < counts["fast"] < len(texts)


def test_checked_characters_never_combine_with_a_neighbour(tokenizer) -> None:
    encoder = Encoder(tokenizer)
    safe = [c for c in _CANDIDATES if not encoder.unsafe.search(c)]
    assert len(safe) > 500
    normalize = tokenizer.normalizer.normalize_str
    alone = {c: normalize(c) for c in safe}
    for a, b in itertools.product(safe, repeat=2):
        assert normalize(a + b) == alone[a] + alone[b], (a, b)


def test_another_tokenizer_pipeline_is_encoded_by_the_tokenizer_alone(texts) -> None:
    tokenizer = train_tokenizer(texts, 600, 64)
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
    encoder = Encoder(tokenizer)
    assert not encoder.fast
    ids, lengths, counts = encoder.encode(texts[:50])
    assert (ids.tolist(), lengths.tolist()) == reference(tokenizer, texts[:50])
    assert counts["fast"] == 0


def test_a_tokenizer_with_tokens_of_its_own_is_encoded_by_the_tokenizer_alone(texts) -> None:
    tokenizer = train_tokenizer(texts, 600, 64)
    tokenizer.add_tokens(["hello"])
    tokenizer.add_special_tokens(["<url>"])
    encoder = Encoder(tokenizer)
    assert not encoder.fast
    sample = ["say hello world", "see <url> now", "HELLO there " * 40]
    ids, lengths, _ = encoder.encode(sample)
    assert (ids.tolist(), lengths.tolist()) == reference(tokenizer, sample)


def test_cuts_fall_at_ascii_whitespace_and_fit_the_text(texts, tokenizer) -> None:
    assert cut_at_whitespace("abc def ghi", 5) == "abc def"
    assert cut_at_whitespace("abcdefghi", 5) == "abcdefghi"  # nowhere safe to cut
    assert cut_at_whitespace("abc\u00a0def ghi", 2) == "abc\u00a0def"  # NBSP is no cut
    chars = chars_to_fill(tokenizer, texts)
    assert 64 <= chars <= 64 * tokenization.ENCODE_CHARS_PER_TOKEN
    assert chars_to_fill(tokenizer, ["too short"]) is None


def test_cache_build_counts_fast_rows(tmp_path: Path) -> None:
    from tokentango.data import DataSettings, load_dataset

    corpus = ensure_sample_corpus(tmp_path, n_rows=600, seed=1)
    data = load_dataset(DataSettings(str(corpus), 1.0, 7, 0.1, 0.1, 500, 64, None, 100),
                        tmp_path)  # fmt: skip
    rows = sum(len(s) for s in data.splits.values())
    assert data.stats["rows_encoded_fast"] == rows  # the generated corpus: all checked
