"""The options of a run: frozen dataclasses whose defaults are the only defaults.

A config file returns an `ml_collections.ConfigDict` (`default_config` gives one with every field
at its default); `parse(config)` turns it into a `RunOptions` tree, checking every value (type,
range, allowed set, cross-field) with a one-line `ConfigError` naming the field. Nothing is
written before a config parses. The model section is parsed by the model family's own `Options`
(`kgax.models.<name>.Options`); docs/configuration.md lists every field (`python -m
kgax.options --markdown docs/configuration.md` regenerates it).
"""

from __future__ import annotations

import dataclasses
import pathlib
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
  train_fraction: float = 1.0       # < 1: each user keeps this seeded fraction of its training
                                    # pairs, the rest are dropped (validation and test unchanged;
                                    # the sparsity study)
  kg: str = "full"                  # full | none (interactions only) | shuffled (tails permuted
                                    # within each relation, degrees kept): the KG controls
  aux: bool = True                  # False: drop every aux fact (the no-aux control)
  control_seed: int = 0             # seed of the shuffled-KG control

  def __post_init__(self):
    _check(bool(self.name), "data.name", self.name, "a dataset name or folder")
    fraction("data", self, "test_fraction", "valid_fraction", "cold_items")
    _check(0.0 < self.train_fraction <= 1.0, "data.train_fraction", self.train_fraction,
           "a number in (0, 1]")
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
  mesh: tuple[int, ...] = (-1, 1)     # devices along ("data", "model"); -1: all the others.
                                      # "model" > 1 row-shards the node tables and cuts
                                      # KGAT's and LightGCN's edges at their shard boundaries
  shard_edges: bool = False           # where edges are not cut by head (no "model" axis, or
                                      # a model without partition_edges): split them evenly
                                      # over every device of the mesh instead of replicating
  distributed: bool = False           # jax.distributed.initialize(): one process per host
  coordinator: str = ""               # host:port of process 0; "" with the two below: JAX's
  num_processes: int = 0              # own cluster detection (SLURM, TPU pods, MPI)
  process_id: int = -1
  tensorboard: bool = True            # TensorBoard event files beside metrics.jsonl (when the
                                      # optional writer is installed)

  def __post_init__(self):
    positive("train", self, "epochs", "batch_size", "kg_batch_size", "steps_per_call",
             "eval_every", "patience", "keep_checkpoints")
    _check(len(self.mesh) == 2 and all(s == -1 or s >= 1 for s in self.mesh)
           and list(self.mesh).count(-1) <= 1, "train.mesh", self.mesh,
           "(data, model): positive sizes, or -1 for one of them")
    _check(self.num_processes >= 0, "train.num_processes", self.num_processes,
           "0 (detect) or a positive count")
    _check(-1 <= self.process_id < max(self.num_processes, 1) or not self.num_processes,
           "train.process_id", self.process_id, f"-1 (detect) or 0..{self.num_processes - 1}")
    if self.coordinator or self.num_processes or self.process_id >= 0:
      _check(self.distributed, "train.distributed", self.distributed,
             "true when train.coordinator, num_processes or process_id is set")


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """Full-ranking evaluation."""
  ks: tuple[int, ...] = (20, 40, 60, 80, 100)
  batch_size: int = 256
  cold_items: str = ""    # "kg": items without a training pair are scored through their KG and
                          # aux neighbours (kgax/coldstart.py); "kg_centered": the same around
                          # the trained items' mean; "": their own rows; "auto": the one of
                          # these with the best validation metric, chosen at the end of a run
  cold_norm: float = 0.4  # with cold_items set: the quantile of the trained items' embedding
                          # norms (centered: distances from their mean) that an imputed item gets

  def __post_init__(self):
    _check(len(self.ks) > 0 and all(k > 0 for k in self.ks), "eval.ks", self.ks,
           "positive cut-offs")
    positive("eval", self, "batch_size")
    _check(self.cold_items in ("", "kg", "kg_centered", "auto"), "eval.cold_items",
           self.cold_items, "'', 'kg', 'kg_centered' or 'auto'")
    _check(0 < self.cold_norm <= 1, "eval.cold_norm", self.cold_norm, "a quantile in (0, 1]")


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
    if self.data.kg == "none" and self.kg_need:
      raise ConfigError(f"config.data.kg='none': {self.kg_need}, so it cannot train without "
                        "a KG")

  @property
  def model_lib(self):
    from kgax import models
    return models.get(self.model.name)

  @property
  def kg_phase(self) -> bool:
    """Whether training has a KG-loss phase (or, joint, a KG term in each CF step): the model
    trains a KG loss (use_kge) on triples the run keeps. A loss on KG triples alone
    (kg_triples="kg": CKE, CFKG) has none under the no-KG control data.kg='none', so the model
    trains on the interactions alone (CFKG: TransE on the interact relation; CKE: BPR-MF with
    a second, untied item row)."""
    m = self.model
    return bool(getattr(m, "use_kge", False)) and not (
        self.data.kg == "none" and getattr(m, "kg_triples", "") == "kg")

  @property
  def kg_need(self) -> str:
    """Why the run cannot train without KG triples ('' when it can): its model is built from
    them (models' NEEDS_KG) or its KG phase trains on them (kg_triples="kg")."""
    m = self.model
    if getattr(self.model_lib, "NEEDS_KG", False):
      return f"{m.name} is built from KG relations"
    if self.kg_phase and getattr(m, "kg_triples", "") == "kg":
      return f"{m.name}'s KG loss trains on KG triples"
    return ""

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
  """(dotted field, default, meaning) for every field of the dataclass `cls`.

  The meaning is the field's trailing comment with the comment lines below it that are indented
  past the field, read from the source of the class that declares the field (base classes
  included); a field without a comment gets a short stock meaning when it has one below.
  """
  import ast
  import inspect
  import io
  import textwrap
  import tokenize
  stock = {   # fields whose declaration carries no comment
      "data.split_seed": "seed of the train / validation / test split",
      "optim.lr": "Adam learning rate of the CF (BPR) steps (the joint schedule's only rate)",
      "optim.kg_lr": "Adam learning rate of the KG phase (alternate schedule)",
      "optim.kg_l2": "lambda on the KG batch's embeddings in the KG loss",
      "optim.warmup_epochs": "cosine: epochs of linear warm-up from 0 to lr",
      "train.epochs": "the most epochs to train (also the cosine schedule's length)",
      "train.batch_size": "CF (user, positive, negative) triples per step",
      "train.kg_batch_size": "KG (h, r, t, t') quadruples per step",
      "train.select_metric": "validation metric METRIC@K (K in eval.ks) for early stopping and "
                             "the best checkpoint",
      "train.keep_checkpoints": "latest checkpoints kept (the best one is kept besides)",
      "eval.ks": "cut-offs K of the ranking metrics",
      "eval.batch_size": "users per evaluation batch",
      "model.name": "the model family (selects this table)",
      "model.embed_dim": "d, the embedding size",
      "model.relation_dim": "k, the relation embedding size (TransR's relation space)",
      "model.layers": "output sizes d_1 .. d_L of the propagation layers",
      "model.message_dropout": "dropout on each layer's output, training only",
      "model.leaky_slope": "negative slope of the LeakyReLUs (attention logits, aggregators)",
  }
  comments = {}
  for klass in reversed(cls.__mro__):
    if not dataclasses.is_dataclass(klass):
      continue
    source = textwrap.dedent(inspect.getsource(klass))
    lines = source.splitlines()
    notes = {tok.start[0]: (tok.start[1], tok.string[1:].strip())
             for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT}
    for node in ast.parse(source).body[0].body:
      if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
        continue
      text = [notes[n][1] for n in range(node.lineno, node.end_lineno + 1) if n in notes]
      n = node.end_lineno + 1
      while n in notes and lines[n - 1].lstrip().startswith("#") \
          and notes[n][0] > node.col_offset:
        text.append(notes[n][1])
        n += 1
      comments[node.target.id] = " ".join(text)
  for f in dataclasses.fields(cls):
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    key = f"{section}.{f.name}"
    yield key, repr(default), comments.get(f.name) or stock.get(key, "")


def markdown() -> str:
  """docs/configuration.md: every field of every section and model family, with its default."""
  from kgax import models

  def cell(text: str) -> str:   # a pipe would end the table cell
    return text.replace("|", "\\|")

  def table(rows) -> list[str]:   # rows of (field, repr of the default, meaning)
    return ["| field | default | meaning |", "|---|---|---|",
            *(f"| `{cell(f)}` | `{cell(d)}` | {cell(c)} |" for f, d, c in rows)]

  def summary(cls) -> str:
    return (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")

  lines = ["# Configuration", "",
           "Generated by `python -m kgax.options --markdown docs/configuration.md` from the",
           "options dataclasses (kgax/options.py and each model's `Options`), which hold the only",
           "defaults. A config file (`configs/*.py`) returns these fields as an",
           "`ml_collections.ConfigDict` (`options.default_config(model)` has every one at its",
           "default); `--config.a.b=value` overrides one. Every value is checked (type, range,",
           "allowed set) before anything is written; a bad one stops the run with one line",
           "naming it, e.g. `kgax: error: config.optim.lr=-1.0: expected a positive number`.",
           "", "Sections: " + ", ".join(f"[{key}](#{key})" for key in SECTIONS)
           + ", [model](#model) (one table per family: "
           + ", ".join(f"[{name}](#model-{name})" for name in models.NAMES) + ").", "",
           "## top level", ""]
  lines += table([("seed", "0", "parameter initialisation and sampling"),
                  ("name", "model.name", "the run's label in tables (e.g. a variant)")])
  for key, cls in SECTIONS.items():
    lines += ["", f"## {key}", "", summary(cls), ""] + table(_field_rows(cls, key))
  lines += ["", "## model", "",
            "`model.name` picks the model family; the other fields are that family's `Options`",
            "(kgax/models/NAME.py), one table each below. Some properties are fixed by the",
            "family, as class attributes rather than fields: `use_kge` (a KG-loss phase every",
            "epoch), `aux_edges` (aux facts become CKG edges) and `kg_triples` (the triples the",
            "KG phase draws: `kg`, the KG relations and their inverses; `ckg`, every CKG edge)."]
  for name in models.NAMES:
    cls = models.get(name).Options
    lines += ["", f"## model: {name}", "", summary(cls), ""] + table(_field_rows(cls, "model"))
    fields = {f.name for f in dataclasses.fields(cls)}
    fixed = [f"`{k}={getattr(cls, k)!r}`" for k in sorted(dir(cls))
             if not k.startswith("_") and k not in fields
             and not callable(getattr(cls, k)) and not isinstance(getattr(cls, k), property)]
    if fixed:
      lines += ["", "Fixed by the family (not fields): " + ", ".join(fixed) + "."]
  return "\n".join(lines) + "\n"


# docs/configuration.md: markdown()'s tables, this line, then a guide written by hand.
HAND_WRITTEN = "<!-- Generated above this line; written by hand below it. -->"


def write_markdown(path: str) -> None:
  """Rewrites the generated part of `path` (docs/configuration.md), keeping its hand-written
  part (what follows HAND_WRITTEN)."""
  doc = pathlib.Path(path)
  tail = doc.read_text().partition(HAND_WRITTEN)[2] if doc.exists() else "\n"
  doc.write_text(markdown() + "\n" + HAND_WRITTEN + tail)


if __name__ == "__main__":
  import sys
  if len(sys.argv) != 3 or sys.argv[1] != "--markdown":
    raise SystemExit("usage: python -m kgax.options --markdown docs/configuration.md")
  write_markdown(sys.argv[2])
