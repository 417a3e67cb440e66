"""`python -m tokentango.checkpoints list|show|losses`: find, filter and inspect
checkpoints (their metadata only: listing loads no tensors)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from tokentango.checkpoints import (
    CheckpointError,
    filter_checkpoints,
    list_checkpoints,
    read_metadata,
)
from tokentango.cli import fail
from tokentango.config import default_experiments_dir


def _filtered(metas: list[dict[str, Any]], args) -> list[dict[str, Any]]:
    use_mlm = None if args.use_mlm is None else args.use_mlm == "true"
    return filter_checkpoints(metas, optimizer=args.optimizer, use_mlm=use_mlm,
                              min_accuracy=args.min_accuracy, run_name=args.run_name,
                              sort=args.sort, limit=args.limit)  # fmt: skip


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def format_listing(metas: list[dict[str, Any]]) -> str:
    header = f"{'timestamp':19s}  {'run_name':24s} {'step':>7s} {'epoch':>5s} {'val_acc':>7s} " \
             f"{'optim':>6s} {'mlm':>5s}  path"  # fmt: skip
    lines = [header]
    for m in metas:
        lines.append(
            f"{m['timestamp'][:19]:19s}  {_fmt(m.get('run_name')):24s} {_fmt(m.get('step')):>7s} "
            f"{_fmt(m.get('epoch')):>5s} {_fmt(m.get('val_accuracy'), '.4f'):>7s} "
            f"{_fmt(m.get('optimizer')):>6s} {_fmt(m.get('use_mlm')):>5s}  {m['path']}"
            f"{'  (original format)' if m.get('legacy') else ''}"
        )  # fmt: skip
    return "\n".join(lines)


def loss_history(metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run's per-step losses stitched from its checkpoints, oldest first. Each
    checkpoint holds the losses since the previous evaluation (one saved on a stop signal
    overlaps the next: a step is listed once); pruned checkpoints leave gaps."""
    rows: dict[int, dict[str, Any]] = {}
    for m in sorted(metas, key=lambda m: (m.get("step") or 0, m["timestamp"])):
        cls, mlm = m.get("cls_losses") or [], m.get("mlm_losses") or []
        end = m.get("step") or len(cls)
        for i, loss in enumerate(cls):
            step = end - len(cls) + i + 1
            rows[step] = {"step": step, "cls_loss": loss,
                          "mlm_loss": mlm[i] if i < len(mlm) else None,
                          "checkpoint": Path(m["path"]).name}  # fmt: skip
    return [rows[step] for step in sorted(rows)]


def _plot_losses(rows: list[dict[str, Any]], run_name: str, out: Path) -> None:
    from tokentango.report.plots import new_figure

    fig, (ax,) = new_figure()
    ax.plot([r["step"] for r in rows], [r["cls_loss"] for r in rows], ".", ms=2,
            label="classification")  # fmt: skip
    mlm = [(r["step"], r["mlm_loss"]) for r in rows if r["mlm_loss"] is not None]
    if mlm:
        ax.plot(*zip(*mlm, strict=True), ".", ms=2, label="MLM")
    ax.set(xlabel="step", ylabel="loss", title=f"{run_name}: losses across its checkpoints")
    ax.legend()
    fig.savefig(out, dpi=120)


def build_parser() -> argparse.ArgumentParser:
    default_dirs = [os.environ.get("TT_CHECKPOINT_DIR") or str(default_experiments_dir())]
    parser = argparse.ArgumentParser(prog="python -m tokentango.checkpoints",
                                     description="List and inspect checkpoints.")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="checkpoints below the folders, newest first")
    ls.add_argument("dirs", nargs="*", default=default_dirs)
    ls.add_argument("--sort", choices=["timestamp", "accuracy"], default="timestamp")
    ls.add_argument("--optimizer")
    ls.add_argument("--use-mlm", choices=["true", "false"])
    ls.add_argument("--min-accuracy", type=float)
    ls.add_argument("--run-name")
    ls.add_argument("--limit", type=int)
    ls.add_argument("--json", action="store_true", help="one JSON object per checkpoint")
    show = sub.add_parser("show", help="one checkpoint's metadata")
    show.add_argument("path")
    losses = sub.add_parser("losses", help="a run's loss history across its checkpoints")
    losses.add_argument("run_name")
    losses.add_argument("dirs", nargs="*", default=default_dirs)
    losses.add_argument("--plot", type=Path, help="also draw the history into this PNG")
    return parser


def _list(metas: list[dict[str, Any]], args: argparse.Namespace) -> None:
    metas = _filtered(metas, args)
    if not args.json:
        print(format_listing(metas) if metas else "no checkpoints match")
        return
    for m in metas:
        print(json.dumps({k: v for k, v in m.items()
                          if k not in ("config", "loop", "cls_losses", "mlm_losses")}))  # fmt: skip


def _losses(metas: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows = loss_history([m for m in metas if m.get("run_name") == args.run_name])
    if not rows:
        raise CheckpointError(f"no checkpoints with losses for run {args.run_name!r} "
                              f"under {', '.join(args.dirs)}")  # fmt: skip
    print(f"{'step':>7s} {'cls_loss':>9s} {'mlm_loss':>9s}  checkpoint")
    for r in rows:
        print(f"{r['step']:>7d} {r['cls_loss']:>9.4f} {_fmt(r['mlm_loss'], '.4f'):>9s}  "
              f"{r['checkpoint']}")  # fmt: skip
    if args.plot:
        _plot_losses(rows, args.run_name, args.plot)
        print(f"plot: {args.plot}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "show":
            meta = read_metadata(args.path)
            meta.pop("state", None)
            print(json.dumps(meta, indent=2))
            return 0
        for folder in args.dirs:
            if not Path(folder).is_dir():
                raise CheckpointError(f"no such folder: {folder}")
        metas = list_checkpoints(*args.dirs)
        (_list if args.command == "list" else _losses)(metas, args)
        return 0
    except CheckpointError as err:
        return fail(err)
