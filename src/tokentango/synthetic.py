"""The embedded default corpus: FakeNewsCorpus's CSV schema, generated deterministically.

A fresh clone has no FakeNewsCorpus, so `data=sample` writes a corpus in the same schema
(leading unnamed index column, multi-line quoted content, empty and unmapped types, empty
contents, a little non-ASCII). Its label signal comes in five parts, so that a model that
reads word order and context beats a bag of words, and a site's style can be learnt:

1. Language. Filler text is a sequence of phrases, 2 to 5 words each, from the article's
   topic's phrase bank (8 topics, drawn independently of the label). Each bank is built
   once per seed by a Markov chain over a 3,000-word vocabulary with the topic's own
   successor table, and phrases are drawn Zipf-like, so a masked word is predictable from
   its neighbours: there is a language for MLM to learn.
2. The lede (position). An article opens with a tone word: fake ones with a LEDE_FAKE
   word ("suddenly", "secretly" ..), reliable ones with a LEDE_RELIABLE word ("today",
   "formally" ..), 90% of the time, and echo one word of the other list later on. Each
   word's count is label-neutral; only where it stands carries the label.
3. Negated stance (order). Claims like "the <phrase> was [not|never] [0-3 words] confirmed"
   or "... was [never] a hoax". Stance words (confirmed, verified .. / a hoax, rigged ..)
   and negators are equally common in both classes; what differs is the pair: a fake
   article negates the positive stance or affirms the negative one, a reliable article the
   reverse (label = negated XOR negative stance, 90% of claims). The words between the
   negator and the stance word are shared by both forms, so a bigram sees the pair only
   where the gap is 0 (a tenth of the claims).
4. Topic-dependent cues (context). Source cues in fixed frames ("as insiders said",
   "according to experts here"): set A leans fake in even topics and reliable in odd ones,
   set B the reverse. Each cue and each topic word alone is label-neutral: an XOR that a
   linear bag of words cannot represent.
5. Plain cues and site style (bag of words). Dense cue words (about two a sentence) with a
   weak per-article class lean (50-65% from the article's own class's list); and each site
   (the `domain` column: neutral made-up names, `shape.domains` per side) has two
   signature words and a boilerplate line ("Subscribe to The Varokin Post ...", from
   templates shared by all sites) used at its own rates. A site's articles all have one
   label, so its style is learnable on a random split but tells nothing about a site
   never seen in training (a domain-disjoint split).

4% of the labels are flipped, so nothing is 100%. On 16,000 rows (seed 0), TF-IDF
(1,2)-grams + logistic regression scores 0.83 on the default run's random split and 0.74
on a domain-disjoint one (unigrams 0.80 and 0.67; `benchmarks/corpus_signal.py`), while
the default transformer without MLM reaches 0.91 (with MLM, 622 steps stay at chance:
the MLM loss holds the classifier on its plateau). tests/test_data.py pins the
properties above.

`write_corpus` writes a corpus of any size block by block (flat memory, several processes),
in a `CorpusShape`: `SAMPLE` is the embedded default, `FAKENEWS` is shaped like
FakeNewsCorpus's `995,000_rows.csv` for benchmarks/data_scale.py. A written file of n rows
is the first n rows of any larger one with the same seed. Generation is vectorized with
numpy per article (phrases, claims and cues are drawn as arrays, strings joined per
sentence).
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

# 2: a phrase language with a lede, negated stances, topic-dependent cues and site styles
# (1: independent Zipf words and cue words).
CORPUS_VERSION = 2

COLUMNS = [
    "id", "domain", "type", "url", "content", "scraped_at", "inserted_at", "updated_at",
    "title", "authors", "keywords", "meta_keywords", "meta_description", "tags", "summary",
]  # fmt: skip

# Plain cues: a weak, per-article lean towards the article's class.
FAKE_CUES = (
    "shocking", "exposed", "secret", "miracle", "truth", "globalist", "elites", "banned",
    "censored", "wake", "sheeple", "bombshell", "leaked", "agenda", "plandemic",
    "chemtrails", "traitor", "outrageous", "unbelievable", "destroy", "cure", "toxic",
    "hidden", "conspiracy", "patriots", "deep-state", "mainstream", "lies", "doom",
    "collapse", "warning", "urgent", "alarming", "scandal", "cabal", "puppet",
)  # fmt: skip
RELIABLE_CUES = (
    "reported", "percent", "study", "analysis", "data", "survey", "quarter", "statement",
    "spokesperson", "committee", "researchers", "estimated", "federal", "agency",
    "published", "court", "ruling", "economists", "budget", "policy", "announced",
    "interview", "review", "findings", "university", "council", "legislation",
    "department", "measured", "annual", "evidence", "testimony",
)  # fmt: skip
# Stance claims: equally common in both classes; the label is in negated XOR negative.
POSITIVE_STANCE = ("confirmed", "verified", "documented", "proven", "accurate",
                   "corroborated")  # fmt: skip
NEGATIVE_STANCE = ("a hoax", "a cover-up", "rigged", "staged", "fabricated", "a fraud")
NEGATORS = ("not", "never")
GAP_WORDS = ("ever", "independently", "fully", "officially", "actually", "really", "yet",
             "properly")  # fmt: skip
GAP_P = (0.1, 0.35, 0.3, 0.25)  # 0, 1, 2, 3 words between negator (or verb) and stance
CLAIM_FIDELITY = 0.9  # claims that follow the rule; the rest say the opposite
CLAIM_RATE = 0.3  # claims per sentence
CUES_PER_SENTENCE = 12  # times the article's cue rate, Beta(2, 10): 2 a sentence on average
CUE_LEAN = (0.5, 0.6)  # the share of an article's plain cues from its own class's list
BLATANT, BLATANT_LEAN = 0.3, (0.8, 0.95)  # except in blatant articles
LEDE_WORDS = 3
# Topic-dependent source cues: set A leans fake in even topics, reliable in odd ones.
CONTEXT_A = ("insiders", "witnesses", "residents", "veterans")
CONTEXT_B = ("experts", "observers", "scientists", "doctors")
CONTEXT_FRAMES = (("as ", " said"), ("according to ", " here"), ("many ", " believe that"),
                  ("several ", " told us"))  # fmt: skip
CONTEXT_LEAN = 0.85
CONTEXT_RATE = 0.3  # per sentence
TOPICS = 8
# The lede: an article's first words set its tone. A fake article opens with LEDE_FAKE
# words and echoes as many LEDE_RELIABLE words later on, a reliable one the reverse, so
# each word's count is label-neutral: only its position carries the label.
LEDE_FAKE = ("suddenly", "finally", "quietly", "openly", "secretly", "again")
LEDE_RELIABLE = ("today", "recently", "yesterday", "formally", "earlier", "lately")
LEDE_LEAN = 0.9
# Site style: a boilerplate line per site, from templates shared by both sides.
BOILERPLATE = (
    "Subscribe to {site} for more stories like this.",
    "Follow {site} on social media and share this article.",
    "Copyright {site}. All rights reserved.",
    "Reporting by the {site} desk; editing by the {site} team.",
    "Support independent journalism: donate to {site} today.",
    "Read more at {site}. Comments are closed.",
)
SITE_KINDS = ("Post", "Daily", "Wire", "Report", "Herald", "Times", "Journal", "Digest")
FLAVOUR_RATE = 0.3  # articles with a non-ASCII word
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
    median_sentences=29.0, max_sentences=1500, repeat_frac=0.04, repeat_window=200,
    description_words=25, domains=400,
)  # fmt: skip


_SYLLABLES = (
    "ba", "be", "bi", "bo", "bu", "ca", "ce", "co", "da", "de", "di", "do", "fa", "fe", "fi",
    "ga", "ge", "go", "ha", "he", "hi", "ka", "ke", "ko", "la", "le", "li", "lo", "lu", "ma",
    "me", "mi", "mo", "mu", "na", "ne", "ni", "no", "pa", "pe", "pi", "po", "ra", "re", "ri",
    "ro", "ru", "sa", "se", "si", "so", "ta", "te", "ti", "to", "tu", "va", "ve", "vi", "wa",
    "we", "za", "zo", "ar", "er", "in", "on", "st", "tr", "pl", "gr",
)  # fmt: skip
PHRASES_PER_TOPIC = 400
SUCCESSORS = 4  # per word and topic: the Markov chain's branching


def _filler_vocabulary(rng: np.random.Generator, size: int) -> np.ndarray:
    words: set[str] = set()
    while len(words) < size:
        n = rng.integers(1, 4)
        words.add("".join(rng.choice(_SYLLABLES, size=n)))
    return np.array(sorted(words), dtype=object)  # Python strings: cheap to index and join


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    cdf = np.cumsum(1.0 / np.arange(1, n + 1) ** exponent)
    return cdf / cdf[-1]


@dataclass(frozen=True)
class _Tables:
    """What every row of one seed draws from: words, phrase banks, their frequencies."""

    seed: int
    filler: np.ndarray  # words (for titles and descriptions), Zipf-ranked
    zipf_cdf: np.ndarray
    banks: np.ndarray  # (TOPICS, PHRASES_PER_TOPIC) phrases, most frequent first
    bank_cdf: np.ndarray  # over a bank's phrases


def _phrase_banks(rng: np.random.Generator, filler: np.ndarray, zipf_cdf: np.ndarray) -> np.ndarray:
    """Each topic's phrases: walks of 2 to 5 words on the topic's own Markov chain (each
    word has SUCCESSORS likely next words, drawn uniformly from the vocabulary)."""
    n = len(filler)
    successors = rng.integers(n, size=(TOPICS, n, SUCCESSORS))
    successor_cdf = _zipf_cdf(SUCCESSORS, 1.0)
    banks = np.empty((TOPICS, PHRASES_PER_TOPIC), dtype=object)
    for topic in range(TOPICS):
        # The topic's own start words: a topic-specific Zipf ranking of the vocabulary.
        starts = rng.permutation(n)[np.searchsorted(zipf_cdf, rng.random(PHRASES_PER_TOPIC))]
        lengths = rng.integers(2, 6, size=PHRASES_PER_TOPIC)
        walk = np.empty((PHRASES_PER_TOPIC, 5), dtype=np.int64)
        walk[:, 0] = starts
        for step in range(1, 5):
            choice = np.searchsorted(successor_cdf, rng.random(PHRASES_PER_TOPIC))
            walk[:, step] = successors[topic, walk[:, step - 1], choice]
        words = filler[walk]
        banks[topic] = [" ".join(row[:k]) for row, k in zip(words, lengths, strict=True)]
    return banks


@dataclass(frozen=True)
class _Sites:
    """Every site of one seed and shape: index d < domains is reliable-side, else fake."""

    names: tuple[str, ...]  # the domain column, e.g. "varokin.example"
    titles: tuple[str, ...]  # e.g. "The Varokin Post"
    signatures: np.ndarray  # (2 * domains, 2) words only that site writes
    boilerplate: tuple[str, ...]  # the site's sign-off line
    boilerplate_rate: np.ndarray  # share of its articles that end with it
    signature_rate: np.ndarray  # signature words per sentence


@functools.cache
def _sites(seed: int, domains: int) -> _Sites:
    """The sites of `seed`, drawn from their own generator (the rows' stream is untouched)."""
    rng = np.random.default_rng([seed, 7919, domains])
    n = 2 * domains
    syllables = np.array(_SYLLABLES, dtype=object)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < 3 * n:  # 4 syllables: never a filler word (those have 1 to 3)
        word = "".join(syllables[rng.integers(len(syllables), size=4)])
        if word not in seen:
            seen.add(word)
            words.append(word)
    names, signatures = words[:n], np.array(words[n:], dtype=object).reshape(n, 2)
    titles = tuple(f"The {name.capitalize()} {SITE_KINDS[k]}"
                   for name, k in zip(names, rng.integers(len(SITE_KINDS), size=n),
                                      strict=True))  # fmt: skip
    templates = rng.integers(len(BOILERPLATE), size=n)
    return _Sites(
        names=tuple(f"{name}.example" for name in names), titles=titles,
        signatures=signatures,
        boilerplate=tuple(BOILERPLATE[t].format(site=title)
                          for t, title in zip(templates, titles, strict=True)),
        boilerplate_rate=rng.uniform(0.1, 0.6, size=n),
        signature_rate=rng.uniform(0.0, 0.1, size=n),
    )  # fmt: skip


_OBJ = functools.partial(np.array, dtype=object)
_FAKE_CUES, _RELIABLE_CUES = _OBJ(FAKE_CUES), _OBJ(RELIABLE_CUES)
_POSITIVE, _NEGATIVE = _OBJ(POSITIVE_STANCE), _OBJ(NEGATIVE_STANCE)
_NEGATORS, _GAPS = _OBJ([f"{w} " for w in NEGATORS]), _OBJ([f"{w} " for w in GAP_WORDS])
_CONTEXT = (_OBJ(CONTEXT_A), _OBJ(CONTEXT_B))
_LEDE = (_OBJ(LEDE_RELIABLE), _OBJ(LEDE_FAKE))
_PREFIXES, _SUFFIXES = _OBJ([p for p, _ in CONTEXT_FRAMES]), _OBJ([s for _, s in CONTEXT_FRAMES])
_GAP_CDF = np.cumsum(GAP_P)[:-1]
_ENDS, _BREAKS, _QUOTE = _OBJ([".", '."']), _OBJ([" ", "\n\n"]), _OBJ(['"'])
_EMPTY = _OBJ([""])


def _pick(pool: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Uniform picks from `pool`, one for each uniform draw in `u`."""
    return pool[(u * len(pool)).astype(np.intp)]


def _claims(label: int, bank: np.ndarray, cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Stance claims of an article of class `label` (1 = fake), from `u`: (9, n) uniforms."""
    positive = u[0] < 0.5
    fake = (u[1] < CLAIM_FIDELITY) == (label == 1)
    negated = positive == fake  # fake: negates the positive, affirms the negative
    stance = np.where(positive, _pick(_POSITIVE, u[2]), _pick(_NEGATIVE, u[3]))
    gaps = np.searchsorted(_GAP_CDF, u[4])
    text = "the " + bank[np.searchsorted(cdf, u[5])] + " was "
    text = text + np.where(negated, _pick(_NEGATORS, u[6]), _EMPTY)
    for k in range(3):
        text = text + np.where(gaps > k, _pick(_GAPS, u[6 + k] * 8 % 1), _EMPTY)
    return text + stance


def _article(
    rng: np.random.Generator, label: int, tables: _Tables, sites: _Sites, site: int,
    shape: CorpusShape,
) -> str:
    """One article of class `label` (1 = fake) by `site`: paragraphs of sentences."""
    topic = int(rng.integers(TOPICS))
    bank = tables.banks[topic]
    n_sentences = int(np.clip(rng.lognormal(np.log(shape.median_sentences), 0.9), 1,
                              shape.max_sentences))  # fmt: skip
    # The article's style: how many plain cues, and how blatantly they lean.
    cue_rate, blatant, lean = rng.beta(2.0, 10.0), rng.random() < BLATANT, rng.random()
    lean = BLATANT_LEAN[0] + lean * (BLATANT_LEAN[1] - BLATANT_LEAN[0]) if blatant else \
        CUE_LEAN[0] + lean * (CUE_LEAN[1] - CUE_LEAN[0])  # fmt: skip
    # Inserted units: claims, context cues, plain cues, the site's signature words.
    n_claims, n_context, n_cues, n_signatures = rng.poisson(
        [CLAIM_RATE * n_sentences, CONTEXT_RATE * n_sentences,
         cue_rate * CUES_PER_SENTENCE * n_sentences,
         sites.signature_rate[site] * n_sentences]).tolist()  # fmt: skip
    n_lede = LEDE_WORDS
    n_extra = n_claims + n_context + n_cues + n_signatures + 2 * n_lede
    # Every other draw comes from one block of uniforms, consumed in a fixed order.
    u = rng.random(3 * n_sentences + 9 * n_claims + 3 * n_context + 2 * n_cues
                   + n_signatures + 4 * n_lede + n_extra - 2 * n_lede + 1)  # fmt: skip
    per_sentence = 2 + (u[:n_sentences] * 2).astype(np.intp)  # 2 or 3 phrases
    quoted = u[n_sentences : 2 * n_sentences] < 0.1
    broken = u[2 * n_sentences : 3 * n_sentences] < 0.3
    at = 3 * n_sentences
    n_phrases = int(per_sentence.sum())
    phrase_u = rng.random(n_phrases + 1)
    units = bank[np.searchsorted(tables.bank_cdf, phrase_u[:n_phrases])]
    sentence = np.repeat(np.arange(n_sentences), per_sentence)
    first = np.repeat(per_sentence.cumsum() - per_sentence, per_sentence)
    spread = np.repeat(per_sentence + 1, per_sentence)  # inserted units fall between phrases
    parts, where = [units], [sentence + (np.arange(n_phrases) - first + 1) / spread]
    if n_claims:
        parts.append(_claims(label, bank, tables.bank_cdf,
                             u[at : at + 9 * n_claims].reshape(9, n_claims)))  # fmt: skip
        at += 9 * n_claims
    if n_context:
        cu = u[at : at + 3 * n_context].reshape(3, n_context)
        at += 3 * n_context
        pool_a = (cu[0] < CONTEXT_LEAN) == ((topic % 2 == 0) == (label == 1))
        words = np.where(pool_a, _pick(_CONTEXT[0], cu[1]), _pick(_CONTEXT[1], cu[1]))
        frame = (cu[2] * len(CONTEXT_FRAMES)).astype(np.intp)
        parts.append(_PREFIXES[frame] + words + _SUFFIXES[frame])
    if n_cues:
        pu = u[at : at + 2 * n_cues].reshape(2, n_cues)
        at += 2 * n_cues
        fake = (pu[0] < lean) == (label == 1)
        parts.append(np.where(fake, _pick(_FAKE_CUES, pu[1]), _pick(_RELIABLE_CUES, pu[1])))
    if n_signatures:
        parts.append(_pick(sites.signatures[site], u[at : at + n_signatures]))
        at += n_signatures
    if n_extra - 2 * n_lede:  # each at a random place in a random sentence
        where.append(u[at : at + n_extra - 2 * n_lede] * n_sentences)
        at += n_extra - 2 * n_lede
    # The lede's words open the first sentence; their echoes fall anywhere after it.
    lu = u[at : at + 4 * n_lede].reshape(4, n_lede)
    at += 4 * n_lede
    tone = (lu[0, 0] < LEDE_LEAN) == (label == 1)  # True: the fake side's words lead
    parts.append(np.where(tone, _pick(_LEDE[1], lu[1]), _pick(_LEDE[0], lu[1])))
    parts.append(np.where(tone, _pick(_LEDE[0], lu[2]), _pick(_LEDE[1], lu[2])))
    # The first opens the article, the others follow its first phrases: never side by side.
    where.append(np.arange(n_lede) / (per_sentence[0] + 1) - (np.arange(n_lede) == 0) / 2)
    where.append(1 + lu[3] * (n_sentences - 1) if n_sentences > 1 else 0.99 + lu[3] / 200)
    if n_extra:
        units = np.concatenate(parts)
        order = np.argsort(np.concatenate(where), kind="stable")
        units, sentence = units[order], np.concatenate(where)[order].astype(np.intp)
    # Separators after each unit: a space, or the end of a sentence (and of a paragraph).
    last = np.flatnonzero(np.diff(sentence, append=n_sentences))  # each sentence's last unit
    first = np.concatenate([[0], last[:-1] + 1])
    ends = np.where(quoted, _ENDS[1], _ENDS[0]) + np.where(broken, _BREAKS[1], _BREAKS[0])
    ends[-1] = ends[-1].rstrip()
    seps = np.full(len(units), " ", dtype=object)
    seps[last] = ends
    starts = units[first]
    units[first] = np.where(quoted, _QUOTE, _EMPTY) + _OBJ([s[:1].upper() + s[1:]
                                                            for s in starts.tolist()])
    if phrase_u[-1] < FLAVOUR_RATE:  # a little non-ASCII, at the end of the article
        units[-1] = units[-1] + " " + FLAVOUR[int(phrase_u[-1] / FLAVOUR_RATE * len(FLAVOUR))]
    text = "".join((units + seps).tolist())
    if u[-1] < sites.boilerplate_rate[site]:
        text += "\n\n" + sites.boilerplate[site]
    return text


def _row(
    rng: np.random.Generator, i: int, tables: _Tables, shape: CorpusShape, earlier: list[str],
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
    sites = _sites(tables.seed, shape.domains)
    site = int(label * shape.domains + rng.integers(shape.domains))  # its label's side
    # A few flipped labels cap the best achievable accuracy.
    written_label = 1 - label if rng.random() < 0.04 else label
    if shape.repeat_frac and earlier and rng.random() < shape.repeat_frac:
        content = earlier[rng.integers(len(earlier))]  # a repeated article (or error page)
    else:
        content = "" if rng.random() < 0.02 else _article(rng, written_label, tables, sites,
                                                           site, shape)  # fmt: skip
    if shape.repeat_frac and content:
        earlier.append(content)
        del earlier[: -shape.repeat_window]
    domain = sites.names[site]
    title = " ".join(tables.filler[np.searchsorted(tables.zipf_cdf, rng.random(5))]).title()
    description = (
        " ".join(tables.filler[np.searchsorted(tables.zipf_cdf,
                                               rng.random(shape.description_words))])
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


def _vocabulary(seed: int) -> tuple[np.random.Generator, _Tables]:
    """The seeded generator after drawing the words and phrase banks, and the tables."""
    rng = np.random.default_rng(seed)
    filler = _filler_vocabulary(rng, 3000)
    zipf_cdf = _zipf_cdf(len(filler), 1.05)
    banks = _phrase_banks(rng, filler, zipf_cdf)
    return rng, _Tables(seed, filler, zipf_cdf, banks, _zipf_cdf(PHRASES_PER_TOPIC, 0.9))


@functools.cache
def _block_vocabulary(seed: int) -> _Tables:
    """The tables of `seed`, drawn once per worker process."""
    return _vocabulary(seed)[1]


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["type"] = frame["type"].replace("", None)
    return frame


def generate_corpus(n_rows: int, seed: int = 0, shape: CorpusShape | None = None) -> pd.DataFrame:
    """A FakeNewsCorpus-schema frame of `n_rows` rows, the same for the same arguments."""
    shape = shape or SAMPLE
    rng, tables = _vocabulary(seed)
    earlier: list[str] = []
    return _frame([_row(rng, i, tables, shape, earlier) for i in range(n_rows)])


def _block(args: tuple[int, int, int, CorpusShape]) -> str:
    """Rows [start, start + n) of a written corpus as CSV text (no header): each block has
    its own generator, so blocks can be made in any order, in parallel."""
    seed, start, n, shape = args
    tables = _block_vocabulary(seed)
    rng = np.random.default_rng([seed, start])
    earlier: list[str] = []
    frame = _frame([_row(rng, start + i, tables, shape, earlier) for i in range(n)])
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


def sample_corpus_name(n_rows: int, seed: int = 0, version: int = CORPUS_VERSION) -> str:
    """The generated corpus's file name. The generator's version is in it (version 1 wrote
    none): a file written by an earlier generator (kept in a user's data folder) is never
    taken for today's corpus."""
    return f"news_sample_{n_rows}_{seed}.csv" if version == 1 else \
        f"news_sample_v{version}_{n_rows}_{seed}.csv"  # fmt: skip


def ensure_sample_corpus(data_dir: str | Path, n_rows: int, seed: int = 0) -> Path:
    """Path of the generated corpus, writing it once (atomically, under a lock)."""
    out_dir = Path(data_dir) / "sample"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / sample_corpus_name(n_rows, seed)
    if path.exists():
        return path
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return path
        frame = generate_corpus(n_rows, seed, SAMPLE)
        # index=True gives the leading unnamed index column of the real file.
        write_atomically(path, lambda tmp: frame.to_csv(tmp, index=True))
    return path
