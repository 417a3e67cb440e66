"""Evaluation stage: a model and a split in, metrics out (scikit-learn)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from tokentango.config import ConfigError
from tokentango.data import LABEL_NAMES, SPLITS, Split, batch_tensors
from tokentango.model import BertClassifier, mask_tokens


def resolve_device(name: str) -> torch.device:
    """auto | cpu | cuda[:N] as a torch device; ConfigError for anything else or absent."""
    name = str(name)
    if name not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigError(f"invalid config value device={name!r}: use auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"invalid config value device={name!r}: no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for; fp32 runs without autocast."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
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


# --- command line: python -m tokentango.evaluate checkpoint=PATH [split=...] ------------


@dataclass
class EvaluateConf:
    checkpoint: str = "latest"
    split: str = "test"  # train | val | test
    # Evaluate on this fraction of the split's rows (a fixed, seeded subset).
    fraction: float = 1.0
    # The original's source-vs-masked experiment: classify BERT-masked inputs instead.
    use_masked_tokens: bool = False
    mask_prob: float = 0.15
    seed: int = 0
    batch_size: int = 256
    device: str = "cpu"
    # null: the data folder the checkpoint was trained with.
    data_dir: str | None = None


def evaluate_checkpoint(cfg: EvaluateConf, path: Path) -> dict:
    """Metrics of one checkpoint on a split of the data it was trained on."""
    from omegaconf import OmegaConf

    from tokentango.checkpoints import restore_model
    from tokentango.data import load_cache_dir, load_dataset, settings_from_config

    if cfg.split not in SPLITS:
        raise ConfigError(f"invalid argument split={cfg.split!r}: one of {', '.join(SPLITS)}")
    if not 0.0 < cfg.fraction <= 1.0:
        raise ConfigError(f"invalid argument fraction={cfg.fraction}: must be in (0, 1]")
    if cfg.batch_size < 1:
        raise ConfigError(f"invalid argument batch_size={cfg.batch_size}: must be >= 1")
    device = resolve_device(cfg.device)
    model, meta, _ = restore_model(path, device)
    run_cfg = OmegaConf.create(meta["config"])
    if cfg.data_dir is not None:
        run_cfg.paths.data_dir = cfg.data_dir
    # The run's own cache when it is still there: no CSV needed; else rebuilt from the CSV.
    cache = Path(run_cfg.paths.data_dir) / "cache" / meta.get("data_cache", "-")
    dataset = (
        load_cache_dir(cache) if (cache / "meta.json").is_file()
        else load_dataset(settings_from_config(run_cfg), run_cfg.paths.data_dir)
    )  # fmt: skip
    split = dataset.splits[cfg.split]
    if cfg.fraction < 1.0:
        rng = np.random.default_rng(cfg.seed)
        rows = np.sort(rng.permutation(len(split))[: max(1, round(cfg.fraction * len(split)))])
        split = Split(split.ids[rows], split.lengths[rows], split.labels[rows])
    probs = predict(model, split, cfg.batch_size, device,
                    mask_prob=cfg.mask_prob if cfg.use_masked_tokens else None,
                    seed=cfg.seed)  # fmt: skip
    metrics = classification_metrics(split.labels.astype(int), (probs >= 0.5).astype(int))
    return {
        "checkpoint": str(path), "run_name": meta.get("run_name"), "step": meta.get("step"),
        "split": cfg.split, "fraction": cfg.fraction, "use_masked_tokens": cfg.use_masked_tokens,
        "mask_prob": cfg.mask_prob if cfg.use_masked_tokens else None, "seed": cfg.seed,
        "evaluated_at": datetime.now().isoformat(timespec="seconds"), **metrics,
    }  # fmt: skip


def result_path(checkpoint: Path, split: str, masked: bool) -> Path:
    """`<checkpoint>.eval-<split>[-masked]-<time>.json` beside it; never an existing file."""
    stem = f"{checkpoint.stem}.eval-{split}{'-masked' if masked else ''}-" \
           f"{datetime.now():%Y%m%d-%H%M%S}"  # fmt: skip
    path, n = checkpoint.with_name(f"{stem}.json"), 1
    while path.exists():
        path, n = checkpoint.with_name(f"{stem}-{n}.json"), n + 1
    return path


def main(argv: list[str] | None = None) -> int:
    from tokentango.checkpoints import CheckpointError, find_checkpoint
    from tokentango.config import PROJECT_ROOT, parse_cli_config
    from tokentango.data import DataError

    try:
        cfg = parse_cli_config(EvaluateConf, sys.argv[1:] if argv is None else argv)
        path = find_checkpoint(cfg.checkpoint, PROJECT_ROOT / "experiments")
        result = evaluate_checkpoint(cfg, path)
    except (ConfigError, CheckpointError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = result_path(path, cfg.split, cfg.use_masked_tokens)
    with open(out, "x") as f:  # "x": never overwrite an earlier result
        json.dump(result, f, indent=2)
    masked = " (masked tokens)" if cfg.use_masked_tokens else ""
    print(f"{path.name} on {cfg.split}{masked}, {result['n']} rows: accuracy "
          f"{result['accuracy']:.4f}  precision {result['precision']:.4f}  recall "
          f"{result['recall']:.4f}  f1 {result['f1']:.4f}")  # fmt: skip
    print(format_confusion(result["confusion_matrix"]))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
