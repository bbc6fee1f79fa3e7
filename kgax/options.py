"""The options of a run: frozen dataclasses whose defaults are the only defaults.

A config file returns an `ml_collections.ConfigDict` (`default_config` gives one with every field
at its default); `parse(config)` turns it into a `RunOptions` tree, checking every value (type,
range, allowed set, cross-field) with a one-line `ConfigError` naming the field. Nothing is
written before a config parses. The model section is parsed by the model family's own `Options`
(`kgax.models.<name>.Options`); docs/configuration.md lists every field (`python -m
kgax.options --markdown` regenerates it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import ml_collections

from kgax import evaluate


class ConfigError(ValueError):
  """A config file, override or value that cannot be used; the message names it."""


def _check(cond: bool, field: str, value, expected: str):
  if not cond:
    raise ConfigError(f"config.{field}={value!r}: expected {expected}")


def positive(section: str, obj, *names: str):
  for name in names:
    value = getattr(obj, name)
    _check(value > 0, f"{section}.{name}", value, "a positive number")


def non_negative(section: str, obj, *names: str):
  for name in names:
    value = getattr(obj, name)
    _check(value >= 0, f"{section}.{name}", value, "a number >= 0")


def one_of(section: str, obj, name: str, allowed):
  value = getattr(obj, name)
  _check(value in allowed, f"{section}.{name}", value, f"one of {tuple(allowed)}")


def fraction(section: str, obj, *names: str, upper_open: bool = True):
  for name in names:
    value = getattr(obj, name)
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    _check(ok, f"{section}.{name}", value, "a number in [0, 1)" if upper_open else "[0, 1]")


KG_CONTROLS = ("full", "none", "shuffled")


@dataclasses.dataclass(frozen=True)
class DataOptions:
  """What is trained on: the dataset, its split, and the data-side controls."""
  name: str = "ml-100k-kg"          # registered name (kgax data fetch) or a folder in any format
  split_seed: int = 2026
  test_fraction: float = 0.2        # raw data only; pre-split data keeps its test set
  valid_fraction: float = 0.1       # carved out of train, per user
  min_rating: float | None = None   # MovieLens: ratings at or above it are positives (None: all)
  aux_from: str = ""                # folder whose aux facts (same user and item ids) are added
  cold_items: float = 0.0           # fraction of items whose pairs all go to test (cold start)
  kg: str = "full"                  # full | none (interactions only) | shuffled (tails permuted
                                    # within each relation, degrees kept): the KG controls
  aux: bool = True                  # False: drop every aux fact (the no-aux control)
  control_seed: int = 0             # seed of the shuffled-KG control

  def __post_init__(self):
    _check(bool(self.name), "data.name", self.name, "a dataset name or folder")
    fraction("data", self, "test_fraction", "valid_fraction", "cold_items")
    one_of("data", self, "kg", KG_CONTROLS)


@dataclasses.dataclass(frozen=True)
class StartOptions:
  """Where the parameters start: at random, or from a trained workdir (KGAT's protocol)."""
  pretrained: str = ""     # workdir of a finished MF or LightGCN run on the same data whose user
                           # and item rows start the node table; "{seed}" becomes the run's seed
  scale: float = 1.0       # pretrained rows times this (the same ranking; normalised layer
                           # outputs weigh 1 / scale^2 as much at the start)
  spread: int = 0          # > 0: rows the pretrained run had no vector for (KG entities, aux
                           # nodes, items without a training pair) start as the mean of their
                           # pretrained neighbours, spread this many hops
  neutral: str = ""        # "" (as initialised) | mean | zero: the model's added modules start
                           # neutral (kgat: attention as the mean aggregator, or with zero
                           # messages; the fusion as the identity)

  def __post_init__(self):
    positive("start", self, "scale")
    non_negative("start", self, "spread")
    one_of("start", self, "neutral", ("", "mean", "zero"))


LR_SCHEDULES = ("constant", "cosine")
SCHEDULES = ("alternate", "joint")


@dataclasses.dataclass(frozen=True)
class OptimOptions:
  """Adam for the CF and the KG phase, and the L2 coefficients."""
  lr: float = 1e-3
  kg_lr: float = 1e-3
  l2: float = 1e-2                  # lambda on the CF batch's embeddings (selected on validation;
                                    # the paper's 1e-5 is the paper recipe's)
  kg_l2: float = 1e-5
  schedule: str = "alternate"       # alternate (CF then KG phase, own Adam states) | joint
  lr_schedule: str = "constant"     # constant | cosine (warm-up, then decay over train.epochs)
  warmup_epochs: float = 0.0
  final_lr_fraction: float = 0.0    # cosine: the last step's lr as a fraction of lr

  def __post_init__(self):
    positive("optim", self, "lr", "kg_lr")
    non_negative("optim", self, "l2", "kg_l2", "warmup_epochs")
    fraction("optim", self, "final_lr_fraction", upper_open=False)
    one_of("optim", self, "schedule", SCHEDULES)
    one_of("optim", self, "lr_schedule", LR_SCHEDULES)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
  """The loop: batches, evaluation cadence, early stopping, checkpoints, devices."""
  epochs: int = 200
  batch_size: int = 1024
  kg_batch_size: int = 2048
  train_item_negatives: bool = False  # BPR negatives only from items with a training pair
  steps_per_call: int = 16            # optimizer steps per jitted call (lax.scan)
  eval_every: int = 5                 # epochs between validations
  patience: int = 10                  # validations without improvement before stopping
  select_metric: str = "recall@20"
  log_test: bool = False              # also log test metrics at each validation (curves only)
  eval_start: bool = False            # also validate before the first step (a fine-tune can
                                      # keep its start)
  keep_checkpoints: int = 2
  distributed: bool = False           # jax.distributed.initialize() for multi-host runs
  tensorboard: bool = True            # TensorBoard event files beside metrics.jsonl (when the
                                      # optional writer is installed)

  def __post_init__(self):
    positive("train", self, "epochs", "batch_size", "kg_batch_size", "steps_per_call",
             "eval_every", "patience", "keep_checkpoints")


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """Full-ranking evaluation."""
  ks: tuple[int, ...] = (20, 40, 60, 80, 100)
  batch_size: int = 256

  def __post_init__(self):
    _check(len(self.ks) > 0 and all(k > 0 for k in self.ks), "eval.ks", self.ks,
           "positive cut-offs")
    positive("eval", self, "batch_size")


SECTIONS = {"data": DataOptions, "start": StartOptions, "optim": OptimOptions,
            "train": TrainOptions, "eval": EvalOptions}


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """A whole run, parsed: `name` labels it in tables (e.g. a variant such as no_aux)."""
  seed: int
  name: str
  data: DataOptions
  model: Any          # the model family's Options
  start: StartOptions
  optim: OptimOptions
  train: TrainOptions
  eval: EvalOptions

  def __post_init__(self):
    metric, _, k = self.train.select_metric.partition("@")
    _check(metric in evaluate.RANKING_METRICS and k.isdigit() and int(k) in self.eval.ks,
           "train.select_metric", self.train.select_metric,
           f"METRIC@K with METRIC in {evaluate.RANKING_METRICS} and K in eval.ks {self.eval.ks}")
    if self.start.neutral:
      _check(hasattr(self.model_lib, "neutral_start"), "start.neutral", self.start.neutral,
             f"'' ({self.model.name} has no neutral start)")

  @property
  def model_lib(self):
    from kgax import models
    return models.get(self.model.name)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _coerce(value, hint, field: str):
  """`value` as the annotated type `hint`, or a ConfigError naming `field`."""
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    args = typing.get_args(hint)
    if value is None and type(None) in args:
      return None
    (hint,) = [a for a in args if a is not type(None)]
    origin = typing.get_origin(hint)
  if origin is tuple:
    (item, _) = typing.get_args(hint)
    if not isinstance(value, (tuple, list)):
      raise ConfigError(f"config.{field}={value!r}: expected a tuple of {item.__name__}")
    return tuple(_coerce(v, item, field) for v in value)
  if hint is bool:
    if not isinstance(value, bool):
      raise ConfigError(f"config.{field}={value!r}: expected true or false")
    return value
  if hint is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f"config.{field}={value!r}: expected an integer")
    return value
  if hint is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
      raise ConfigError(f"config.{field}={value!r}: expected a number")
    return float(value)
  if hint is str:
    if not isinstance(value, str):
      raise ConfigError(f"config.{field}={value!r}: expected a string")
    return value
  return value


def parse_section(cls, values, section: str):
  """`cls(**values)` with every field type-checked; unknown and missing fields are errors."""
  values = dict(values)
  hints = typing.get_type_hints(cls)
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(values) - set(names))
  if unknown:
    raise ConfigError(f"config.{section}.{unknown[0]}: no such field (expected one of "
                      f"{', '.join(names)})")
  kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
  try:
    return cls(**kwargs)
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:
    raise ConfigError(str(e)) from None


def _plain(x):
  if isinstance(x, ml_collections.ConfigDict):
    return {k: _plain(v) for k, v in x.items()}
  if isinstance(x, dict):
    return {k: _plain(v) for k, v in x.items()}
  if isinstance(x, list):
    return tuple(_plain(v) for v in x)
  return x


def parse(config: ml_collections.ConfigDict | dict) -> RunOptions:
  """The config as a checked `RunOptions` (one-line ConfigError on the first bad value)."""
  from kgax import models
  c = _plain(config)
  expected = {"seed", "name", "model", *SECTIONS}
  unknown = sorted(set(c) - expected)
  if unknown:
    raise ConfigError(f"config.{unknown[0]}: no such field (expected one of "
                      f"{', '.join(sorted(expected))})")
  model = c.get("model", {})
  if not isinstance(model, dict) or "name" not in model:
    raise ConfigError("config.model.name: missing (the model family, e.g. kgat, mf, lightgcn)")
  try:
    lib = models.get(model["name"])
  except ValueError as e:
    raise ConfigError(str(e)) from None
  sections = {k: parse_section(cls, c.get(k, {}), k) for k, cls in SECTIONS.items()}
  seed = _coerce(c.get("seed", 0), int, "seed")
  name = _coerce(c.get("name", model["name"]), str, "name")
  try:
    return RunOptions(seed=seed, name=name, model=parse_section(lib.Options, model, "model"),
                      **sections)
  except ConfigError:
    raise
  except ValueError as e:
    raise ConfigError(str(e)) from None


def default_config(model: str, dataset: str = DataOptions.name) -> ml_collections.ConfigDict:
  """A ConfigDict with every field at its default for the model family `model`."""
  from kgax import models
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.name = model
  for key, cls in SECTIONS.items():
    c[key] = ml_collections.ConfigDict(dataclasses.asdict(cls()))
  c.model = ml_collections.ConfigDict(dataclasses.asdict(models.get(model).Options()))
  c.data.name = dataset
  # placeholders keep the type of None-valued fields for --config overrides
  c.data.min_rating = ml_collections.config_dict.placeholder(float)
  return c


def parse_arg(arg: str | None, **defaults: str) -> types.SimpleNamespace:
  """A config file's argument "key=value,key=value" over `defaults` (unknown keys are errors)."""
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, eq, value = item.partition("=")
    if key not in out or not eq:
      raise ConfigError(f"config argument {item!r}: expected KEY=VALUE with KEY in "
                        f"{sorted(out)}")
    out[key] = value
  return types.SimpleNamespace(**out)


def _field_rows(cls, section: str):
  import inspect
  source = inspect.getsource(cls).splitlines()
  comments, current = {}, None
  for line in source:
    stripped = line.strip()
    head = stripped.split("#")[0]
    if ":" in head and "=" in head and not stripped.startswith(("def ", "#", '"')):
      current = head.split(":")[0].strip()
      comments[current] = stripped.partition("#")[2].strip() if "#" in stripped else ""
    elif stripped.startswith("#") and current:
      comments[current] += " " + stripped[1:].strip()
    elif not stripped.startswith("#"):
      current = None if not stripped or stripped.startswith(("def ", "@")) else current
  for f in dataclasses.fields(cls):
    yield f"{section}.{f.name}", repr(f.default), comments.get(f.name, "")


def markdown() -> str:
  """docs/configuration.md: every field of every section and model family, with its default."""
  from kgax import models
  lines = ["# Configuration", "",
           "Generated by `python -m kgax.options --markdown > docs/configuration.md` from the",
           "options dataclasses (kgax/options.py and each model's `Options`), which hold the only",
           "defaults. A config file (`configs/*.py`) returns these fields; `--config.a.b=value`",
           "overrides one; every value is checked before anything is written.", "",
           "| field | default | meaning |", "|---|---|---|",
           "| `seed` | `0` | parameter initialisation and sampling |",
           "| `name` | the model family | the run's label in tables (e.g. a variant) |"]
  for key, cls in SECTIONS.items():
    lines += [f"| `{f}` | `{d}` | {c} |" for f, d, c in _field_rows(cls, key)]
  for name in models.NAMES:
    lib = models.get(name)
    lines += ["", f"## model: {name}", "", (lib.Options.__doc__ or "").strip().splitlines()[0],
              "", "| field | default | meaning |", "|---|---|---|"]
    lines += [f"| `{f}` | `{d}` | {c} |" for f, d, c in _field_rows(lib.Options, "model")]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  import sys
  if sys.argv[1:] != ["--markdown"]:
    raise SystemExit("usage: python -m kgax.options --markdown")
  print(markdown(), end="")
