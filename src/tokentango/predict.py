"""`python -m tokentango.predict checkpoint=PATH text="..." | file=PATH | csv=PATH`.

Label and P(fake) per text, from one checkpoint alone (its tokenizer and model settings
travel inside it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tokentango.checkpoints import CheckpointError, find_checkpoint, restore_model
from tokentango.config import PROJECT_ROOT, ConfigError, parse_cli_config
from tokentango.data import LABEL_NAMES, Split, encode
from tokentango.evaluate import predict, resolve_device


@dataclass
class PredictConf:
    checkpoint: str = "latest"
    # Exactly one source: a text, a file holding one text, or a CSV column.
    text: str | None = None
    file: str | None = None
    csv: str | None = None
    column: str = "content"
    limit: int | None = None
    batch_size: int = 64
    device: str = "cpu"
    json: bool = False


def read_texts(cfg: PredictConf) -> list[str]:
    sources = [s for s in ("text", "file", "csv") if getattr(cfg, s) is not None]
    if len(sources) != 1:
        raise ConfigError("give exactly one of text=, file= or csv= "
                          f"(got {', '.join(sources) or 'none'})")  # fmt: skip
    if cfg.text is not None:
        return [cfg.text]
    path = Path(cfg.file or cfg.csv)
    if not path.is_file():
        raise ConfigError(f"invalid config value {sources[0]}={str(path)!r}: no such file")
    if cfg.file is not None:
        return [path.read_text(encoding="utf-8", errors="replace")]
    try:
        frame = pd.read_csv(path, usecols=[cfg.column], dtype=str, nrows=cfg.limit)
    except ValueError as err:
        raise ConfigError(f"cannot read column {cfg.column!r} of {path}: {err}") from err
    return frame[cfg.column].fillna("").tolist()


def predict_texts(
    checkpoint: str | Path, texts: list[str], batch_size: int = 64, device: str = "cpu"
) -> list[dict]:
    """[{label, p_fake}] per text."""
    if batch_size < 1:
        raise ConfigError(f"invalid argument batch_size={batch_size}: must be >= 1")
    target = resolve_device(device)
    model, _, tokenizer = restore_model(checkpoint, target)
    ids, lengths = encode(tokenizer, texts)
    split = Split(ids=ids, lengths=np.maximum(lengths, 1), labels=np.zeros(len(texts), np.int8))
    probs = predict(model, split, batch_size, target)
    return [{"label": LABEL_NAMES[int(p >= 0.5)], "p_fake": round(float(p), 4)} for p in probs]


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_cli_config(PredictConf, sys.argv[1:] if argv is None else argv)
        path = find_checkpoint(cfg.checkpoint, PROJECT_ROOT / "experiments")
        texts = read_texts(cfg)
        rows = predict_texts(path, texts, cfg.batch_size, cfg.device)
    except (ConfigError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for text, row in zip(texts, rows, strict=True):
        if cfg.json:
            print(json.dumps({**row, "text": text[:200]}))
        else:
            snippet = " ".join(text.split())[:70]
            print(f"{row['label']:8s} p_fake={row['p_fake']:.4f}  {snippet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
