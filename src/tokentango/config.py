"""The config schema: types for `conf/`, where every value lives.

Hydra merges the YAML files in `conf/` onto these dataclasses, so a wrong type or an
unknown key fails at composition with the key's name (and `validate` finds a key Hydra's
`+key=value` added past the schema). The dataclasses hold types only
(every field is MISSING here); the values, defaults included, are in `conf/` alone. Range
checks OmegaConf cannot express live in `validate`, which runs before any work starts.

The config's nodes split what a run *is* from how it is *run*:
- `seed`, `use_mlm`, `train_frac`, `optimizer`, `objective`, `data`, `model`, `trainer`
  change results: the report groups runs by them and a resumed run keeps them;
- `runtime` changes only speed and where files go (device, precision, threads, progress
  bar, evaluation batch size, folders): the report ignores it and a resume may change it;
- `tracking` only adds places the same figures are written to (TensorBoard, MLflow), so it
  is treated as `runtime` is.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


class ConfigError(ValueError):
    """A config value that composes but cannot be used; the message names the key."""


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"


class Tracker(StrEnum):
    tensorboard = "tensorboard"
    mlflow = "mlflow"


class DataSplit(StrEnum):
    random = "random"  # a stratified random split of the rows
    domain = "domain"  # whole domains per split: no site on two sides


class Schedule(StrEnum):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"


@dataclass
class AdamConf:  # torch.optim.Adam and AdamW
    _target_: str = MISSING
    lr: float = MISSING
    betas: list[float] = MISSING
    eps: float = MISSING
    weight_decay: float = MISSING


@dataclass
class SGDConf:
    _target_: str = MISSING
    lr: float = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING
    weight_decay: float = MISSING


@dataclass
class ObjectiveConf:
    mask_prob: float = MISSING
    mlm_weight: float = MISSING


@dataclass
class DataConf:
    name: str = MISSING
    path: str | None = MISSING
    sample_rows: int = MISSING
    sample_version: int = MISSING
    seed: int = MISSING
    val_frac: float = MISSING
    test_frac: float = MISSING
    # The tokenizer's settings: they change the cached token ids, so they key the cache.
    vocab_size: int = MISSING
    max_length: int = MISSING
    tokenizer_rows: int | None = MISSING
    split: DataSplit = MISSING
    # After loading: the training split cut to this many rows (a seeded sample); no cache.
    train_rows: int | None = MISSING


@dataclass
class BertConf:  # the transformer encoders (model=small|original)
    name: str = MISSING
    d_model: int = MISSING
    n_heads: int = MISSING
    n_layers: int = MISSING
    d_ff: int = MISSING
    dropout: float = MISSING
    activation: str = MISSING
    norm_first: bool = MISSING
    init_std: float = MISSING


@dataclass
class TfidfLRConf:  # model=tfidf_lr: TF-IDF over token-id n-grams + logistic regression
    name: str = MISSING
    ngram_range: list[int] = MISSING
    min_df: int = MISSING
    max_features: int | None = MISSING
    C: list[float] = MISSING
    max_iter: int = MISSING
    # The encoders' keys, unused here (null): one sweep over model=small,tfidf_lr can set
    # them for its encoder jobs (`model.d_model=128`) without failing the baseline's.
    d_model: int | None = MISSING
    n_heads: int | None = MISSING
    n_layers: int | None = MISSING
    d_ff: int | None = MISSING
    dropout: float | None = MISSING
    activation: str | None = MISSING
    norm_first: bool | None = MISSING
    init_std: float | None = MISSING


@dataclass
class EarlyStoppingConf:
    threshold: float = MISSING
    patience: int = MISSING


@dataclass
class TrainerConf:
    batch_size: int = MISSING
    epochs: int = MISSING
    max_steps: int | None = MISSING
    eval_every: int = MISSING
    early_stopping: EarlyStoppingConf | None = MISSING
    grad_clip: float | None = MISSING
    keep_last: int = MISSING


@dataclass
class RuntimeConf:
    device: Device = MISSING
    precision: Precision = MISSING
    threads: int | None = MISSING
    progress_bar: bool | None = MISSING
    eval_batch_size: int = MISSING
    csv_chunk_rows: int = MISSING
    data_dir: str = MISSING
    experiments_dir: str = MISSING
    checkpoint_dir: str | None = MISSING


@dataclass
class SchedulerConf:
    name: Schedule = MISSING
    warmup_steps: int = MISSING
    min_lr_ratio: float = MISSING


@dataclass
class TrackingConf:
    name: str = MISSING
    trackers: list[Tracker] = MISSING
    mlflow_tracking_uri: str = MISSING
    mlflow_experiment: str | None = MISSING


@dataclass
class Config:
    optimizer: Any = MISSING
    scheduler: SchedulerConf = field(default_factory=SchedulerConf)
    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    data: DataConf = field(default_factory=DataConf)
    # Typed per choice, as the optimizer is (MODEL_SCHEMAS): conf/model/*.yaml name the schema.
    model: Any = MISSING
    trainer: TrainerConf = field(default_factory=TrainerConf)
    runtime: RuntimeConf = field(default_factory=RuntimeConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    seed: int = MISSING
    use_mlm: bool = MISSING
    train_frac: float = MISSING
    run_name: str | None = MISSING
    checkpoint: str = MISSING


# What the report groups runs by: everything but `runtime`, these (the seed is what it pools
# over; a run's name and how it was started say nothing about its settings).
REPORT_IGNORES = ("seed", "run_name", "checkpoint")
# What a resumed run takes from the command line without a word: it keeps its own name.
RESUME_IGNORES_SILENTLY = ("run_name", "checkpoint")
# How a run is run, never what it computes: the report ignores them, a resume may change them.
RUNTIME_NODES = ("runtime", "tracking")
# What a resumed run may change besides those: how long it trains.
BUDGET_KEYS = ("trainer.max_steps", "trainer.epochs")


def is_runtime_key(key: str) -> bool:
    """A key of `runtime` or `tracking` (or the node itself): speed, folders and trackers."""
    return any(key == node or key.startswith(node + ".") for node in RUNTIME_NODES)


def register_configs() -> None:
    # Stored outside the config groups, so `--help` lists only real choices.
    cs = ConfigStore.instance()
    cs.store(name="tokentango_schema", node=Config)
    cs.store(name="adam_schema", node=AdamConf)
    cs.store(name="sgd_schema", node=SGDConf)
    cs.store(name="bert_schema", node=BertConf)
    cs.store(name="tfidf_lr_schema", node=TfidfLRConf)


# --- renamed keys ---------------------------------------------------------------------

# Keys of earlier versions -> their home now. Old run folders and checkpoints are read
# through `upgrade_config`, and the old names still work on the command line (`device=`
# is the documented short form of `runtime.device=`).
RENAMED_KEYS = {
    "device": "runtime.device",
    "checkpoint_dir": "runtime.checkpoint_dir",
    "trainer.precision": "runtime.precision",
    "trainer.progress_bar": "runtime.progress_bar",
    "trainer.eval_batch_size": "runtime.eval_batch_size",
    "data.chunk_rows": "runtime.csv_chunk_rows",
    "paths.data_dir": "runtime.data_dir",
    "paths.experiments_dir": "runtime.experiments_dir",
    "model.vocab_size": "data.vocab_size",
    "model.max_length": "data.max_length",
}
DROPPED_KEYS = ("paths",)
# Keys added later -> the value that does what versions before them did: a stored config
# without one is read with it. (A resumed or evaluated run reads the data cache it was
# trained on while that is there: see data.load_run_dataset.)
ADDED_KEYS = {
    "data.tokenizer_rows": None,  # every training row taught the tokenizer
    "data.split": "random",  # rows split at random, domains on every side
    "data.sample_version": 1,  # the embedded corpus of independent Zipf words
    "data.train_rows": None,  # the whole training split
    "scheduler.name": "constant",  # the learning rate stayed at optimizer.lr
    "scheduler.warmup_steps": 0,
    "scheduler.min_lr_ratio": 1.0,
    "model.init_std": 0.02,  # BERT's normal(0, 0.02) initialisation
}


def upgraded_key(key: str) -> str | None:
    """A dotted key of an earlier layout as it is named now (None: no longer a key)."""
    if key in RENAMED_KEYS:
        return RENAMED_KEYS[key]
    return None if key.split(".", 1)[0] in DROPPED_KEYS else key


def upgrade_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys of any earlier layout named as today (where both are there, today's
    wins); keys that are gone are left out, keys added since get their old behaviour."""
    upgraded = {}
    for key, value in flat.items():
        new = upgraded_key(key)
        if new is not None and (new == key or new not in flat):
            upgraded[new] = value
    if any(key.startswith("data.") for key in upgraded):  # a run's config, not a part
        added = dict(ADDED_KEYS)
        if upgraded.get("model.name") in BASELINE_MODELS:  # a baseline's encoder keys are null
            added.update({k: None for k in added if k.startswith("model.")})
        upgraded = {**added, **upgraded}
    return upgraded


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config (plain dict) of any earlier version in today's layout."""
    nested: dict[str, Any] = {}
    for key, value in upgrade_flat(_flat(config)).items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return nested


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value of a nested dict (an empty one has no keys)."""
    if not (isinstance(node, dict) and node):
        return {prefix[:-1]: node} if prefix else {}
    return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """Dotted key -> resolved leaf value of a config (what trackers log as parameters)."""
    return _flat(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def setting_differences(stored: dict[str, Any], cfg: DictConfig) -> list[str]:
    """`key: A there, B here` for every setting that makes a run (all but `runtime` and
    `tracking`, its name and how it started) in which a stored config differs from `cfg`."""
    there = upgrade_flat(_flat(stored))
    here = flat_config(cfg)
    return [f"{k}: {there.get(k)} there, {here.get(k)} here" for k in sorted(there.keys() | here)
            if not is_runtime_key(k) and k not in RESUME_IGNORES_SILENTLY
            and there.get(k) != here.get(k)]  # fmt: skip


def parse_overrides(overrides: list[str]) -> list[Any]:
    """Hydra's own parse of command-line overrides (quotes, lists and sweeps as Hydra
    reads them); ConfigError naming the override that does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.append(parser.parse_override(text))
        except HydraException as err:
            why = str(err).strip().splitlines()[0]
            raise ConfigError(f"cannot parse override {text!r}: {why}") from err
    return parsed


def rename_overrides(overrides: list[str]) -> list[str]:
    """Overrides with old key names moved to their home now; everything else unchanged."""
    renamed = []
    for text, parsed in zip(overrides, parse_overrides(overrides), strict=True):
        new = RENAMED_KEYS.get(parsed.key_or_group)
        if new is not None and parsed.package is None:
            prefix = text[: len(text) - len(text.lstrip("+~"))]
            text = f"{prefix}{new}{text[len(prefix) + len(parsed.key_or_group):]}"
        renamed.append(text)
    return renamed


def override_keys(overrides: list[str], sweeps: bool | None = None) -> set[str]:
    """The keys the overrides set (without +/~), only sweeps or only single values when
    `sweeps` says so; Hydra's `hydra.*` settings excluded."""
    return {
        o.key_or_group
        for o in parse_overrides(overrides)
        if not o.is_hydra_override() and (sweeps is None or o.is_sweep_override() == sweeps)
    }


# --- composing and validating ---------------------------------------------------------


def default_experiments_dir() -> Path:
    """`runtime.experiments_dir` as conf/ sets it (no Hydra composition): where the tools
    look for runs and checkpoints by default."""
    runtime = OmegaConf.load(CONF_DIR / "runtime" / "default.yaml")
    return Path(runtime.experiments_dir)


def compose_config(overrides: list[str] | None = None, with_hydra: bool = False) -> DictConfig:
    """The config `python -m tokentango.train <overrides>` runs with: for notebooks,
    benchmarks and tests (the `hydra` node only with `with_hydra`)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=rename_overrides(overrides or []),
                       return_hydra_config=with_hydra)  # fmt: skip


def _check(ok: bool, key: str, value: object, why: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config value {key}={value!r}: {why}")


# (key, test, why) for every range OmegaConf's types cannot express.
_RANGES: list[tuple[str, Any, str]] = [
    ("train_frac", lambda v: 0.0 < v <= 1.0, "must be in (0, 1]"),
    ("objective.mask_prob", lambda v: 0.0 < v < 1.0, "must be in (0, 1)"),
    ("objective.mlm_weight", lambda v: v >= 0.0, "must be >= 0"),
    *[(f"trainer.{k}", lambda v: v >= 1, "must be >= 1")
      for k in ("batch_size", "epochs", "eval_every", "keep_last")],
    ("trainer.max_steps", lambda v: v is None or v >= 1, "must be >= 1 or null"),
    ("trainer.grad_clip", lambda v: v is None or v > 0, "must be > 0 or null"),
    ("trainer.early_stopping.threshold", lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    ("trainer.early_stopping.patience", lambda v: v >= 1, "must be >= 1"),
    ("scheduler.warmup_steps", lambda v: v >= 0, "must be >= 0"),
    ("scheduler.min_lr_ratio", lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    ("data.sample_rows", lambda v: v >= 100, "must be >= 100"),
    ("data.sample_version", lambda v: v == 2, "this version generates the embedded corpus v2 "
     "only (runs on v1 still load their own data cache)"),
    ("data.val_frac", lambda v: 0.0 < v < 0.5, "must be in (0, 0.5)"),
    ("data.test_frac", lambda v: 0.0 < v < 0.5, "must be in (0, 0.5)"),
    ("data.max_length", lambda v: v >= 2, "must be >= 2"),
    ("data.vocab_size", lambda v: v >= 100, "must be >= 100"),
    ("data.tokenizer_rows", lambda v: v is None or v >= 1, "must be >= 1 or null"),
    ("data.train_rows", lambda v: v is None or v >= 2, "must be >= 2 or null"),
    ("data.path", lambda v: v is None or Path(v).exists(), "no such file"),
    ("data.path", lambda v: v is None or Path(v).is_file(), "a folder, not a CSV file"),
    ("runtime.eval_batch_size", lambda v: v >= 1, "must be >= 1"),
    ("runtime.csv_chunk_rows", lambda v: v >= 1, "must be >= 1"),
    ("runtime.threads", lambda v: v is None or v >= 1, "must be >= 1 or null"),
    ("optimizer.lr", lambda v: v is not None and v > 0, "must be > 0"),
]  # fmt: skip


def validate(cfg: DictConfig) -> None:
    """Keys and range checks; raises ConfigError naming the first bad key."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]}: no schema has it, so nothing would read "
                          "it (a typo, or a `+` override? `--cfg job` shows every key)")
    check_run_name(cfg.run_name)
    for key, ok, why in _RANGES:
        if key.startswith("trainer.early_stopping.") and cfg.trainer.early_stopping is None:
            continue
        value = OmegaConf.select(cfg, key)
        _check(ok(value), key, value, why)
    if is_baseline(cfg):
        validate_baseline(cfg)
        return
    for key, ok, why in _BERT_RANGES:
        value = OmegaConf.select(cfg, key)
        _check(ok(value), key, value, why)
    m = cfg.model
    _check(m.d_model % m.n_heads == 0, "model.n_heads", m.n_heads,
           f"must divide model.d_model={m.d_model}")  # fmt: skip


_BERT_RANGES: list[tuple[str, Any, str]] = [
    *[(f"model.{k}", lambda v: v >= 1, "must be >= 1")
      for k in ("d_model", "n_heads", "n_layers", "d_ff")],
    ("model.dropout", lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    ("model.activation", lambda v: v in ("relu", "gelu"), "must be relu or gelu"),
    ("model.init_std", lambda v: v > 0, "must be > 0"),
]  # fmt: skip

# model.name of the baselines (no transformer, no checkpoint: tokentango.baseline).
BASELINE_MODELS = ("tfidf_lr",)


def is_baseline(cfg: DictConfig) -> bool:
    """Whether a config trains a baseline (tokentango.baseline) instead of an encoder."""
    return OmegaConf.select(cfg, "model.name") in BASELINE_MODELS


def _ngram_range_ok(v: Any) -> bool:
    return len(v) == 2 and 1 <= v[0] <= v[1]


_BASELINE_RANGES: list[tuple[str, Any, str]] = [
    ("model.ngram_range", _ngram_range_ok, "must be [min_n, max_n] with 1 <= min_n <= max_n"),
    ("model.min_df", lambda v: v >= 1, "must be >= 1 (documents a feature occurs in)"),
    ("model.max_features", lambda v: v is None or v >= 1, "must be >= 1 or null"),
    ("model.C", lambda v: len(v) >= 1, "must list at least one value"),
    ("model.C", lambda v: all(c > 0 for c in v), "every value must be > 0"),
    ("model.max_iter", lambda v: v >= 1, "must be >= 1"),
]  # fmt: skip


def validate_baseline(cfg: DictConfig) -> None:
    """A baseline's own keys, and the settings that mean nothing without an encoder."""
    for key, ok, why in _BASELINE_RANGES:
        value = OmegaConf.select(cfg, key)
        shown = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        _check(ok(value), key, shown, why)
    name = cfg.model.name
    if cfg.use_mlm:
        raise ConfigError(f"use_mlm=true has no meaning for model={name}: it has no "
                          "masked-language-model objective (leave use_mlm out, or false)")
    if cfg.checkpoint != "train":
        raise ConfigError(f"invalid config value checkpoint={cfg.checkpoint!r}: a model={name} "
                          "run writes no checkpoint, so there is nothing to resume; rerun it "
                          "(it takes seconds)")


# The optimizer node is typed `Any` (its keys depend on the optimizer): its schema by class.
OPTIMIZER_SCHEMAS = {"torch.optim.Adam": AdamConf, "torch.optim.AdamW": AdamConf,
                     "torch.optim.SGD": SGDConf}  # fmt: skip


# The model node is typed `Any` too (an encoder's keys are not a baseline's): its schema by
# name; a name not listed is an encoder's (a preset renamed with `model.name=`).
MODEL_SCHEMAS = {"small": BertConf, "original": BertConf, "tfidf_lr": TfidfLRConf}


def model_schema(name: Any) -> type:
    return MODEL_SCHEMAS.get(str(name), BertConf)


def _schema_of(type_: Any) -> type | None:
    """The dataclass a field holds (through `X | None`), else None."""
    return next((t for t in (type_, *typing.get_args(type_)) if dataclasses.is_dataclass(t)),
                None)  # fmt: skip


def unknown_keys(cfg: DictConfig, schema: type = Config, prefix: str = "") -> list[str]:
    """Dotted keys of `cfg` that no schema has. Hydra's `+key=value` adds a key whatever
    the schema says; such a key would be carried along and read by nothing."""
    hints = typing.get_type_hints(schema)
    found = []
    for key in cfg:
        name = f"{prefix}{key}"
        if key not in hints:
            found.append(name)
            continue
        node = cfg._get_node(key)
        if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
            continue
        sub = _schema_of(hints[key])
        if sub is None and name == "optimizer":
            sub = OPTIMIZER_SCHEMAS.get(str(node.get("_target_")))
        if sub is None and name == "model":
            sub = model_schema(node.get("name"))
        if sub is not None:
            found += unknown_keys(node, sub, f"{name}.")
    return found


def check_run_name(name: str | None) -> None:
    """A run's name becomes part of its folder's: a path in it could write anywhere."""
    if name is not None and ("/" in name or "\\" in name):
        raise ConfigError(f"invalid config value run_name={name!r}: must be a plain name, "
                          "without '/' or '\\' (it names the run's folder)")


def known_key(key: str, schema: type = Config) -> bool:
    """Whether a dotted key is in the schema (anything below an untyped node counts)."""
    name, _, rest = key.partition(".")
    hints = typing.get_type_hints(schema)
    if name not in hints:
        return False
    if schema is Config and name == "model" and rest:  # typed per choice: any model's key
        return any(known_key(rest, s) for s in set(MODEL_SCHEMAS.values()))
    sub = _schema_of(hints[name])
    return not rest or sub is None or known_key(rest, sub)


def default_choice(group: str) -> str | None:
    """The option conf/config.yaml's defaults list picks for a group."""
    for entry in OmegaConf.load(CONF_DIR / "config.yaml").get("defaults", []):
        if isinstance(entry, DictConfig) and group in entry:
            return str(entry[group])
    return None


def check_model_keys(parsed: list[Any]) -> None:
    """`model.KEY=...` for a model choice whose schema lacks KEY (`model=tfidf_lr
    model.d_model=16`) as one line, before Hydra's own multi-line composition error."""
    choices = [v for o in parsed if o.key_or_group == "model" and not o.package
               for v in (o.sweep_string_iterator() if o.is_choice_sweep()
                         else [] if o.is_sweep_override() else [o.value()])]  # fmt: skip
    for o in parsed:
        key = o.key_or_group
        if not key.startswith("model.") or o.is_hydra_override() or o.package:
            continue
        for choice in [str(c) for c in choices] or [default_choice("model")]:
            schema = MODEL_SCHEMAS.get(str(choice))
            if schema is not None and not known_key(key.partition(".")[2], schema):
                keys = ", ".join(f.name for f in dataclasses.fields(schema))
                raise ConfigError(f"unknown key {key} for model={choice}: its keys are {keys}")


def check_override_keys(overrides: list[str]) -> None:
    """An unknown key or group option (`bogus=1`, `+nonsense_key=1`, `optimizer=rmsprop`,
    a sweep holding one) as one line before Hydra starts: Hydra's own message spans lines,
    and Hydra's `+` adds any key."""
    parsed = parse_overrides(overrides)
    for o in parsed:
        if o.is_hydra_override() or o.package:
            continue
        group = CONF_DIR / o.key_or_group
        if not group.is_dir():
            if not known_key(o.key_or_group):
                raise ConfigError(f"unknown key {o.key_or_group}: no schema has it (a typo? "
                                  "`--cfg job` shows every key)")
            continue
        if o.is_delete() or (o.is_sweep_override() and not o.is_choice_sweep()):
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        choices = sorted(p.stem for p in group.glob("*.yaml"))
        for value in values:
            if value is not None and str(value) not in choices:
                raise ConfigError(f"unknown {o.key_or_group} {str(value)!r}: the choices are "
                                  f"{', '.join(choices)} (conf/{o.key_or_group}/)")
    check_model_keys(parsed)


# --- the original's environment variables ---------------------------------------------

def quote_value(value: str) -> str:
    """A value Hydra's override parser reads as one plain string (commas, quotes and
    brackets included)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The original tokentango's environment variables, still honoured as defaults.
LEGACY_ENV = {
    "TT_TRAIN_FRAC": "train_frac", "TT_BATCH_SIZE": "trainer.batch_size", "TT_LR": "optimizer.lr",
    "TT_OPTIMIZER_TYPE": "optimizer", "TT_USE_MLM": "use_mlm", "TT_SEED": "seed",
    "TT_DEVICE": "runtime.device", "TT_RUN_NAME": "run_name",
    "TT_CHECKPOINT_DIR": "runtime.checkpoint_dir", "MODEL_CHECKPOINT_PATH": "checkpoint",
}  # fmt: skip


_PATH_LIKE = ("run_name", "runtime.checkpoint_dir", "checkpoint")


def user_overrides(overrides: list[str], environ: dict[str, str]) -> list[str]:
    """What a command line's overrides mean: old key names moved to their homes, and the
    original's environment variables as defaults the command line beats."""
    overrides = rename_overrides(overrides)
    return [*legacy_env_overrides(environ, overrides), *overrides]


def legacy_env_overrides(environ: dict[str, str], overrides: list[str]) -> list[str]:
    """Overrides from the TT_* variables for keys the (renamed) overrides do not set."""
    given = override_keys(overrides)
    env_overrides = []
    for var, key in LEGACY_ENV.items():
        value = environ.get(var, "").strip()
        if not value or key in given:
            continue
        if key == "use_mlm":
            value = {"1": "true", "0": "false"}.get(value, value.lower())
        elif key == "optimizer":
            value = value.lower()
        elif key in _PATH_LIKE:
            value = quote_value(value)  # a path or name may hold commas: never a sweep
        env_overrides.append(f"{key}={value}")
    return env_overrides


def _register_resolvers() -> None:
    from tokentango import rundir

    OmegaConf.register_new_resolver("tt.project_root", lambda: str(PROJECT_ROOT), replace=True)
    # Cached per config object: the run folder and the job see the same value.
    OmegaConf.register_new_resolver(
        "tt.run_name", lambda given: given or rundir.new_run_name(), use_cache=True, replace=True
    )
    OmegaConf.register_new_resolver(
        "tt.uid", lambda: secrets.token_hex(2), use_cache=True, replace=True
    )
    OmegaConf.register_new_resolver("tt.job_dirname", _job_dirname, replace=True)


def _job_dirname(num: int, task_overrides: list[str], fixed_keys: list[str]) -> str:
    """A sweep job's folder name: the overrides that vary (`fixed_keys`, the ones given
    once, are the same for every job; `tokentango.run` lists them)."""
    from tokentango import rundir

    task = list(task_overrides)
    keys = [o.key_or_group for o in parse_overrides(task)]
    varying = [o for o, key in zip(task, keys, strict=True) if key not in set(fixed_keys)]
    return rundir.job_dirname(num, task, varying)


register_configs()
_register_resolvers()
