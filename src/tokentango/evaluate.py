"""Evaluation stage: a model and a split in, metrics out (scikit-learn)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from tokentango.data import LABEL_NAMES, Split, batch_tensors
from tokentango.model import BertClassifier


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for; fp32 runs without autocast."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(
    model: BertClassifier, split: Split, batch_size: int, device: torch.device,
    precision: str = "fp32",
) -> np.ndarray:  # fmt: skip
    """P(fake) for every row of `split`, in row order. Batches group rows of similar
    length (less padding); the result does not depend on that order."""
    was_training = model.training
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    probs = np.empty(len(split), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        ids, _ = batch_tensors(split, index, device)
        with autocast(device, precision):
            logits = model(ids)
        probs[index] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
    model.train(was_training)
    return probs


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy, precision/recall/F1 of the `fake` class, and a labelled confusion matrix
    (rows: true label, columns: predicted label)."""
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
    precision: str = "fp32",
) -> dict:  # fmt: skip
    probs = predict(model, split, batch_size, device, precision)
    return classification_metrics(split.labels.astype(int), (probs >= 0.5).astype(int))


def format_confusion(matrix: dict) -> str:
    """The confusion matrix as aligned text, true labels down, predictions across."""
    labels = matrix["labels"]
    width = max(len(x) for x in labels) + 2
    lines = ["true \\ pred".ljust(width + 4) + "".join(x.rjust(width) for x in labels)]
    for name, row in zip(labels, matrix["matrix"], strict=True):
        lines.append(name.ljust(width + 4) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)
