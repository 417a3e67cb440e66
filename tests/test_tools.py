"""The tools on checkpoints: evaluate, predict, and list/show/losses (flags, argparse)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import read_results, run_cli
from tokentango import checkpoints, evaluate, predict
from tokentango.cli import checkpoints as checkpoints_cli
from tokentango.cli import evaluate as evaluate_cli
from tokentango.cli import predict as predict_cli


def test_evaluate_writes_a_new_result_beside_the_checkpoint(trained_run: Path, capsys) -> None:
    ckpt = checkpoints.best_checkpoint(trained_run / "checkpoints")
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--split", "val"]) == 0
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--split", "val"]) == 0
    results = sorted(ckpt.parent.glob(f"{ckpt.stem}.eval-val-*.json"))
    assert len(results) == 2  # the second never overwrites the first
    first = json.loads(results[0].read_text())
    assert first["split"] == "val" and 0 <= first["accuracy"] <= 1
    assert first["confusion_matrix"]["labels"] == ["reliable", "fake"]
    out = capsys.readouterr().out
    assert "accuracy" in out and "true \\ pred" in out
    # The whole test split, unmasked, reproduces the run's own final figures.
    run = read_results(trained_run)
    assert evaluate_cli.main(["--checkpoint", str(ckpt)]) == 0
    test = json.loads(max(ckpt.parent.glob(f"{ckpt.stem}.eval-test-*.json")).read_text())
    assert test["accuracy"] == run["test_accuracy"] and test["n"] == run["test_rows"]
    # Masked, the same: results.json's masked_test_accuracy is `evaluate --masked`'s figure.
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--masked"]) == 0
    masked = json.loads(max(ckpt.parent.glob(f"{ckpt.stem}.eval-test-masked-*.json")).read_text())
    assert masked["accuracy"] == run["masked_test_accuracy"]
    assert masked["mask_prob"] == run["mask_prob"] == 0.15


def test_evaluate_masked_tokens_and_fraction(trained_run: Path) -> None:
    ckpt = checkpoints.latest_checkpoint(trained_run)
    masked = evaluate.evaluate_checkpoint(ckpt, fraction=0.5, masked=True)
    half = evaluate.evaluate_checkpoint(ckpt, fraction=0.5)
    full = evaluate.evaluate_checkpoint(ckpt)
    assert masked["use_masked_tokens"] and masked["n"] == half["n"] == round(full["n"] / 2)
    # Same rows, masked inputs: the model sees other tokens, so its predictions move.
    p_masked = evaluate.predict(*_model_and_half_split(ckpt), mask_prob=0.15)
    p_plain = evaluate.predict(*_model_and_half_split(ckpt))
    assert not np.allclose(p_masked, p_plain)
    # Seeded masks: the same figures every time.
    again = evaluate.evaluate_checkpoint(ckpt, fraction=0.5, masked=True)
    assert {k: v for k, v in again.items() if k != "evaluated_at"} == {
        k: v for k, v in masked.items() if k != "evaluated_at"
    }


def _model_and_half_split(ckpt: Path):
    model, meta, _ = checkpoints.restore_model(ckpt)
    test = evaluate.run_dataset(meta).splits["test"]
    return model, test, 64, torch.device("cpu")


@pytest.mark.parametrize("args,error", [
    (["--checkpoint", "/no/such.pt"], "no such file"),
    (["--device", "tpu"], "device"),
    (["--batch-size", "0"], "--batch-size"),
    (["--fraction", "2"], "--fraction"),
])  # fmt: skip
def test_evaluate_bad_input(trained_run: Path, args: list[str], error: str, capsys) -> None:
    ckpt = checkpoints.latest_checkpoint(trained_run)
    assert evaluate_cli.main(["--checkpoint", str(ckpt), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and error in err and err.count("\n") == 1


@pytest.mark.parametrize("args,error", [
    (["--split", "dev"], "invalid choice: 'dev'"),
    (["--batch-size", "many"], "invalid int value: 'many'"),
    (["--bogus", "1"], "unrecognized arguments: --bogus 1"),
    (["split=val"], "use --split 'val' instead of split=val"),
    (["use_masked_tokens=true"], "use --masked instead of use_masked_tokens=true"),
    (["bogus=1"], "unrecognized argument bogus=1"),
])  # fmt: skip
def test_evaluate_usage_errors_name_the_flag(args: list[str], error: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(args)
    assert exit_info.value.code == 2 and error in capsys.readouterr().err


def test_predict_text_file_and_csv(trained_run: Path, tmp_path: Path, capsys) -> None:
    ckpt = str(checkpoints.latest_checkpoint(trained_run))
    assert predict_cli.main(["--checkpoint", ckpt, "--text",
                             "Officials reported the survey data."]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip()
    assert re.match(r"(fake|reliable) +p_fake=0\.\d{4}  Officials", line)
    article = tmp_path / "article.txt"
    article.write_text("Shocking secret exposed!\n\nThe elites lied.")
    assert predict_cli.main(["--checkpoint", ckpt, "--file", str(article), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] in ("fake", "reliable") and 0 <= row["p_fake"] <= 1
    rows = tmp_path / "rows.csv"
    rows.write_text('content,type\n"one\nline two",fake\nthree,reliable\n,\n')
    assert predict_cli.main(["--checkpoint", ckpt, "--csv", str(rows)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert predict_cli.main(["--checkpoint", ckpt, "--csv", str(tmp_path / "no.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict_cli.main(["--checkpoint", ckpt])  # no text given
    assert "one of the arguments --text --file --csv is required" in capsys.readouterr().err


def test_predict_passes_any_headline_through_unchanged(trained_run: Path, capsys) -> None:
    ckpt = str(checkpoints.latest_checkpoint(trained_run))
    texts = ['BREAKING: the cure they hide', 'a=b "quoted" ${not.a.key} [1,2]', "x,y: z"]
    argv = ["--checkpoint", ckpt, "--json"]
    for text in texts:
        argv += ["--text", text]
    assert predict_cli.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == texts
    direct = predict.predict_texts(ckpt, texts)
    assert [r["p_fake"] for r in rows] == [r["p_fake"] for r in direct]


def test_tools_run_as_modules(trained_run: Path) -> None:
    ckpt = str(checkpoints.latest_checkpoint(trained_run))
    proc = run_cli("tokentango.predict", "--checkpoint", ckpt, "--text",
                   "BREAKING: the cure they hide")  # fmt: skip
    assert "BREAKING: the cure they hide" in proc.stdout
    proc = run_cli("tokentango.checkpoints", "list", str(trained_run))
    assert "tiny-run-000000" in proc.stdout
    assert "overrides of tokentango.train" in run_cli("tokentango.prepare", "--help").stdout


def test_checkpoints_cli_list_filters_sort_and_losses(trained_run: Path, tmp_path: Path,
                                                      capsys) -> None:  # fmt: skip
    root = trained_run.parent
    assert checkpoints_cli.main(["list", str(root), "--sort", "accuracy", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and [r["val_accuracy"] for r in rows] == sorted(
        (r["val_accuracy"] for r in rows), reverse=True
    )
    assert checkpoints_cli.main(["list", str(root), "--use-mlm", "false"]) == 0
    assert capsys.readouterr().out.strip() == "no checkpoints match"
    assert (
        checkpoints_cli.main(
            [
                "list",
                str(root),
                "--run-name",
                "tiny-run-000000",
                "--limit",
                "1",
                "--optimizer",
                "adam",
                "--min-accuracy",
                "0",
            ]
        )
        == 0
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # header + one
    png = tmp_path / "losses.png"
    assert checkpoints_cli.main(["losses", "tiny-run-000000", str(root), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert len([ln for ln in out.splitlines() if re.match(r" +\d+ ", ln)]) == 12  # every step
    assert png.stat().st_size > 1000
    assert checkpoints_cli.main(["losses", "nobody", str(root)]) == 2
    assert checkpoints_cli.main(["list", str(tmp_path / "missing")]) == 2


# Start-up: commands that need no tensors import none of torch, scikit-learn or pandas
# (seconds of every call and every sweep job); what they import is checked, not timed.
_IMPORTED_BY = """
import runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print(sorted({"torch", "sklearn", "pandas", "scipy", "matplotlib"} & set(sys.modules)))
"""


@pytest.mark.parametrize("command", [
    ["tokentango.train", "--help"],
    ["tokentango.checkpoints", "list"],
    ["tokentango.train", "train_frac=7"],  # a bad command line fails before any import
])  # fmt: skip
def test_light_commands_import_no_heavy_library(command: list[str], trained_run: Path) -> None:
    import subprocess
    import sys

    args = [*command, str(trained_run.parent)] if command[1] == "list" else command
    out = subprocess.run([sys.executable, "-c", _IMPORTED_BY, *args], capture_output=True,
                         text=True, timeout=300).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "[]", out


def test_a_run_reaches_its_first_step_without_pandas_or_sklearn() -> None:
    """The training loop's imports (a run that opens a built cache) load neither: they come
    with the first evaluation (scikit-learn) or a cache build (pandas), not before step 1."""
    import subprocess
    import sys

    code = ("import sys, tokentango.run, tokentango.loop\n"
            "print(sorted({'sklearn', 'pandas'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300).stdout  # fmt: skip
    assert out.strip() == "[]", out
