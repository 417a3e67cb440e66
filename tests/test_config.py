"""Every config composes; every bad value fails before any work, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigKeyError, ValidationError

from tests.conftest import compose_config, run_cli
from tokentango.config import CONF_DIR, ConfigError, validate

GROUPS = ["optimizer", "objective", "data", "model", "trainer"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda x: str(x)
)
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    cfg = compose_config([f"{group}={option}"])
    if group == "data" and option == "fakenews":
        assert cfg.data.path.endswith("data/995,000_rows.csv")
        return  # the real file is not in the repo; validate() would rightly reject it
    validate(cfg)


def test_defaults() -> None:
    cfg = compose_config()
    assert cfg.seed == 42 and cfg.use_mlm is True and cfg.train_frac == 1.0
    assert cfg.trainer.batch_size == 32 and cfg.trainer.eval_every == 100
    assert cfg.trainer.early_stopping.threshold == 0.80
    assert cfg.trainer.early_stopping.patience == 3
    assert cfg.objective.mask_prob == 0.15
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-4


@pytest.mark.parametrize("name,cls,extra", [
    ("adam", "Adam", {}), ("adamw", "AdamW", {"weight_decay": 0.01}),
    ("sgd", "SGD", {"momentum": 0.9}),
])  # fmt: skip
def test_optimizers_instantiate(name: str, cls: str, extra: dict) -> None:
    import torch

    cfg = compose_config([f"optimizer={name}"])
    opt = instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(2))], _convert_="all")
    assert type(opt).__name__ == cls
    for key, value in extra.items():
        assert opt.defaults[key] == value


def test_objective_and_use_mlm_override() -> None:
    assert compose_config(["objective=no_mlm"]).use_mlm is False
    assert compose_config(["objective=mlm"]).use_mlm is True
    assert compose_config(["use_mlm=false"]).use_mlm is False
    assert compose_config(["objective=no_mlm", "use_mlm=true"]).use_mlm is True


def test_original_model_preset_matches_the_original() -> None:
    m = compose_config(["model=original"]).model
    assert (m.d_model, m.n_heads, m.n_layers, m.d_ff, m.max_length, m.vocab_size, m.dropout) == (
        32,
        4,
        6,
        2048,
        300,
        40000,
        0.0,
    )


def test_early_stopping_can_be_turned_off() -> None:
    assert compose_config(["trainer.early_stopping=null"]).trainer.early_stopping is None


@pytest.mark.parametrize("override,key", [
    ("train_frac=1.5", "train_frac"),
    ("train_frac=0", "train_frac"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.eval_every=0", "trainer.eval_every"),
    ("trainer.max_steps=0", "trainer.max_steps"),
    ("model.n_heads=3", "model.n_heads"),
    ("objective.mask_prob=1.2", "objective.mask_prob"),
    ("optimizer.lr=-1", "optimizer.lr"),
    ("data.path=/no/such/file.csv", "data.path"),
])  # fmt: skip
def test_bad_values_name_the_key(override: str, key: str) -> None:
    cfg = compose_config([override])
    with pytest.raises(ConfigError, match=rf"\b{key}="):
        validate(cfg)


@pytest.mark.parametrize("override,key", [
    ("trainer.batch_size=abc", "trainer.batch_size"),
    ("seed=forty", "seed"),
    ("device=tpu", "device"),
    ("trainer.precision=fp8", "trainer.precision"),
])  # fmt: skip
def test_bad_types_fail_at_composition(override: str, key: str) -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        compose_config([override])
    assert key in str(info.value) or key in str(info.value.__cause__)


def test_unknown_option_and_key_fail_at_composition() -> None:
    with pytest.raises(ConfigCompositionException, match="optimizer"):
        compose_config(["optimizer=foo"])
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="bogus"):
        compose_config(["bogus=1"])
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as info:
        compose_config(["trainer.batchsize=8"])
    assert "batchsize" in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize("override,needle", [
    ("train_frac=1.5", "train_frac"),
    ("optimizer=foo", "optimizer"),
    ("trainer.batch_size=abc", "trainer.batch_size"),
])  # fmt: skip
def test_cli_bad_value_exits_nonzero_and_writes_no_run(
    tmp_path: Path, override: str, needle: str
) -> None:
    proc = run_cli("tokentango.train", override, f"paths.experiments_dir={tmp_path}",
                   f"paths.data_dir={tmp_path}/data", check=False)  # fmt: skip
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())
