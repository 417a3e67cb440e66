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
    """argparse, answering a `key=value` argument (the tools' old form) with the flag to use;
    `old_names` maps old keys whose flag has another name (use_masked_tokens -> --masked)."""

    def __init__(self, *args: Any, old_names: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.old_names = old_names or {}

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        for i, arg in enumerate(args):
            key, sep, value = arg.partition("=")
            before = self._option_string_actions.get(args[i - 1]) if i else None
            is_a_value = before is not None and before.nargs != 0  # --text a=b
            if sep and key.isidentifier() and not is_a_value:
                self.error(self._flag_for(key, value, arg))
        return super().parse_args(args, namespace)

    def _flag_for(self, key: str, value: str, arg: str) -> str:
        flag = self.old_names.get(key, "--" + key.replace("_", "-"))
        action = self._option_string_actions.get(flag)
        if action is None:
            return f"unrecognized argument {arg} (the tools take flags: see --help)"
        if action.nargs == 0:  # a switch
            on = value.lower() in ("true", "1", "yes")
            return f"the tools take flags: {'use ' + flag if on else 'leave out ' + flag} " \
                   f"instead of {arg}"  # fmt: skip
        return f"the tools take flags: use {flag} {value!r} instead of {arg}"


def add_checkpoint_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default="latest", metavar="PATH",
        help="a checkpoint file, a run folder (its newest checkpoint) or `latest` (the newest "
        f"under {default_experiments_dir()}); default: latest",
    )  # fmt: skip


def find_checkpoint_arg(spec: str):
    from tokentango.checkpoints import find_checkpoint

    return find_checkpoint(spec, default_experiments_dir())


