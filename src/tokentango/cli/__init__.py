"""The tools' command lines (argparse flags): `python -m tokentango.checkpoints`,
`tokentango.evaluate` and `tokentango.predict` run these. Training is composed by Hydra
(`key=value` overrides, tokentango.run); the tools take flags, so any text reaches them
unchanged."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tokentango.config import default_experiments_dir

USAGE_ERROR = 2


def fail(err: Exception) -> int:
    """One line on stderr, exit status 2: how every tool reports bad input."""
    print(f"error: {err}", file=sys.stderr)
    return USAGE_ERROR


def defaults_of(func: Callable[..., Any]) -> dict[str, Any]:
    """A stage function's keyword defaults: the one home of a tool's defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


class Parser(argparse.ArgumentParser):
    """argparse, answering a `key=value` argument (the tools' old form) with its flag."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed, extra = self.parse_known_args(args, namespace)
        for arg in extra:
            key, _, value = arg.partition("=")
            if value and key.isidentifier():
                self.error(f"the tools take flags: use --{key.replace('_', '-')} {value!r} "
                           f"instead of {arg}")  # fmt: skip
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def add_checkpoint_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default="latest", metavar="PATH",
        help="a checkpoint file, a run folder (its newest checkpoint) or `latest` (the newest "
        f"under {default_experiments_dir()}); default: latest",
    )  # fmt: skip


def find_checkpoint_arg(spec: str):
    from tokentango.checkpoints import find_checkpoint

    return find_checkpoint(spec, default_experiments_dir())


