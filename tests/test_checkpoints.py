"""The checkpoint format: atomic, safe to load, listed without tensors, pruned per run."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli
from tokentango import checkpoints, rundir
from tokentango.checkpoints import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)  # fmt: skip
from tokentango.cli import checkpoints as checkpoints_cli
from tokentango.config import PROJECT_ROOT
from tokentango.model import BertClassifier


def tiny_model(d_model: int = 16) -> BertClassifier:
    return BertClassifier(300, d_model=d_model, n_heads=2, n_layers=1, d_ff=32, max_length=48,
                          dropout=0.0, activation="relu", norm_first=False)  # fmt: skip


# --- format ----------------------------------------------------------------------------


def test_save_is_atomic_and_loads_with_weights_only(tmp_path: Path) -> None:
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path, model, opt, {"step": 7, "val_accuracy": 0.625,
                                                  "run_name": "r"})  # fmt: skip
    assert re.fullmatch(r"ckpt_\d{8}-\d{6}_step0000007_acc0\.6250\.pt", path.name)
    assert {p.name for p in tmp_path.iterdir()} == {path.name, path.with_suffix(".json").name}
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == checkpoints.FORMAT_VERSION
    other = tiny_model()
    meta = load_checkpoint(other, path)
    assert meta["step"] == 7 and meta["run_name"] == "r"
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_kill_during_a_write_leaves_no_file_under_the_real_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies_half_way(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")  # torch.save gets the open temporary file
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, tiny_model(), None, {"step": 1, "val_accuracy": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_listing_reads_metadata_without_loading_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_model()
    for step, acc in [(1, 0.5), (2, 0.7), (3, 0.6)]:
        save_checkpoint(tmp_path / "run", model, None, {"step": step, "val_accuracy": acc,
                                                        "run_name": "r"})  # fmt: skip
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("tensors were loaded"))
    metas = list_checkpoints(tmp_path)
    assert [m["step"] for m in metas] == [3, 2, 1]  # newest first


def test_keep_last_and_best_of_one_run_only(tmp_path: Path) -> None:
    model = tiny_model()
    other = save_checkpoint(tmp_path, model, None, {"step": 9, "val_accuracy": 0.1,
                                                    "run_name": "other"})  # fmt: skip
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.6), (4, 0.7), (5, 0.65)]:
        save_checkpoint(tmp_path, model, None, {"step": step, "val_accuracy": acc,
                                                "run_name": "r"})  # fmt: skip
        checkpoints.prune_checkpoints(tmp_path, keep_last=2, run_name="r")
    assert sorted(m["step"] for m in list_checkpoints(tmp_path) if m["run_name"] == "r") == [
        2,
        4,
        5,
    ]
    assert other.exists()  # another run's checkpoint in a shared folder is never pruned
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_resuming_from_an_earlier_checkpoint_sets_the_later_ones_aside(tmp_path: Path) -> None:
    model = tiny_model()
    paths = [save_checkpoint(tmp_path, model, None, {"step": s, "val_accuracy": a,
                                                     "run_name": "r"})
             for s, a in [(1, 0.5), (2, 0.9), (3, 0.6)]]  # fmt: skip
    moved = checkpoints.set_aside_after(tmp_path, 1, "r")
    assert sorted(moved) == sorted(paths[1:])
    assert [m["step"] for m in list_checkpoints(tmp_path)] == [1]
    assert all(p.with_name(p.name + ".abandoned").exists() for p in paths[1:])


def test_a_failed_extension_keeps_the_finished_results(tmp_path: Path) -> None:
    finished = {"status": "completed", "test_accuracy": 0.9}
    (tmp_path / "results.json").write_text(json.dumps(finished))
    rundir.record_unfinished(tmp_path, {"status": "failed", "error": "DataError: gone"})
    assert json.loads((tmp_path / "results.json").read_text()) == finished
    (failure,) = tmp_path.glob("results.failed-*.json")
    assert json.loads(failure.read_text())["error"] == "DataError: gone"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    rundir.record_unfinished(fresh, {"status": "failed", "error": "x"})
    assert json.loads((fresh / "results.json").read_text())["status"] == "failed"


def legacy_pth(path: Path, model: torch.nn.Module, full: bool = True) -> Path:
    """A file as the original tokentango wrote it."""
    payload = {"model_state_dict": model.state_dict(), "optimizer_state_dict": {}}
    if full:
        payload.update(
            config={"train_frac": 0.1, "batch_size": 32, "lr": 1e-4, "optimizer_type": "adamw",
                    "use_mlm": True, "seed": 42, "device": "cpu", "run_name": "old-run",
                    "checkpoint_dir": "checkpoints"},
            epoch=2, accuracy=0.8123, timestamp="2025-03-01 10:00:00",
            cls_losses=[0.7, 0.6], mlm_losses=[7.0, 6.5],
        )  # fmt: skip
    torch.save(payload, path)
    return path


def test_original_pth_files_are_listed_and_inspected(tmp_path: Path, capsys) -> None:
    legacy_pth(tmp_path / "model_20250301_0.8123.pth", tiny_model())
    legacy_pth(tmp_path / "older.pth", tiny_model(), full=False)
    save_checkpoint(
        tmp_path,
        tiny_model(),
        None,
        {"step": 3, "val_accuracy": 0.7, "run_name": "new", "optimizer": "adam"},
    )
    metas = {Path(m["path"]).name: m for m in list_checkpoints(tmp_path)}
    assert len(metas) == 3
    old = metas["model_20250301_0.8123.pth"]
    assert old["legacy"] and old["run_name"] == "old-run" and old["val_accuracy"] == 0.8123
    assert old["optimizer"] == "adamw" and old["epoch"] == 2 and old["cls_losses"] == [0.7, 0.6]
    assert metas["older.pth"]["run_name"] is None
    assert checkpoints_cli.main(["list", str(tmp_path), "--optimizer", "adamw"]) == 0
    out = capsys.readouterr().out
    assert "old-run" in out and "original format" in out and "new" not in out.split("\n", 1)[1]
    assert checkpoints_cli.main(["show", str(tmp_path / "model_20250301_0.8123.pth")]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["optimizer_type"] == "adamw"
    with pytest.raises(CheckpointError, match="original tokentango"):
        read_metadata(tmp_path / "older.pth", require_resumable=True)


class _RunsCode:
    def __reduce__(self):
        return (subprocess.call, (["touch", str(_RunsCode.marker)],))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path, reliability) -> None:
    _RunsCode.marker = tmp_path / "pwned"
    evil = tmp_path / "ckpt_evil.pt"
    torch.save({"model": {}, "x": _RunsCode()}, evil)
    evil.with_suffix(".pth").write_bytes(pickle.dumps({"model_state_dict": _RunsCode()}))
    errors = []
    for path in (evil, evil.with_suffix(".pth")):
        with pytest.raises(CheckpointError, match="cannot load") as raised:
            checkpoints.read_payload(path)
        errors.append(str(raised.value).splitlines()[0])
    assert list_checkpoints(tmp_path) == []
    assert not _RunsCode.marker.exists()
    for path, error in zip((evil, evil.with_suffix(".pth")), errors, strict=True):
        reliability.record(section="security",
                           fault=f"a checkpoint ({path.suffix}) that is a pickle running a "
                           "command",
                           happened=f"CheckpointError: {error}; not listed",
                           kept="the command never ran (no marker file)")  # fmt: skip


def test_truncated_corrupt_and_missing_files_are_clear_errors(tmp_path: Path,
                                                               reliability) -> None:  # fmt: skip
    good = save_checkpoint(tmp_path, tiny_model(), None, {"step": 1, "val_accuracy": 0.5})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    seen, model = {}, tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    for path in (truncated, corrupt):
        with pytest.raises(CheckpointError, match=re.escape(path.name)) as raised:
            load_checkpoint(model, path)
        seen[path.name] = raised.value
    with pytest.raises(CheckpointError, match="not found") as raised:
        load_checkpoint(model, tmp_path / "missing.pt")
    seen["missing.pt"] = raised.value
    untouched = all(map(torch.equal, before, model.parameters()))
    what = {"truncated.pt": "a checkpoint cut after 200 bytes",
            "corrupt.pt": "a checkpoint file of other bytes", "missing.pt": "a missing checkpoint"}
    for name, error in seen.items():
        reliability.record(fault=f"loading {what[name]}",
                           happened=f"CheckpointError: {str(error).splitlines()[0]}",
                           kept=f"the model's weights unchanged: {untouched}")  # fmt: skip


def test_a_foreign_checkpoint_is_a_clear_error(tmp_path: Path, reliability) -> None:
    """Another project's PyTorch file (a plain state dict) loads safely but is not ours:
    resuming from it and evaluating it are one error each, and nothing is trained or
    written."""
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(CheckpointError, match="is not a tokentango checkpoint") as raised:
        load_checkpoint(tiny_model(), foreign)
    evaluated = run_cli("tokentango.evaluate", "--checkpoint", str(foreign), check=False)
    assert evaluated.returncode == 2
    assert evaluated.stderr.strip() == f"error: {raised.value}"
    resumed = run_cli("tokentango.train", f"checkpoint={foreign}", check=False)
    assert resumed.returncode == 2 and "is not a tokentango checkpoint" in resumed.stderr
    assert len(resumed.stderr.strip().splitlines()) == 1
    reliability.record(fault="a foreign checkpoint (another project's state dict)",
                       happened=f"evaluate exit {evaluated.returncode}, train "
                       f"checkpoint=<it> exit {resumed.returncode}: {evaluated.stderr.strip()}",
                       kept="nothing written: no run folder")


def test_another_model_size_names_the_setting(tmp_path: Path, reliability) -> None:
    cfg = {"model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "max_length": 48}}
    path = save_checkpoint(tmp_path, tiny_model(16), None,
                           {"step": 1, "val_accuracy": 0.5, "config": cfg})  # fmt: skip
    model = tiny_model(32)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match=r"model\.d_model: 16 there, 32 here") as raised:
        load_checkpoint(model, path)
    untouched = all(map(torch.equal, before, model.parameters()))
    reliability.record(fault="loading a checkpoint of another model size (d_model 16 into 32)",
                       happened=f"CheckpointError: {raised.value}",
                       kept=f"the model's weights unchanged: {untouched}")


def test_nothing_loads_a_checkpoint_unsafely() -> None:
    load_call = re.compile(r"torch\.load\(")
    calls = [(path, line) for path in (PROJECT_ROOT / "src").rglob("*.py")
             for line in path.read_text().splitlines() if load_call.search(line)]  # fmt: skip
    assert calls  # the one place that loads: checkpoints.read_payload
    for path, line in calls:
        assert "weights_only=True" in line, f"{path}: {line.strip()}"
