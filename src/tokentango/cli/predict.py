"""`python -m tokentango.predict --checkpoint PATH (--text TEXT | --file PATH | --csv PATH)`:
label and P(fake) per text. A text reaches the model exactly as given: colons, equals
signs and quotes included."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokentango.cli import Parser, add_checkpoint_flag, defaults_of, fail, find_checkpoint_arg
from tokentango.config import ConfigError


def build_parser() -> Parser:
    from tokentango.predict import predict_texts

    d = defaults_of(predict_texts)
    parser = Parser(prog="python -m tokentango.predict",
                    description="Label texts as fake or reliable with a checkpoint.")  # fmt: skip
    add_checkpoint_flag(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text (repeat for several)")
    source.add_argument("--file", type=Path, help="a file holding one text")
    source.add_argument("--csv", type=Path, help="a CSV: one text per row of --column")
    parser.add_argument("--column", default="content", help="the CSV column (content)")
    parser.add_argument("--limit", type=int, help="read at most this many CSV rows")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"])
    parser.add_argument("--device", default=d["device"], help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="one JSON object per text")
    return parser


def read_texts(args) -> list[str]:
    """The texts of whichever of --text, --file, --csv was given."""
    import pandas as pd

    if args.text is not None:
        return list(args.text)
    path = args.file or args.csv
    flag = "--file" if args.file else "--csv"
    if not path.is_file():
        raise ConfigError(f"invalid argument {flag} {str(path)!r}: no such file")
    if args.file:
        return [path.read_text(encoding="utf-8", errors="replace")]
    try:
        frame = pd.read_csv(path, usecols=[args.column], dtype=str, nrows=args.limit)
    except ValueError as err:
        raise ConfigError(f"cannot read column {args.column!r} of {path}: {err}") from err
    return frame[args.column].fillna("").tolist()


def main(argv: Sequence[str] | None = None) -> int:
    from tokentango.checkpoints import CheckpointError
    from tokentango.predict import predict_texts

    args = build_parser().parse_args(argv)
    try:
        path = find_checkpoint_arg(args.checkpoint)
        texts = read_texts(args)
        rows = predict_texts(path, texts, args.batch_size, args.device)
    except (ConfigError, CheckpointError) as err:
        return fail(err)
    for text, row in zip(texts, rows, strict=True):
        if args.json:
            print(json.dumps({**row, "text": text[:200]}))
        else:
            snippet = " ".join(text.split())[:70]
            print(f"{row['label']:8s} p_fake={row['p_fake']:.4f}  {snippet}")
    return 0
