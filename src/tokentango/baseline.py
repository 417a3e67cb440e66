"""`model=tfidf_lr`: TF-IDF over token n-grams + logistic regression, the baseline a
transformer run is compared with (issue 12).

It reads the very token ids the encoders train on (`data.load_run_dataset`: the same cache,
rows, split and `max_length` truncation), so a row of its report stands next to theirs on
identical inputs. Each row's ids after [CLS], up to its length, are one document of
space-separated integers; `TfidfVectorizer` (fitted on the train split) counts their
n-grams. Every C of `model.C` is one fit and one evaluation on the validation split (a line
of metrics.jsonl, `step` = 1, 2, ...); the best on validation (the earliest among equals) is
kept, not refitted, and scored on the whole test split with the encoders' metric code
(tokentango.evaluate). Seconds on CPU.

No checkpoint is written (a fitted scikit-learn model would be a pickle, which the project
never loads), so `checkpoint=`, `tokentango.evaluate` and `tokentango.predict` refuse a
baseline run in one line; rerunning it costs seconds. Plain functions (`documents`,
`features`, `fit_and_select`, `train`) so a test can call any of them alone.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tokentango import rundir, tracking
from tokentango.data import Split, describe, load_run_dataset, split_summary, subsample_train
from tokentango.evaluate import classification_metrics
from tokentango.interrupt import StopNow, StopRequests

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

log = logging.getLogger("tokentango.baseline")

# The logistic regression's solver: what results.json names as the run's `optimizer`.
SOLVER = "liblinear"


def documents(split: Split) -> list[str]:
    """Each row's token ids after [CLS], up to its length (no [PAD]), as `"17 4 230 ..."`."""
    ids, lengths = split.ids, split.lengths
    return [" ".join(map(str, ids[i, 1 : int(lengths[i])].tolist())) for i in range(len(split))]


def make_vectorizer(model: DictConfig) -> TfidfVectorizer:
    """TF-IDF over n-grams of token ids: every whitespace-separated id is a token."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    low, high = model.ngram_range
    return TfidfVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(low, high),
                           min_df=model.min_df, max_features=model.max_features,
                           sublinear_tf=True, dtype=np.float32)  # fmt: skip


def features(split: Split, vectorizer: TfidfVectorizer, fit: bool = False) -> csr_matrix:
    """The split's rows as a TF-IDF matrix, one matrix row per split row in split order;
    with `fit`, the vectorizer learns its vocabulary and IDF from this split first."""
    docs = documents(split)
    return vectorizer.fit_transform(docs) if fit else vectorizer.transform(docs)


@dataclass
class Selection:
    """The outcome of `fit_and_select`: the model kept, its C and step, every evaluation."""

    model: LogisticRegression
    C: float
    step: int  # 1-based position of C in the grid
    val_accuracy: float
    records: list[dict[str, Any]]


def fit_and_select(
    x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray, grid: list[float],
    max_iter: int, seed: int, on_eval: Callable[[dict[str, Any]], None] | None = None,
) -> Selection:  # fmt: skip
    """One logistic regression per C in `grid`, each scored on the validation rows (one
    record each: step, C, training log-loss, val accuracy and F1, given to `on_eval` as it
    comes); the best on validation is kept as fitted (the earliest C among equals)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    best: Selection | None = None
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for step, c in enumerate(grid, start=1):
        model = LogisticRegression(C=float(c), solver=SOLVER, max_iter=max_iter,
                                   random_state=seed)  # fmt: skip
        model.fit(x_train, y_train)
        val = classification_metrics(y_val, model.predict(x_val).astype(int))
        record = {
            "step": step, "C": float(c),
            "cls_loss": float(log_loss(y_train, model.predict_proba(x_train), labels=[0, 1])),
            "mlm_loss": None, "val_accuracy": val["accuracy"], "val_f1": val["f1"],
            "elapsed_seconds": round(time.perf_counter() - started, 3),
        }  # fmt: skip
        records.append(record)
        if on_eval is not None:
            on_eval(record)
        if best is None or val["accuracy"] > best.val_accuracy:
            best = Selection(model, float(c), step, val["accuracy"], records)
    assert best is not None, "an empty C grid (validate refuses it)"
    return best


def score(model: LogisticRegression, x: Any, split: Split) -> dict[str, Any]:
    """The metrics of tokentango.evaluate on a split (the encoders' P(fake) >= 0.5 rule)."""
    probs = model.predict_proba(x)[:, list(model.classes_).index(1)]
    return classification_metrics(split.labels.astype(int), (probs >= 0.5).astype(int))


def run_identity(cfg: DictConfig, run_name: str) -> dict[str, Any]:
    """What every results.json of a baseline run names (see loop.run_identity)."""
    return {"run_name": run_name, "optimizer": SOLVER, "use_mlm": False, "seed": cfg.seed,
            "train_frac": cfg.train_frac, "model": cfg.model.name, "baseline": True}  # fmt: skip


def train(
    cfg: DictConfig, run_dir: Path, run_name: str, resume_from: Path | None = None
) -> dict[str, Any]:
    """One baseline run in `run_dir`; returns the results also written to results.json.
    `resume_from` is there for loop.train's signature: a baseline has nothing to resume
    from (validate refuses `checkpoint=` for it). A stop signal ends it at once with status
    interrupted and RunInterrupted (nothing to save: a rerun redoes its seconds)."""
    if resume_from is not None:
        from tokentango.checkpoints import CheckpointError

        raise CheckpointError(f"model={cfg.model.name} writes no checkpoint: there is nothing "
                              "to resume; rerun it (it takes seconds)")  # fmt: skip
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with StopRequests() as stops:
        started = time.perf_counter()
        try:
            rundir.keep_metrics_up_to(run_dir, 0)  # an interrupted attempt's lines go
            data = load_run_dataset(cfg)
            log.info("data (%s %s):\n%s", "cache" if data.from_cache else "built into",
                     data.cache_dir, describe(data.stats))  # fmt: skip
            available = len(data.splits["train"])
            data = subsample_train(data, cfg.data.train_rows, cfg.seed)  # the encoders' rows
            with tracking.tracked(cfg, run_dir, run_name, 0) as tracker:
                results = fit_and_score(cfg, data, run_dir, run_name, tracker, started)
                results["train_rows_available"] = available
                rundir.write_json(run_dir / rundir.RESULTS_FILE, results)
                stops.restore()
                tracker.finish(results)
        except StopNow as stop:
            try:
                rundir.record_unfinished(run_dir, {
                    "status": rundir.INTERRUPTED, **run_identity(cfg, run_name),
                    "signal": signal.Signals(stop.signum).name, "steps": 0,
                    "checkpoint": None, "train_seconds": round(time.perf_counter() - started, 3),
                })  # fmt: skip
            except Exception:  # the signal must still be handed on
                log.exception("could not record the interruption")
            stops.hand_on(0)
    return results


def fit_and_score(
    cfg: DictConfig, data: Any, run_dir: Path, run_name: str, tracker: tracking.Tracker,
    started: float,
) -> dict[str, Any]:  # fmt: skip
    """Features, the C grid on validation (metrics.jsonl), the kept model on test: results."""
    m = cfg.model
    splits = data.splits
    vectorizer = make_vectorizer(m)
    x_train = features(splits["train"], vectorizer, fit=True)
    x_val, x_test = features(splits["val"], vectorizer), features(splits["test"], vectorizer)
    n_features = x_train.shape[1]
    log.info("model %s: %d features (%d-%d-grams of token ids, min_df %d) from %d training "
             "rows", m.name, n_features, m.ngram_range[0], m.ngram_range[1], m.min_df,
             x_train.shape[0])  # fmt: skip

    def on_eval(record: dict[str, Any]) -> None:
        rundir.append_metrics(run_dir, record)
        tracker.log_eval(record["step"], record)
        log.info("step %d: C %g cls_loss %.4f val_accuracy %.4f", record["step"], record["C"],
                 record["cls_loss"], record["val_accuracy"])  # fmt: skip

    fit_started = time.perf_counter()
    chosen = fit_and_select(x_train, splits["train"].labels.astype(int), x_val,
                            splits["val"].labels.astype(int), list(m.C), m.max_iter, cfg.seed,
                            on_eval)  # fmt: skip
    fit_seconds = time.perf_counter() - fit_started
    test = score(chosen.model, x_test, splits["test"])
    log.info("kept C %g (step %d, val_accuracy %.4f): test accuracy %.4f", chosen.C,
             chosen.step, chosen.val_accuracy, test["accuracy"])  # fmt: skip
    fitted_rows = x_train.shape[0] * len(m.C)
    return {
        "status": rundir.COMPLETED, **run_identity(cfg, run_name),
        "test_accuracy": test["accuracy"], "test_precision": test["precision"],
        "test_recall": test["recall"], "test_f1": test["f1"],
        "confusion_matrix": test["confusion_matrix"], "test_rows": test["n"],
        "lr": None, "data": cfg.data.name, **split_summary(data),
        "train_rows": len(splits["train"]), "steps": len(m.C), "epochs_completed": None,
        "samples": fitted_rows, "best_step": chosen.step,
        "best_val_accuracy": chosen.val_accuracy, "best_checkpoint": None, "C": chosen.C,
        "features": int(n_features), "train_seconds": round(time.perf_counter() - started, 3),
        "samples_per_second": round(fitted_rows / max(fit_seconds, 1e-9), 2),
        "device": "cpu", "precision": None, "parameters": int(n_features) + 1,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }  # fmt: skip
