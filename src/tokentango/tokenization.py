"""Tokenization: the BPE tokenizer, and texts into fixed-width rows of token ids, fast.

Hugging Face tokenizers encodes about 3 MB of text a second per core on this 2-core
machine, which would make encoding most of a FakeNewsCorpus build. Two shortcuts, each
giving the tokenizer's own ids bit for bit (tests/test_tokenization.py checks them):

- only the start of a text can reach max_length tokens, so a text is first encoded cut
  (`cut_at_whitespace`), and whole only when the cut part falls short;
- `Encoder` encodes texts made of characters whose treatment it has checked one by one
  with the tokenizer itself (how it normalizes them, which are word characters, which
  are spaces) word by word, with a cache of each word's BPE tokens; any other text goes
  through the tokenizer.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import unicodedata
from collections.abc import Iterable

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
# Characters per token of max_length where `encode` cuts a text when it knows no better
# (English BPE tokens average 4-5 characters).
ENCODE_CHARS_PER_TOKEN = 8


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Tokenizer:
    """BPE on the given texts (any iterable: they are read as the trainer goes); encodes
    as [CLS] + tokens, truncated and padded."""
    tokenizer = _untrained()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )  # fmt: skip
    tokenizer.train_from_iterator(texts, trainer=trainer)
    configure_encoding(tokenizer, max_length)
    return tokenizer


def _untrained() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def configure_encoding(tokenizer: Tokenizer, max_length: int) -> None:
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", CLS_ID)]
    )
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token="[PAD]", length=max_length)


_ASCII_SPACE = re.compile(r"[ \t\n\r]")


def cut_at_whitespace(text: str, min_chars: int) -> str:
    """`text` cut before the first ASCII whitespace at or after `min_chars` characters.

    Why a cut cannot change the first tokens: NFKC and lowercasing never join a character
    to an ASCII whitespace next to it, and the pre-tokenizer never puts whitespace inside
    a word, so the cut part and the rest are tokenized independently and the cut part's
    tokens are a prefix of the whole text's. If the cut part alone fills max_length, the
    kept tokens are exactly those of the whole text (`encode` checks that, row by row).
    """
    if len(text) <= min_chars:
        return text
    space = _ASCII_SPACE.search(text, min_chars)
    return text if space is None else text[: space.start()]


def chars_to_fill(tokenizer: Tokenizer, texts: list[str]) -> int | None:
    """Characters that hold max_length tokens in nearly every text that has that many (the
    99th percentile, plus a margin): where `encode` first cuts. None when none has."""
    max_length = tokenizer.padding["length"]
    ends = [e.offsets[-1][1] for e in tokenizer.encode_batch(texts)
            if e.attention_mask[-1] == 1]  # fmt: skip
    if not ends:
        return None
    return min(int(np.quantile(ends, 0.99) * 1.1), max_length * ENCODE_CHARS_PER_TOKEN)


# Characters `Encoder` checks: ASCII, Latin-1, Latin Extended-A and -B, General
# Punctuation and currency signs, which is nearly all of English news. None of them is a
# combining mark or composes with a neighbour under NFKC (a test checks every pair).
_CANDIDATES = "".join(chr(c) for span in ((0x09, 0x0E), (0x20, 0x7F), (0xA0, 0x250),
                                          (0x2000, 0x2070), (0x20A0, 0x20C1))
                      for c in range(*span))  # fmt: skip


def _char_class(pre_tokenizer, char: str) -> str | None:
    """How the pre-tokenizer treats `char`: "word", "space" or "other" (punctuation and
    symbols); None if it is none of these plainly."""

    def pieces(text: str) -> list[str]:
        return [piece for piece, _ in pre_tokenizer.pre_tokenize_str(text)]

    between_words, between_marks = pieces(f"a{char}a"), pieces(f"!{char}!")
    if between_words == [f"a{char}a"] and between_marks == ["!", char, "!"]:
        return "word"
    if between_words == ["a", "a"] and between_marks == ["!", "!"]:
        return "space"
    if between_words == ["a", char, "a"] and between_marks == [f"!{char}!"]:
        return "other"
    return None


def _char_set(chars: Iterable[str]) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


class Encoder:
    """Encodes texts to (ids, lengths) exactly as `tokenizer` does, fast (see the module).

    It probes each candidate character with the tokenizer's own normalizer and
    pre-tokenizer: a text all of whose characters normalize to characters that are plainly
    word, space or other is normalized with `str.lower` (and a table for the characters
    NFKC changes), split at whitespace, each piece split into words by an equivalent
    regular expression, and each word's tokens come from the BPE model once (bounded
    caches). A tokenizer built otherwise than by `train_tokenizer` does all the encoding
    itself.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.max_length = tokenizer.padding["length"]
        self.dtype = np.uint16 if tokenizer.get_vocab_size() <= 2**16 - 1 else np.int32
        self.fast = _built_here(tokenizer)
        if not self.fast:
            return
        classes: dict[str, list[str]] = {"word": [], "space": [], "other": []}
        safe, remap = [], {}
        for char in _CANDIDATES:
            normal = tokenizer.normalizer.normalize_str(char)  # "…" -> "...", "Ǆ" -> "dž"
            kinds = [_char_class(tokenizer.pre_tokenizer, c) for c in normal]
            if (not normal or None in kinds or normal.lower() != normal
                    or any(unicodedata.combining(c) for c in char + normal)):  # fmt: skip
                continue
            safe.append(char)
            for c, kind in zip(normal, kinds, strict=True):
                classes[kind].append(c)
            if char.lower() != normal:
                remap[ord(char)] = normal
        # Splitting at str.split()'s whitespace must be splitting at the tokenizer's.
        if not (all(c.isspace() for c in classes["space"])
                and not any(c.isspace() for c in classes["word"] + classes["other"])):  # fmt: skip
            self.fast = False
            return
        self.unsafe = re.compile(f"[^{_char_set(safe)}]")
        self.ascii_unsafe = re.compile(f"[^{_char_set(c for c in safe if c.isascii())}]")
        # Special tokens written out in a text are split off before anything else.
        specials = [t["content"] for t in json.loads(tokenizer.to_str())["added_tokens"]]
        self.special = re.compile("|".join(map(re.escape, specials)), re.IGNORECASE)
        self.remap = remap
        self.unusual = re.compile(f"[^{_char_set(c for c in safe if ord(c) not in remap)}]")
        word, other = _char_set(classes["word"]), _char_set(classes["other"])
        words = re.compile(f"[{word}]+|[{other}]+")
        model = tokenizer.model

        # Bounded caches (65,536 entries each, a few MB on news), so memory stays flat
        # whatever the corpus's vocabulary.
        @functools.lru_cache(maxsize=1 << 16)
        def word_ids(word: str) -> tuple[int, ...]:
            return tuple(token.id for token in model.tokenize(word))

        @functools.lru_cache(maxsize=1 << 16)
        def chunk_ids(chunk: str) -> tuple[int, ...]:  # between two whitespaces
            return tuple(itertools.chain.from_iterable(map(word_ids, words.findall(chunk))))

        self.chunk_ids = chunk_ids

    def encode(
        self, texts: list[str], cut_chars: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """(ids, lengths, counts): ids (n, max_length) as [CLS] + tokens + [PAD]s, lengths
        counting [CLS]. Each text is first encoded cut after `cut_chars` characters
        (default: max_length * ENCODE_CHARS_PER_TOKEN), and whole only when the cut part
        falls short."""
        if cut_chars is None:
            cut_chars = self.max_length * ENCODE_CHARS_PER_TOKEN
        if not self.fast:  # the cut is safe for the pipeline `train_tokenizer` builds only
            cut_chars = max(map(len, texts), default=0)
        ids = np.full((len(texts), self.max_length), PAD_ID, dtype=self.dtype)
        lengths = np.zeros(len(texts), np.int32)
        slow = []
        for i, text in enumerate(texts):
            row = self._fast_ids(text, cut_chars) if self.fast else None
            if row is None:
                slow.append(i)
            else:
                ids[i, 0] = CLS_ID
                ids[i, 1 : len(row) + 1] = row
                lengths[i] = len(row) + 1
        again = self._slow(texts, slow, cut_chars, ids, lengths)
        return ids, lengths, {"fast": len(texts) - len(slow), "encoded_again": again}

    def _fast_ids(self, text: str, cut_chars: int) -> list[int] | None:
        """The text's first max_length - 1 token ids, or None if a character is unchecked."""
        need = self.max_length - 1
        cut = cut_at_whitespace(text, cut_chars)
        for part in (cut, text) if cut is not text else (text,):
            if "[" in part and self.special.search(part):
                return None
            if part.isascii():  # ASCII normalizes as str.lower() does
                if self.ascii_unsafe.search(part):
                    return None
            elif self.unusual.search(part):  # one scan when nothing needs a second look
                if self.unsafe.search(part):
                    return None
                part = part.translate(self.remap)
            chunks = part.lower().split()
            row = list(itertools.chain.from_iterable(map(self.chunk_ids, chunks)))
            if len(row) >= need:
                break  # else the cut part fell short: the whole text
        return row[:need]

    def _slow(self, texts: list[str], which: list[int], cut_chars: int, ids: np.ndarray,
              lengths: np.ndarray) -> int:  # fmt: skip
        """Rows `which` through the tokenizer itself (cut first, as above); returns how
        many were encoded twice."""
        if not which:
            return 0
        cut = [cut_at_whitespace(texts[i], cut_chars) for i in which]
        encodings = self.tokenizer.encode_batch_fast(cut)
        short = [k for k, e in enumerate(encodings)
                 if e.attention_mask[-1] == 0 and cut[k] is not texts[which[k]]]  # fmt: skip
        whole = self.tokenizer.encode_batch_fast([texts[which[k]] for k in short])
        for k, encoding in zip(short, whole, strict=True):
            encodings[k] = encoding
        ids[which] = np.array([e.ids for e in encodings], dtype=self.dtype)
        lengths[which] = [sum(e.attention_mask) for e in encodings]
        return len(short)


def encode(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths) of `texts` exactly as `tokenizer` encodes them (see `Encoder`)."""
    ids, lengths, _ = Encoder(tokenizer).encode(texts)
    return ids, lengths


def _built_here(tokenizer: Tokenizer) -> bool:
    """Whether `tokenizer` works as `train_tokenizer` makes it (the fast path's premise):
    same normalizer, pre-tokenizer, special tokens and nothing else added, BPE without
    dropout, [CLS] template, right-side truncation and padding."""
    mine = json.loads(tokenizer.to_str())
    reference = _untrained()
    configure_encoding(reference, tokenizer.padding["length"])
    expected = json.loads(reference.to_str())
    model = mine.get("model") or {}
    added = [(t["content"], t["special"]) for t in mine.get("added_tokens", [])]
    return (
        added == [(token, True) for token in SPECIAL_TOKENS]  # all begin with "["
        and all(mine.get(key) == expected[key] for key in
            ("normalizer", "pre_tokenizer", "post_processor", "truncation", "padding"))
        and model.get("type") == "BPE" and model.get("dropout") is None
        and not model.get("fuse_unk") and not model.get("byte_fallback")
        and model.get("continuing_subword_prefix") is None
        and model.get("end_of_word_suffix") is None
    )  # fmt: skip
