"""Prediction stage: texts in, label and P(fake) per text out, from one checkpoint alone
(its tokenizer and model settings travel inside it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokentango.checkpoints import restore_model
from tokentango.config import ConfigError
from tokentango.data import LABEL_NAMES, Split
from tokentango.device import resolve_device
from tokentango.evaluate import predict
from tokentango.tokenization import encode


def predict_texts(
    checkpoint: str | Path, texts: list[str], batch_size: int = 64, device: str = "cpu"
) -> list[dict]:
    """[{label, p_fake}] per text, in order; each text reaches the tokenizer unchanged."""
    if batch_size < 1:
        raise ConfigError(f"invalid argument --batch-size {batch_size}: must be >= 1")
    target = resolve_device(device)
    model, _, tokenizer = restore_model(checkpoint, target)
    ids, lengths = encode(tokenizer, texts)
    split = Split(ids=ids, lengths=np.maximum(lengths, 1), labels=np.zeros(len(texts), np.int8))
    probs = predict(model, split, batch_size, target)
    return [{"label": LABEL_NAMES[int(p >= 0.5)], "p_fake": round(float(p), 4)} for p in probs]


if __name__ == "__main__":  # python -m tokentango.predict --checkpoint PATH --text "..."
    import sys

    from tokentango.cli.predict import main

    sys.exit(main())
