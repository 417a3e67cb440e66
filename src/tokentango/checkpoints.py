"""Checkpoints: atomic, loadable without unpickling code, metadata readable without tensors.

Each checkpoint is two files: `<name>.pt` (tensors and plain values, read with
`torch.load(weights_only=True)`) and `<name>.json` (the metadata alone, written after the
`.pt` is in place), so listing hundreds of checkpoints reads only small JSON files.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentango.config import upgrade_config
from tokentango.rundir import write_atomically

if TYPE_CHECKING:  # torch loads when tensors are read or written: listing needs only JSON
    import torch

FORMAT_VERSION = 1
SUFFIX = ".pt"
LEGACY_SUFFIX = ".pth"  # the original tokentango's checkpoints


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def checkpoint_name(step: int, val_accuracy: float | None, when: datetime) -> str:
    """`val_accuracy` None: saved on a stop signal between evaluations."""
    tail = "interrupted" if val_accuracy is None else f"acc{val_accuracy:.4f}"
    return f"ckpt_{when:%Y%m%d-%H%M%S}_step{step:07d}_{tail}"


def save_checkpoint(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any], state: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write `<name>.pt` then `<name>.json` atomically; returns the `.pt` path.

    `meta` must hold plain JSON values, at least `step` and `val_accuracy` (None for one
    saved between evaluations); `state` holds extra resume tensors (RNG states).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    when = datetime.now()
    meta = {"format_version": FORMAT_VERSION, "timestamp": when.isoformat(), **meta}
    name = checkpoint_name(meta["step"], meta["val_accuracy"], when)
    path = directory / f"{name}{SUFFIX}"
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "state": state or {},
        "meta_json": json.dumps(meta),
    }
    write_atomically(path, lambda tmp: _torch_save(payload, tmp))
    meta_text = json.dumps({**meta, "file": path.name}, indent=2)
    write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(meta_text))
    return path


class _Recording:
    """A binary file for torch.save that keeps the OSError of a failed write: torch reports
    a full disk or a file size limit only as `RuntimeError: ... unexpected pos`."""

    def __init__(self, file) -> None:
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(payload: dict[str, Any], path: Path) -> None:
    """torch.save to `path`; a failed write raises its OSError (which write_atomically
    turns into a WriteError naming the checkpoint)."""
    import torch

    with path.open("wb") as f:
        recording = _Recording(f)
        try:
            torch.save(payload, recording)
        except RuntimeError:
            if recording.error is not None:
                raise recording.error from None
            raise


def read_payload(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The whole checkpoint, loaded safely; CheckpointError for anything unusable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only: tensors and plain values only; a pickle that would run code is refused.
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupt, or a pickle that wants to run code
        if isinstance(err, pickle.UnpicklingError):
            # torch's message goes on to advise weights_only=False: never, for a file that
            # holds more than tensors and plain values.
            why = ("not tensors and plain values only: corrupt, or a pickle that would run "
                   "code (refused, never run)")
        else:
            why = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(
            f"cannot load checkpoint {path}: {type(err).__name__}: {why}"
        ) from err
    if not isinstance(payload, dict) or not ({"model", "model_state_dict"} & payload.keys()):
        raise CheckpointError(f"{path} is not a tokentango checkpoint (no model weights in it)")
    return payload


def _metadata(payload: dict[str, Any]) -> dict[str, Any]:
    """A tokentango checkpoint's metadata, its config in today's layout."""
    return _in_todays_layout(json.loads(payload["meta_json"]))


def _in_todays_layout(meta: dict[str, Any]) -> dict[str, Any]:
    if "config" in meta:
        meta["config"] = upgrade_config(meta["config"])
    return meta


def _legacy_metadata(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Metadata of the original tokentango's `.pth` files in this format's terms; older
    ones lack the config, or everything but the weights."""
    config = payload.get("config") or {}
    stamp = payload.get("timestamp")
    if isinstance(stamp, int | float):
        stamp = datetime.fromtimestamp(stamp).isoformat()
    elif stamp is None:
        stamp = datetime.fromtimestamp(path.stat().st_mtime).isoformat()
    accuracy = payload.get("accuracy")
    return {
        "format_version": 0, "legacy": True, "timestamp": str(stamp),
        "run_name": config.get("run_name"), "step": None, "epoch": payload.get("epoch"),
        "val_accuracy": float(accuracy) if accuracy is not None else None,
        "optimizer": (config.get("optimizer_type") or None), "use_mlm": config.get("use_mlm"),
        "cls_losses": [float(x) for x in payload.get("cls_losses") or []],
        "mlm_losses": [float(x) for x in payload.get("mlm_losses") or []],
        "config": config,
    }  # fmt: skip


def load_checkpoint(
    model: torch.nn.Module, path: str | Path, optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """Load weights (and optimizer state when given) into place; returns the metadata."""
    path = Path(path)
    return _load_payload(model, path, read_payload(path, map_location), optimizer)


def _load_payload(
    model: torch.nn.Module, path: Path, payload: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:  # fmt: skip
    legacy = "model" not in payload
    weights = payload["model_state_dict"] if legacy else payload["model"]
    own = model.state_dict()
    for key, tensor in weights.items():
        if key in own and own[key].shape != tensor.shape:
            raise CheckpointError(
                f"{path} was saved from another model size: {key} has shape "
                f"{tuple(tensor.shape)} there and {tuple(own[key].shape)} here"
                f"{_differing_settings(payload, model)}"
            )
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            f"{_differing_settings(payload, model)}"
        )
    model.load_state_dict(weights)
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if legacy:
        return _legacy_metadata(path, payload)
    meta = _metadata(payload)
    meta["state"] = payload.get("state", {})
    return meta


def _differing_settings(payload: dict[str, Any], model: torch.nn.Module) -> str:
    """`(model.d_model: 64 there, 32 here)` when the checkpoint's config says which."""
    if "meta_json" not in payload:
        return ""
    saved = _metadata(payload).get("config", {})
    diffs = []
    for key, here in getattr(model, "settings", {}).items():
        node, leaf = key.split(".")
        there = saved.get(node, {}).get(leaf)
        if there is not None and there != here:
            diffs.append(f"{key}: {there} there, {here} here")
    return f" ({'; '.join(diffs)})" if diffs else ""


def read_metadata(path: str | Path, require_resumable: bool = False) -> dict[str, Any]:
    """Metadata of a checkpoint; from the JSON sidecar when there is one (no tensors)."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if path.suffix == SUFFIX and sidecar.is_file() and path.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as err:  # not JSON, not text (a planted pickle), gone
            raise CheckpointError(f"unreadable metadata {sidecar}: {err}") from err
        if not isinstance(meta, dict):
            raise CheckpointError(f"unreadable metadata {sidecar}: not a JSON object")
        meta = _in_todays_layout(meta)
    else:
        payload = read_payload(path)
        meta = (
            _legacy_metadata(path, payload) if "model" not in payload
            else _metadata(payload)
        )  # fmt: skip
    meta["path"] = str(path)
    if require_resumable and (meta.get("legacy") or "loop" not in meta):
        raise CheckpointError(
            f"{path} is a checkpoint of the original tokentango: it can be listed, inspected "
            "and evaluated, but holds no state to resume training from"
        )
    return meta


def _is_checkpoint_file(path: Path) -> bool:
    return path.is_file() and (
        (path.suffix == SUFFIX and path.name.startswith("ckpt_")) or path.suffix == LEGACY_SUFFIX
    )


def list_checkpoints(*directories: str | Path) -> list[dict[str, Any]]:
    """Metadata of every checkpoint below the folders (new and legacy), newest first.
    Unreadable files are skipped here; `read_metadata` on one says why."""
    metas = []
    for directory in directories:
        for path in sorted(Path(directory).rglob("*")):
            if not _is_checkpoint_file(path) or path.name.startswith("."):
                continue
            try:
                metas.append(read_metadata(path))
            except CheckpointError:
                continue
    return sorted(metas, key=lambda m: (m["timestamp"], m.get("step") or 0), reverse=True)


def filter_checkpoints(
    metas: list[dict[str, Any]], optimizer: str | None = None, use_mlm: bool | None = None,
    min_accuracy: float | None = None, run_name: str | None = None, sort: str = "timestamp",
    limit: int | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """`checkpoints list`'s filters and order over `list_checkpoints`' metadata: the
    optimizer (any case), use_mlm, a minimum validation accuracy and the run name; `sort`
    "timestamp" keeps the newest first, "accuracy" puts the best validation accuracy first;
    at most `limit` (None or 0: all)."""
    if sort not in ("timestamp", "accuracy"):
        raise ValueError(f"sort {sort!r}: timestamp or accuracy")

    def keep(m: dict[str, Any]) -> bool:
        if optimizer and (m.get("optimizer") or "").lower() != optimizer.lower():
            return False
        if use_mlm is not None and m.get("use_mlm") != use_mlm:
            return False
        if min_accuracy is not None and (m.get("val_accuracy") or 0) < min_accuracy:
            return False
        return not (run_name and m.get("run_name") != run_name)

    metas = [m for m in metas if keep(m)]
    if sort == "accuracy":
        metas.sort(key=lambda m: m.get("val_accuracy") or 0.0, reverse=True)
    return metas[:limit] if limit else metas


def _own(
    metas: list[dict[str, Any]], run_name: str | None, run_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """The tokentango checkpoints of one run (by name and/or folder) in a listing."""
    return [
        m for m in metas
        if not m.get("legacy")
        and (run_name is None or m.get("run_name") == run_name)
        and (run_dir is None or m.get("run_dir") == str(run_dir))
    ]  # fmt: skip


def latest_checkpoint(
    directory: str | Path, run_name: str | None = None, run_dir: str | Path | None = None
) -> Path | None:
    """The newest tokentango checkpoint below `directory` (of one run, when named)."""
    if not Path(directory).is_dir():
        return None
    metas = _own(list_checkpoints(directory), run_name, run_dir)
    return Path(max(metas, key=lambda m: (m["timestamp"], m["step"]))["path"]) if metas else None


def _best(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """The best validation accuracy; the earliest step among equals. Checkpoints saved
    between evaluations (no accuracy) only when there is nothing else."""
    evaluated = [m for m in metas if m.get("val_accuracy") is not None] or metas
    return max(evaluated, key=lambda m: (m.get("val_accuracy") or 0.0, -m["step"]))


def best_checkpoint(directory: str | Path, run_name: str | None = None) -> Path | None:
    """The checkpoint with the best validation accuracy (the earliest among equals)."""
    metas = _own(list_checkpoints(directory), run_name)
    return Path(_best(metas)["path"]) if metas else None


def _remove(meta: dict[str, Any]) -> None:
    path = Path(meta["path"])
    path.with_suffix(".json").unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def prune_checkpoints(directory: str | Path, keep_last: int, run_name: str | None = None) -> None:
    """Keep a run's `keep_last` newest evaluated checkpoints and its best one; delete its
    others. Other runs' checkpoints in a shared folder are never touched."""
    metas = _own(list_checkpoints(directory), run_name)
    if not metas:
        return
    # A checkpoint saved on a stop signal (no accuracy) is a resume point only: it takes no
    # place among the newest, and goes once an evaluated checkpoint is newer.
    evaluated = [m for m in metas if m.get("val_accuracy") is not None]
    newest = sorted(evaluated, key=lambda m: m["step"], reverse=True)[:keep_last]
    last = max((m["step"] for m in evaluated), default=-1)
    keep = ({m["path"] for m in newest} | {_best(metas)["path"]}
            | {m["path"] for m in metas if m.get("val_accuracy") is None and m["step"] > last})
    for meta in metas:
        if meta["path"] not in keep:
            _remove(meta)


def remove_unfinished_writes(directory: str | Path) -> list[Path]:
    """Delete the hidden temporary files (`.ckpt_*.tmp<pid>`) of checkpoint writes a killed
    process never finished. Only for a folder no other process writes to (a run's own)."""
    removed = [p for p in Path(directory).glob(".ckpt_*.tmp*") if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def set_aside_after(directory: str | Path, step: int, run_name: str) -> list[Path]:
    """Rename a run's checkpoints later than `step` to `*.abandoned` (kept, never listed):
    resuming from an earlier checkpoint starts a new branch, and the old branch's later
    checkpoints must not be taken for its newest or best."""
    moved = []
    for meta in _own(list_checkpoints(directory), run_name):
        if meta["step"] > step:
            path = Path(meta["path"])
            for part in (path.with_suffix(".json"), path):
                if part.exists():
                    part.rename(part.with_name(part.name + ".abandoned"))
            moved.append(path)
    return moved


def find_checkpoint(spec: str, search_dir: str | Path) -> Path:
    """`latest` (newest under `search_dir`), a folder (newest under it) or a file."""
    if spec == "latest":
        folder = Path(search_dir)
        found = latest_checkpoint(folder)
        if found is None:
            raise CheckpointError(f"checkpoint=latest: no checkpoint found under {folder}")
        return found
    path = Path(spec).expanduser()
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            model = baseline_model(path)
            if model is not None:
                raise CheckpointError(
                    f"checkpoint={spec}: a model={model} run has no checkpoint (a baseline "
                    "writes none: nothing to evaluate, predict with or resume); rerun it with "
                    f"model={model}: it takes seconds"
                )  # fmt: skip
            raise CheckpointError(f"checkpoint={spec}: no checkpoint found under {path}")
        return found
    if not path.is_file():
        raise CheckpointError(f"checkpoint={spec}: no such file or folder")
    return path


def baseline_model(run_dir: Path) -> str | None:
    """The model choice of a baseline run folder (model=tfidf_lr), else None: read from its
    results.json, or its .hydra/config.yaml while it has none."""
    from omegaconf import OmegaConf

    from tokentango.config import BASELINE_MODELS
    from tokentango.rundir import CONFIG_FILE, read_results

    results = read_results(run_dir) or {}
    name = results.get("model")
    if name is None and (run_dir / CONFIG_FILE).is_file():
        try:
            name = OmegaConf.select(OmegaConf.load(run_dir / CONFIG_FILE), "model.name")
        except Exception:  # an unreadable config: not known to be a baseline
            name = None
    return str(name) if name in BASELINE_MODELS else None


def require_same_tokenizer(path: str | Path, trained_with: str | None, data) -> None:
    """CheckpointError unless `data` (a data.Dataset) gives the token ids the checkpoint at
    `path` was trained on (`trained_with`: its tokenizer as JSON)."""
    if trained_with != data.tokenizer.to_str():
        raise CheckpointError(
            f"{path} was trained on other token ids than its data gives now "
            f"({data.cache_dir.name}): the data file or its preprocessing changed"
        )


def restore_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model, metadata, tokenizer) rebuilt from one checkpoint alone: the config and the
    tokenizer travel inside it, so a copied checkpoint still evaluates and predicts."""
    from omegaconf import OmegaConf
    from tokenizers import Tokenizer

    from tokentango.model import build_model

    path = Path(path)
    payload = read_payload(path)
    if "model" not in payload:
        raise CheckpointError(
            f"{path} is a checkpoint of the original tokentango: it holds neither its model "
            "settings nor its tokenizer, so it can be listed and inspected but not run"
        )
    state = payload.get("state", {})
    if "tokenizer" not in state:
        raise CheckpointError(f"{path} holds no tokenizer")
    tokenizer = Tokenizer.from_str(state["tokenizer"])
    meta = _metadata(payload)
    config = OmegaConf.create(meta["config"])
    model = build_model(config.model, tokenizer.get_vocab_size(), config.data.max_length)
    _load_payload(model, path, payload)
    return model.to(device).eval(), meta, tokenizer


if __name__ == "__main__":  # python -m tokentango.checkpoints list|show|losses
    import sys

    from tokentango.cli.checkpoints import main

    sys.exit(main())
