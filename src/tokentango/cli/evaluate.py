"""`python -m tokentango.evaluate --checkpoint PATH [--split test] [--fraction 1.0]
[--masked] ...`: score a checkpoint on a split of the data it was trained on."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokentango.cli import Parser, add_checkpoint_flag, defaults_of, fail, find_checkpoint_arg
from tokentango.config import ConfigError


def build_parser() -> Parser:
    from tokentango.evaluate import evaluate_checkpoint

    d = defaults_of(evaluate_checkpoint)
    parser = Parser(prog="python -m tokentango.evaluate",
                    old_names={"use_masked_tokens": "--masked"},
                    description="Score a checkpoint on a split of the data it was trained on; "
                    "prints the figures and saves them beside the checkpoint.")  # fmt: skip
    add_checkpoint_flag(parser)
    parser.add_argument("--split", choices=["train", "val", "test"], default=d["split"])
    parser.add_argument("--fraction", type=float, default=d["fraction"],
                        help="evaluate a fixed, seeded subset of the split's rows")  # fmt: skip
    parser.add_argument("--masked", action="store_true", dest="masked",
                        help="classify BERT-masked inputs (the original's source-vs-masked "
                        "experiment)")  # fmt: skip
    parser.add_argument("--mask-prob", type=float, default=d["mask_prob"],
                        help="with --masked (default: the run's objective.mask_prob)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=d["seed"], help="for --fraction and --masked")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"])
    parser.add_argument("--device", default=d["device"], help="auto, cpu or cuda")
    parser.add_argument("--data-dir", default=d["data_dir"],
                        help="the data folder (default: the one the run used)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tokentango.checkpoints import CheckpointError
    from tokentango.data import DataError
    from tokentango.evaluate import evaluate_checkpoint, format_confusion, result_path

    args = build_parser().parse_args(argv)
    try:
        path = find_checkpoint_arg(args.checkpoint)
        options = {k: v for k, v in vars(args).items() if k != "checkpoint"}
        result = evaluate_checkpoint(path, **options)
    except (ConfigError, CheckpointError, DataError) as err:
        return fail(err)
    out = result_path(path, args.split, args.masked)
    with open(out, "x") as f:  # "x": never overwrite an earlier result
        json.dump(result, f, indent=2)
    masked = " (masked tokens)" if args.masked else ""
    print(f"{path.name} on {args.split}{masked}, {result['n']} rows: accuracy "
          f"{result['accuracy']:.4f}  precision {result['precision']:.4f}  recall "
          f"{result['recall']:.4f}  f1 {result['f1']:.4f}")  # fmt: skip
    print(format_confusion(result["confusion_matrix"]))
    print(f"written: {out}")
    return 0
