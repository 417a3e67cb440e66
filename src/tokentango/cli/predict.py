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
    """The texts of whichever of --text, --file, --csv was given. An empty text or a file
    that is no text is refused: the model would print a confident label for nothing (the
    [CLS] token alone) or for replacement characters."""
    if args.text is not None:
        for text in args.text:
            if not text.strip():
                raise ConfigError(f"invalid argument --text {text!r}: empty text, nothing to "
                                  "classify")  # fmt: skip
        return list(args.text)
    path = args.file or args.csv
    flag = "--file" if args.file else "--csv"
    if path.is_dir():
        raise ConfigError(f"invalid argument {flag} {str(path)!r}: a folder, not a file")
    if not path.is_file():
        raise ConfigError(f"invalid argument {flag} {str(path)!r}: no such file")
    with path.open("rb") as f:
        refuse_binary(flag, path, f.read(BINARY_PROBE))
    if args.file:
        return [read_text_file(path)]
    import pandas as pd

    try:
        frame = pd.read_csv(path, usecols=[args.column], dtype=str, nrows=args.limit)
    except ValueError as err:
        raise ConfigError(f"cannot read column {args.column!r} of {path}: {err}") from err
    if frame.empty:
        raise ConfigError(f"{flag} {path} has no rows: nothing to classify")
    return frame[args.column].fillna("").tolist()


BINARY_PROBE = 8192  # bytes read to tell a binary file (a NUL byte) from text


def refuse_binary(flag: str, path: Path, head: bytes) -> None:
    """A NUL byte is what text never holds and nearly every binary format does."""
    nul = head.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"{flag} {path} is a binary file, not text (a NUL byte at offset "
                          f"{nul})")  # fmt: skip


def read_text_file(path: Path) -> str:
    """The one text of --file: UTF-8 (a byte-order mark is dropped), not blank."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"--file {path} is not UTF-8 text: {err}") from err
    if not text.strip():
        raise ConfigError(f"--file {path} is empty: nothing to classify")
    return text


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
