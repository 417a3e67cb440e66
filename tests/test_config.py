"""Every config composes from conf/ alone; every bad value fails before any work, naming
the key; old key names and Hydra's override syntax work as a user types them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from tests.conftest import compose, train_in_process
from tokentango import config as config_module
from tokentango.config import (
    ADDED_KEYS,
    CONF_DIR,
    RENAMED_KEYS,
    ConfigError,
    legacy_env_overrides,
    upgrade_config,
    validate,
)
from tokentango.run import prepare_overrides

GROUPS = ["optimizer", "scheduler", "objective", "data", "model", "trainer", "runtime"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda x: str(x)
)
def test_every_option_composes_with_every_value_set(group: str, option: str) -> None:
    cfg = compose(f"{group}={option}")
    # The schema holds types only: a key that conf/ leaves unset would surface here.
    assert OmegaConf.missing_keys(cfg) == set()
    if group == "data" and option == "fakenews":
        assert cfg.data.path.endswith("data/995,000_rows.csv")
        return  # the real file is not in the repo; validate() would rightly reject it
    validate(cfg)


def test_schemas_hold_no_values() -> None:
    """Defaults live in conf/ only: every dataclass field is MISSING or a node."""
    import dataclasses

    schemas = [getattr(config_module, n) for n in dir(config_module)
               if n.endswith("Conf") or n == "Config"]  # fmt: skip
    for schema in [s for s in schemas if dataclasses.is_dataclass(s)]:
        for f in dataclasses.fields(schema):
            assert f.default in (dataclasses.MISSING, "???"), f"{schema.__name__}.{f.name}"


@pytest.mark.parametrize("name,cls,key", [
    ("adam", "Adam", "betas"), ("adamw", "AdamW", "weight_decay"), ("sgd", "SGD", "momentum"),
])  # fmt: skip
def test_optimizers_instantiate_with_their_settings(name: str, cls: str, key: str) -> None:
    import torch

    cfg = compose(f"optimizer={name}")
    opt = instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(2))], _convert_="all")
    assert type(opt).__name__ == cls
    expected = OmegaConf.to_container(cfg.optimizer)[key]
    assert opt.defaults[key] == (tuple(expected) if key == "betas" else expected)
    assert opt.defaults["lr"] == cfg.optimizer.lr


def test_objective_and_use_mlm_override() -> None:
    assert compose("objective=no_mlm").use_mlm is False
    assert compose("objective=mlm").use_mlm is True
    assert compose("use_mlm=false").use_mlm is False
    assert compose("objective=no_mlm", "use_mlm=true").use_mlm is True


def test_original_model_preset_matches_the_original() -> None:
    cfg = compose("model=original")
    m = cfg.model
    assert (m.d_model, m.n_heads, m.n_layers, m.d_ff, m.dropout, m.activation) == (
        32, 4, 6, 2048, 0.0, "relu")  # fmt: skip
    assert (cfg.data.max_length, cfg.data.vocab_size) == (300, 40000)  # its tokenizer
    assert compose("model=original", "data.max_length=128").data.max_length == 128


def test_early_stopping_can_be_turned_off() -> None:
    assert compose("trainer.early_stopping=null").trainer.early_stopping is None


@pytest.mark.parametrize("override,key", [
    ("train_frac=1.5", "train_frac"),
    ("train_frac=0", "train_frac"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.eval_every=0", "trainer.eval_every"),
    ("trainer.max_steps=0", "trainer.max_steps"),
    ("model.n_heads=3", "model.n_heads"),
    ("model.init_std=0", "model.init_std"),
    ("objective.mask_prob=1.2", "objective.mask_prob"),
    ("optimizer.lr=-1", "optimizer.lr"),
    ("data.path=/no/such/file.csv", "data.path"),
    ("runtime.threads=0", "runtime.threads"),
    ("runtime.eval_batch_size=0", "runtime.eval_batch_size"),
    ("scheduler.min_lr_ratio=2", "scheduler.min_lr_ratio"),
    ("scheduler.warmup_steps=-1", "scheduler.warmup_steps"),
])  # fmt: skip
def test_bad_values_name_the_key(override: str, key: str) -> None:
    cfg = compose(override)
    with pytest.raises(ConfigError, match=rf"\b{re.escape(key)}="):
        validate(cfg)


@pytest.mark.parametrize("override,key", [
    ("trainer.batch_size=abc", "trainer.batch_size"),
    ("seed=forty", "seed"),
    ("device=tpu", "runtime.device"),
    ("runtime.precision=fp8", "runtime.precision"),
])  # fmt: skip
def test_bad_types_fail_at_composition(override: str, key: str) -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        compose(override)
    assert key in str(info.value) or key in str(info.value.__cause__)


def test_unknown_option_and_key_fail_at_composition() -> None:
    with pytest.raises(ConfigCompositionException, match="optimizer"):
        compose("optimizer=foo")
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="bogus"):
        compose("bogus=1")
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as info:
        compose("trainer.batchsize=8")
    assert "batchsize" in str(info.value) + str(info.value.__cause__)


def test_cli_bad_value_exits_2_with_one_line_and_writes_no_run(tmp_path: Path, capsys) -> None:
    assert train_in_process("train_frac=1.5", f"runtime.experiments_dir={tmp_path}") == 2
    err = capsys.readouterr().err
    assert err == "error: invalid config value train_frac=1.5: must be in (0, 1]\n"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_help_lists_the_real_choices_only(capsys) -> None:
    assert train_in_process("--help") == 0
    out = capsys.readouterr().out
    groups = dict(re.findall(r"^(\w+): (.+)$", out, re.M))
    assert groups["optimizer"] == "adam, adamw, sgd"
    assert groups["model"] == "original, small, tfidf_lr"
    assert groups["objective"] == "mlm, no_mlm"
    assert "schema" not in out and "run_name: null" in out


# --- override syntax and old names -----------------------------------------------------


def test_old_key_names_still_work_on_the_command_line() -> None:
    cfg = compose("device=cpu", "trainer.precision=bf16", "trainer.progress_bar=false",
                  "paths.data_dir=/d", "model.max_length=64", "checkpoint_dir=/c")  # fmt: skip
    r = cfg.runtime
    assert (r.device, r.precision, r.progress_bar, r.data_dir, r.checkpoint_dir) == (
        "cpu", "bf16", False, "/d", "/c")  # fmt: skip
    assert cfg.data.max_length == 64


def test_old_run_configs_are_read_in_todays_layout() -> None:
    old = {"device": "cpu", "checkpoint_dir": None, "paths": {"root": "/r", "data_dir": "/r/d"},
           "model": {"name": "small", "vocab_size": 8000, "max_length": 256, "d_model": 64},
           "trainer": {"precision": "fp32", "progress_bar": None, "eval_batch_size": 256},
           "data": {"chunk_rows": 10}, "seed": 1}  # fmt: skip
    new = upgrade_config(old)
    assert new["runtime"] == {"device": "cpu", "checkpoint_dir": None, "precision": "fp32",
                              "progress_bar": None, "eval_batch_size": 256,
                              "csv_chunk_rows": 10, "data_dir": "/r/d"}  # fmt: skip
    # A key added since is read with the value that does what that version did.
    assert new["data"] == {"vocab_size": 8000, "max_length": 256, "tokenizer_rows": None,
                           "split": "random", "train_rows": None,
                           "sample_version": 1}
    assert new["model"] == {"name": "small", "d_model": 64, "init_std": 0.02}
    assert "paths" not in new
    # A baseline's encoder keys are null, whenever it was trained.
    baseline = {"model": {"name": "tfidf_lr"}, "data": {"max_length": 256}}
    assert upgrade_config(baseline)["model"] == {"name": "tfidf_lr", "init_std": None}
    assert old["device"] == "cpu"  # the input is left as it was
    today = OmegaConf.to_container(compose())
    assert upgrade_config(today) == today
    assert set(RENAMED_KEYS.values()) | set(ADDED_KEYS) <= set(_flat_keys(compose()))


def _flat_keys(cfg) -> set[str]:
    import pandas as pd

    return set(pd.json_normalize(OmegaConf.to_container(cfg)).columns)


def test_single_values_with_commas_and_lists_are_not_sweeps() -> None:
    argv = ["--multirun", "seed=1,2", "data.path='/big/disk/995,000_rows.csv'",
            "optimizer.betas=[0.9,0.99]", "use_mlm=false"]  # fmt: skip
    overrides = prepare_overrides(argv, {})
    (exclude,) = [o for o in overrides if o.startswith("hydra.job.config.override_dirname")]
    assert exclude.endswith("=[data.path,optimizer.betas,use_mlm]")  # all but the sweep
    assert overrides[0] == "--multirun"


def test_a_single_run_is_named_before_hydra_starts() -> None:
    (name,) = [o for o in prepare_overrides(["seed=3"], {}) if o.startswith("run_name=")]
    assert re.fullmatch(r"run_name=[a-z]+-[a-z]+-[0-9a-f]{6}", name)
    assert prepare_overrides(["run_name=mine"], {}) == ["run_name=mine"]
    # null asks for a fresh name too: the folder's and the recorded one are the same.
    assert re.fullmatch(r"run_name=[a-z]+-.+", prepare_overrides(["run_name=null"], {})[-1])
    # Hydra's options are read by Hydra's own parser: option values are not overrides, and
    # options that only show something need no name.
    assert prepare_overrides(["-cd", "/tmp/a=b", "--cfg=job", "seed=1"], {}) == [
        "-cd", "/tmp/a=b", "--cfg=job", "seed=1"]  # fmt: skip
    assert prepare_overrides(["--help"], {}) == ["--help"]


def test_job_folders_name_what_varies_in_command_line_order() -> None:
    name = config_module._job_dirname
    task = ["use_mlm=True", "seed=1", "train_frac=0.9"]
    assert name(2, task, ["seed"]) == "2_use_mlm=True,train_frac=0.9"
    # Nothing varies (a one-job sweep): every override names it, so two such sweeps into one
    # folder never take each other's jobs for their own.
    assert name(0, ["seed=1", "data.path=/a/b.csv"], ["seed", "data.path"]) == \
        "0_seed=1,data.path=_a_b.csv"  # fmt: skip


def test_original_environment_variables_are_defaults_the_command_line_beats() -> None:
    env = {"TT_TRAIN_FRAC": "0.25", "TT_OPTIMIZER_TYPE": "SGD", "TT_USE_MLM": "0",
           "TT_SEED": "9", "TT_LR": "0.01", "TT_BATCH_SIZE": "8", "TT_RUN_NAME": "legacy",
           "TT_DEVICE": "cpu", "TT_CHECKPOINT_DIR": "/tmp/ck"}  # fmt: skip
    overrides = legacy_env_overrides(env, ["seed=3"])
    assert "seed=9" not in overrides
    cfg = compose(*overrides, "seed=3")
    assert cfg.train_frac == 0.25 and cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.use_mlm is False and cfg.seed == 3 and cfg.optimizer.lr == 0.01
    assert cfg.trainer.batch_size == 8 and cfg.run_name == "legacy"
    assert cfg.runtime.checkpoint_dir == "/tmp/ck" and cfg.runtime.device == "cpu"


@pytest.mark.parametrize("overrides", [
    ["+experiment=search"], ["+experiment=mlm_ablation"], ["+experiment=optimizer_comparison"],
    ["hydra/sweeper=search"], ["tracking=both"], ["optimizer=sgd", "optimizer.momentum=0.5"],
    ["trainer.early_stopping=null"],
])  # fmt: skip
def test_every_preset_has_only_keys_the_schema_knows(overrides: list[str]) -> None:
    """The unknown-key check (a `+key` nothing reads) passes every preset the repo ships."""
    assert config_module.unknown_keys(compose(*overrides)) == []
    with pytest.raises(ConfigError, match=r"^unknown key optimizer\.betas:"):
        validate(compose(*overrides, "optimizer=sgd", "+optimizer.betas=[0.9,0.99]"))
