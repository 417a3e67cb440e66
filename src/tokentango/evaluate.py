"""Evaluation stage: a model and a split in, metrics out (scikit-learn)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from tokentango.config import ConfigError
from tokentango.data import LABEL_NAMES, SPLITS, Split, batch_tensors
from tokentango.device import autocast, keep_freed_memory, resolve_device
from tokentango.model import BertClassifier, mask_tokens


@torch.inference_mode()
def predict(
    model: BertClassifier, split: Split, batch_size: int, device: torch.device,
    precision: str = "fp32", mask_prob: float | None = None, seed: int = 0,
) -> np.ndarray:  # fmt: skip
    """P(fake) for every row of `split`, in row order. Batches group rows of similar
    length (less padding); the result does not depend on that order. With `mask_prob`,
    inputs are BERT-masked first (seeded: the same masks every time)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    probs = np.empty(len(split), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        ids, _ = batch_tensors(split, index, device)
        if mask_prob is not None:
            ids = mask_tokens(ids, model.vocab_size, mask_prob, generator).input_ids
        with autocast(device, precision):
            logits = model(ids)
        probs[index] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
    model.train(was_training)
    return probs


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy, precision/recall/F1 of the `fake` class, and a labelled confusion matrix
    (rows: true label, columns: predicted label)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="binary", pos_label=1, zero_division=0
    )
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(LABEL_NAMES))))
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion_matrix": {
            "labels": list(LABEL_NAMES),
            "matrix": matrix.tolist(),
        },
        "n": int(len(labels)),
    }


def evaluate_split(
    model: BertClassifier, split: Split, batch_size: int, device: torch.device,
    precision: str = "fp32", mask_prob: float | None = None, seed: int = 0,
) -> dict:  # fmt: skip
    """Metrics of `model` on `split`; with `mask_prob`, on BERT-masked input (seeded)."""
    probs = predict(model, split, batch_size, device, precision, mask_prob, seed)
    return classification_metrics(split.labels.astype(int), (probs >= 0.5).astype(int))


def format_confusion(matrix: dict) -> str:
    """The confusion matrix as aligned text, true labels down, predictions across."""
    labels = matrix["labels"]
    width = max(len(x) for x in labels) + 2
    lines = ["true \\ pred".ljust(width + 4) + "".join(x.rjust(width) for x in labels)]
    for name, row in zip(labels, matrix["matrix"], strict=True):
        lines.append(name.ljust(width + 4) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


# --- one checkpoint on its own data ------------------------------------------------------


def evaluate_checkpoint(
    path: Path, split: str = "test", fraction: float = 1.0, masked: bool = False,
    mask_prob: float | None = None, seed: int = 0, batch_size: int = 256, device: str = "cpu",
    data_dir: str | None = None,
) -> dict:  # fmt: skip
    """Metrics of one checkpoint on a split of the data it was trained on: all of it, or
    a fixed seeded `fraction`; with `masked`, on BERT-masked inputs (seeded masks, at
    `mask_prob` or, by default, the run's own `objective.mask_prob`)."""
    from tokentango.checkpoints import require_same_tokenizer, restore_model

    if split not in SPLITS:
        raise ConfigError(f"invalid argument --split {split!r}: one of {', '.join(SPLITS)}")
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"invalid argument --fraction {fraction}: must be in (0, 1]")
    if batch_size < 1:
        raise ConfigError(f"invalid argument --batch-size {batch_size}: must be >= 1")
    target = resolve_device(device)
    model, meta, tokenizer = restore_model(path, target)
    data = run_dataset(meta, data_dir)
    require_same_tokenizer(path, tokenizer.to_str(), data)
    keep_freed_memory()
    rows = data.splits[split]
    if mask_prob is None:
        mask_prob = meta["config"]["objective"]["mask_prob"]
    if fraction < 1.0:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.permutation(len(rows))[: max(1, round(fraction * len(rows)))])
        rows = rows.subset(keep)
    probs = predict(model, rows, batch_size, target, mask_prob=mask_prob if masked else None,
                    seed=seed)  # fmt: skip
    metrics = classification_metrics(rows.labels.astype(int), (probs >= 0.5).astype(int))
    return {
        "checkpoint": str(path), "run_name": meta.get("run_name"), "step": meta.get("step"),
        "split": split, "fraction": fraction, "use_masked_tokens": masked,
        "mask_prob": mask_prob if masked else None, "seed": seed,
        "evaluated_at": datetime.now().isoformat(timespec="seconds"), **metrics,
    }  # fmt: skip


def run_dataset(meta: dict, data_dir: str | None = None):
    """The tokenized data a checkpoint was trained on: the run's own cache when it is still
    there (no CSV needed), else rebuilt from the CSV."""
    from omegaconf import OmegaConf

    from tokentango.data import load_run_dataset

    run_cfg = OmegaConf.create(meta["config"])
    if data_dir is not None:
        run_cfg.runtime.data_dir = data_dir
    return load_run_dataset(run_cfg, meta.get("data_cache"))


def result_path(checkpoint: Path, split: str, masked: bool) -> Path:
    """`<checkpoint>.eval-<split>[-masked]-<time>.json` beside it; never an existing file."""
    stem = f"{checkpoint.stem}.eval-{split}{'-masked' if masked else ''}-" \
           f"{datetime.now():%Y%m%d-%H%M%S}"  # fmt: skip
    path, n = checkpoint.with_name(f"{stem}.json"), 1
    while path.exists():
        path, n = checkpoint.with_name(f"{stem}-{n}.json"), n + 1
    return path


if __name__ == "__main__":  # python -m tokentango.evaluate --checkpoint PATH ...
    import sys

    from tokentango.cli.evaluate import main

    sys.exit(main())
