"""Structured configs: the schema behind `conf/`.

Hydra merges the YAML files in `conf/` onto these dataclasses, so a wrong type or an
unknown key fails at composition with the key's name. Range checks OmegaConf cannot
express live in `validate`, which the entry point calls before any work starts.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

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


@dataclass
class AdamConf:
    _target_: str = "torch.optim.Adam"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class AdamWConf(AdamConf):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class SGDConf:
    _target_: str = "torch.optim.SGD"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0


@dataclass
class ObjectiveConf:
    # Probability that a real token is selected for the MLM loss (BERT: 0.15).
    mask_prob: float = 0.15
    mlm_weight: float = 1.0


@dataclass
class DataConf:
    name: str = "sample"
    # CSV in FakeNewsCorpus's schema; null means the generated embedded corpus.
    path: str | None = None
    # Rows of the generated corpus (used only when path is null).
    sample_rows: int = 16000
    # Fixes frac-sampling, balancing and the split; independent of the run's `seed`.
    seed: int = 1234
    val_frac: float = 0.1
    test_frac: float = 0.1
    chunk_rows: int = 100_000


@dataclass
class ModelConf:
    name: str = "original"
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 6
    d_ff: int = 2048
    max_length: int = 300
    vocab_size: int = 40000
    dropout: float = 0.0
    activation: str = "relu"
    norm_first: bool = False


@dataclass
class EarlyStoppingConf:
    # Stop once val accuracy has reached `threshold` and then not improved for
    # `patience` evaluations in a row.
    threshold: float = 0.80
    patience: int = 3


@dataclass
class TrainerConf:
    batch_size: int = 32
    eval_batch_size: int = 256
    epochs: int = 8
    max_steps: int | None = None
    eval_every: int = 100
    early_stopping: EarlyStoppingConf | None = field(default_factory=EarlyStoppingConf)
    grad_clip: float | None = 1.0
    precision: Precision = Precision.fp32
    # null: on when stderr is a terminal.
    progress_bar: bool | None = None
    # Checkpoints kept per run: the newest `keep_last` plus the best on validation.
    keep_last: int = 3


@dataclass
class PathsConf:
    root: str = str(PROJECT_ROOT)
    data_dir: str = "${paths.root}/data"
    experiments_dir: str = "${paths.root}/experiments"


@dataclass
class Config:
    optimizer: Any = MISSING
    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    data: DataConf = field(default_factory=DataConf)
    model: ModelConf = field(default_factory=ModelConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    paths: PathsConf = field(default_factory=PathsConf)
    seed: int = 42
    use_mlm: bool = True
    train_frac: float = 1.0
    device: Device = Device.auto
    run_name: str | None = None
    # train (from scratch) | latest | a checkpoint file or folder: see tokentango.train.
    checkpoint: str = "train"
    # Where checkpoints go (null: the run folder's checkpoints/); `latest` looks here first.
    checkpoint_dir: str | None = None


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="tokentango_schema", node=Config)
    cs.store(group="optimizer", name="adam_schema", node=AdamConf)
    cs.store(group="optimizer", name="adamw_schema", node=AdamWConf)
    cs.store(group="optimizer", name="sgd_schema", node=SGDConf)
    cs.store(group="objective", name="objective_schema", node=ObjectiveConf)
    cs.store(group="data", name="data_schema", node=DataConf)
    cs.store(group="model", name="model_schema", node=ModelConf)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConf)


_ADJECTIVES = [
    "sleepy",
    "brave",
    "calm",
    "eager",
    "fuzzy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lively",
    "merry",
    "nimble",
    "proud",
    "quiet",
    "rapid",
    "shy",
    "sunny",
    "swift",
    "tidy",
    "witty",
    "bold",
    "clever",
    "daring",
    "fancy",
]
_ANIMALS = [
    "otter",
    "panda",
    "koala",
    "lynx",
    "heron",
    "badger",
    "falcon",
    "gecko",
    "ibex",
    "lemur",
    "marmot",
    "newt",
    "ocelot",
    "puffin",
    "quokka",
    "raven",
    "seal",
    "tapir",
    "urchin",
    "vole",
    "walrus",
    "yak",
    "zebra",
]


def new_run_name() -> str:
    """A readable, unique name such as `sleepy-otter-3f9a2c`."""
    pick = secrets.choice
    return f"{pick(_ADJECTIVES)}-{pick(_ANIMALS)}-{secrets.token_hex(3)}"


def _run_name_or_new(given: str | None) -> str:
    return given if given else new_run_name()


def safe_dirname(text: str, max_len: int = 120) -> str:
    """`text` usable as one folder name: no path separators, bounded length."""
    text = text.replace("/", "_").replace("\\", "_") or "defaults"
    if len(text) > max_len:
        text = f"{text[: max_len - 9]}~{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"
    return text


def _is_sweep(override: str) -> bool:
    value = override.split("=", 1)[-1]
    return "," in value or value.startswith(("range(", "choice(", "glob(", "interval("))


def job_dirname(num: int, task_overrides: list[str]) -> str:
    """`<job number>_<the overrides that vary across the sweep>` for a sweep job's folder.

    Overrides given once on the command line are the same for every job, so they are left
    out; what remains is what tells the jobs apart (swept on the command line, or by an
    experiment's `hydra.sweeper.params`)."""
    key = lambda override: override.lstrip("+~").split("=", 1)[0]  # noqa: E731
    fixed = {key(a) for a in sys.argv[1:] if "=" in a and not _is_sweep(a)}
    varying = [o for o in task_overrides if key(o) not in fixed]
    return safe_dirname(f"{num}_{','.join(varying or task_overrides)}")


def register_resolvers() -> None:
    # Cached per config object: the run folder and the job see the same value.
    OmegaConf.register_new_resolver("tt.run_name", _run_name_or_new, use_cache=True, replace=True)
    OmegaConf.register_new_resolver(
        "tt.uid", lambda: secrets.token_hex(2), use_cache=True, replace=True
    )
    OmegaConf.register_new_resolver("tt.job_dirname", job_dirname, replace=True)


# The original tokentango's environment variables, still honoured as defaults.
LEGACY_ENV = {
    "TT_TRAIN_FRAC": "train_frac", "TT_BATCH_SIZE": "trainer.batch_size", "TT_LR": "optimizer.lr",
    "TT_OPTIMIZER_TYPE": "optimizer", "TT_USE_MLM": "use_mlm", "TT_SEED": "seed",
    "TT_DEVICE": "device", "TT_RUN_NAME": "run_name", "TT_CHECKPOINT_DIR": "checkpoint_dir",
    "MODEL_CHECKPOINT_PATH": "checkpoint",
}  # fmt: skip


def legacy_env_overrides(environ: dict[str, str], argv: list[str]) -> list[str]:
    """Overrides from the TT_* variables for keys the command line does not set."""
    given = {a.lstrip("+").split("=", 1)[0] for a in argv if "=" in a}
    overrides = []
    for var, key in LEGACY_ENV.items():
        value = environ.get(var, "").strip()
        if not value or key in given:
            continue
        if key == "use_mlm":
            value = {"1": "true", "0": "false"}.get(value, value.lower())
        elif key == "optimizer":
            value = value.lower()
        overrides.append(f"{key}={value}")
    return overrides


def parse_cli_config(schema: type, argv: list[str]) -> Any:
    """`key=value` arguments onto a dataclass: an unknown key or a bad type names the key."""
    from omegaconf.errors import OmegaConfBaseException

    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"arguments are key=value, got {arg!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        reason = str(err).strip().splitlines()[0]
        raise ConfigError(f"invalid argument {key}: {reason}" if key else reason) from err


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The config `python -m tokentango.train <overrides>` runs with (without the hydra node):
    for notebooks, benchmarks and tests."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


def _check(ok: bool, key: str, value: object, why: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config value {key}={value!r}: {why}")


def validate(cfg: DictConfig) -> None:
    """Range checks; raises ConfigError naming the first bad key."""
    _check(0.0 < cfg.train_frac <= 1.0, "train_frac", cfg.train_frac, "must be in (0, 1]")
    t = cfg.trainer
    for key in ("batch_size", "eval_batch_size", "epochs", "eval_every"):
        _check(t[key] >= 1, f"trainer.{key}", t[key], "must be >= 1")
    _check(
        t.max_steps is None or t.max_steps >= 1,
        "trainer.max_steps",
        t.max_steps,
        "must be >= 1 or null",
    )
    _check(t.keep_last >= 1, "trainer.keep_last", t.keep_last, "must be >= 1")
    _check(
        t.grad_clip is None or t.grad_clip > 0,
        "trainer.grad_clip",
        t.grad_clip,
        "must be > 0 or null",
    )
    if t.early_stopping is not None:
        es = t.early_stopping
        _check(
            0.0 <= es.threshold <= 1.0,
            "trainer.early_stopping.threshold",
            es.threshold,
            "must be in [0, 1]",
        )
        _check(es.patience >= 1, "trainer.early_stopping.patience", es.patience, "must be >= 1")
    o = cfg.objective
    _check(0.0 < o.mask_prob < 1.0, "objective.mask_prob", o.mask_prob, "must be in (0, 1)")
    _check(o.mlm_weight >= 0.0, "objective.mlm_weight", o.mlm_weight, "must be >= 0")
    m = cfg.model
    for key in ("d_model", "n_heads", "n_layers", "d_ff"):
        _check(m[key] >= 1, f"model.{key}", m[key], "must be >= 1")
    _check(
        m.d_model % m.n_heads == 0,
        "model.n_heads",
        m.n_heads,
        f"must divide model.d_model={m.d_model}",
    )
    _check(m.max_length >= 2, "model.max_length", m.max_length, "must be >= 2")
    _check(m.vocab_size >= 100, "model.vocab_size", m.vocab_size, "must be >= 100")
    _check(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "must be in [0, 1)")
    _check(
        m.activation in ("relu", "gelu"), "model.activation", m.activation, "must be relu or gelu"
    )
    d = cfg.data
    _check(d.sample_rows >= 100, "data.sample_rows", d.sample_rows, "must be >= 100")
    _check(0.0 < d.val_frac < 0.5, "data.val_frac", d.val_frac, "must be in (0, 0.5)")
    _check(0.0 < d.test_frac < 0.5, "data.test_frac", d.test_frac, "must be in (0, 0.5)")
    _check(d.chunk_rows >= 1, "data.chunk_rows", d.chunk_rows, "must be >= 1")
    lr = cfg.optimizer.get("lr")
    _check(lr is not None and lr > 0, "optimizer.lr", lr, "must be > 0")
    if d.path is not None:
        _check(Path(d.path).is_file(), "data.path", d.path, "no such file")


register_configs()
register_resolvers()
