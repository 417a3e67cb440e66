"""`python -m tokentango.prepare [overrides]`: build the data cache a run would use, and
nothing else (no run folder), so a cluster sweep's jobs find it built. It takes the
training command's overrides (the same cache key); a swept override prepares every value
(`train_frac=0.1,0.6`)."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Sequence

from tokentango.cli import fail
from tokentango.config import (
    ConfigError,
    compose_config,
    parse_overrides,
    user_overrides,
    validate,
)

USAGE = "usage: python -m tokentango.prepare [key=value ...]   (the overrides of tokentango.train)"


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """One override list per combination of the swept values (Hydra's sweep syntax)."""
    choices = []
    for text, parsed in zip(overrides, parse_overrides(overrides), strict=True):
        if parsed.is_sweep_override():
            key = parsed.get_key_element()
            choices.append([f"{key}={v}" for v in parsed.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(combination) for combination in itertools.product(*choices)]


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from tokentango.data import DataError, describe, load_dataset, settings_from_config

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    try:
        for combination in expand_sweeps(user_overrides(argv, dict(os.environ))):
            cfg = compose_config(combination)
            validate(cfg)
            started = time.perf_counter()
            data = load_dataset(settings_from_config(cfg), cfg.runtime.data_dir)
            print(f"{describe(data.stats)}\n  cache: {data.cache_dir} "
                  f"({'already there' if data.from_cache else 'built'}, "
                  f"{time.perf_counter() - started:.1f} s)")  # fmt: skip
    except (ConfigError, DataError) as err:
        return fail(err)
    except Exception as err:  # Hydra's composition errors: unknown key, bad type
        return fail(ConfigError(str(err).strip().splitlines()[0]))
    return 0
