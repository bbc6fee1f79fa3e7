"""`build(config)`: the parsed options, data, split, CKG and model of a run, shared by training,
benchmarks and inference; `init_state` and the evaluation functions over them."""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from kgax import coldstart, evaluate, options
from kgax.data import load
from kgax.data.types import Dataset, Split
from kgax.graph import Graph, GraphOptions, build_graph


# Optimizers -----------------------------------------------------------------------------------

def learning_rate(o: options.OptimOptions, base: float, steps_per_epoch: int, epochs: int):
  """A constant rate, or linear warm-up then cosine decay to final_lr_fraction * base over the
  run's `epochs`."""
  if o.lr_schedule == "constant":
    return base
  warmup = int(round(o.warmup_epochs * steps_per_epoch))
  total = max(steps_per_epoch * epochs, warmup + 1)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else base, peak_value=base, warmup_steps=warmup,
      decay_steps=total, end_value=base * o.final_lr_fraction)


def make_optimizers(opts: options.RunOptions, steps_per_epoch: tuple[int, int] = (1, 1)):
  """Adam for the CF and the KG phase; `steps_per_epoch` (CF, KG) places the lr schedule."""
  o, epochs = opts.optim, opts.train.epochs
  return tuple(optax.adam(learning_rate(o, base, steps, epochs))
               for base, steps in ((o.lr, steps_per_epoch[0]), (o.kg_lr, steps_per_epoch[1])))



@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds: parameters, the two Adam states, the epoch reached and the
  early-stopping record (best validation metric, its epoch, validations since it improved)."""
  params: dict
  opt_cf: object
  opt_kg: object
  epoch: jax.Array
  best: jax.Array
  best_epoch: jax.Array
  bad_evals: jax.Array


@dataclasses.dataclass
class Experiment:
  """A run's inputs: `opts` (the parsed config), the dataset, its split, the CKG and the model
  module (`lib`, a set of pure functions over a parameter pytree)."""
  config: ml_collections.ConfigDict
  opts: options.RunOptions
  ds: Dataset
  split: Split
  graph: Graph

  @property
  def lib(self):
    return self.opts.model_lib

  cold_selected: str | None = None   # the rule a run with eval.cold_items="auto" selected
  _links: dict = dataclasses.field(default_factory=dict, repr=False)

  @property
  def cold_rule(self) -> str:
    """The rule of coldstart.RULES that scores items without a training pair: eval.cold_items,
    or with "auto" the one selected at the end of the run ("" until then)."""
    rule = self.opts.eval.cold_items
    return (self.cold_selected or "") if rule == "auto" else rule

  @property
  def cold_items(self) -> coldstart.ColdItems | None:
    """The links of `cold_rule`, or None for items' own rows."""
    return self.cold_links(self.cold_rule)

  def cold_links(self, rule: str) -> coldstart.ColdItems | None:
    """The links of a coldstart.RULES key (None for ""), built once per rule."""
    if not rule:
      return None
    if rule not in self._links:
      self._links[rule] = coldstart.build(self.ds, self.split.train, self.opts.eval.cold_norm,
                                          centered=coldstart.RULES[rule])
    return self._links[rule]

  def init_params(self) -> dict:
    params = self.lib.init(jax.random.key(self.opts.seed), self.opts.model, self.graph)
    if self.opts.start.neutral:
      params = self.lib.neutral_start(params, self.opts.model, self.opts.start.neutral)
    return params

  def init_state(self, tx_cf, tx_kg, params: dict | None = None) -> TrainState:
    params = self.init_params() if params is None else params
    return TrainState(params=params, opt_cf=tx_cf.init(params), opt_kg=tx_kg.init(params),
                      epoch=jnp.zeros((), jnp.int32), best=jnp.full((), -jnp.inf, jnp.float32),
                      best_epoch=jnp.full((), -1, jnp.int32), bad_evals=jnp.zeros((), jnp.int32))

  def evaluator(self, split: str, metrics=evaluate.METRICS, mesh=None) -> evaluate.Evaluator:
    """Full ranking on "valid" (train excluded) or "test" (train and validation excluded); with
    a mesh of several devices each device scores and ranks its own block of every batch."""
    s, e = self.split, self.opts.eval
    truth, exclude = ((s.valid, s.train) if split == "valid"
                      else (s.test, np.concatenate([s.train, s.valid])))
    mesh = mesh if mesh is not None and mesh.size > 1 else None
    return evaluate.Evaluator(self.ds.n_users, self.ds.n_items, truth, exclude, ks=e.ks,
                              batch_size=e.batch_size, metrics=metrics, mesh=mesh)

  def evaluate_fn(self, items: np.ndarray | None = None, trim=None, cold_rule: str | None = None,
                  graph: Graph | None = None):
    """evaluate(params, evaluator) -> metrics, through embeddings or the model's score function.
    With `items` (ids [C]) only those are ranked: the evaluator's item k is items[k]. `trim`
    (sharding.Layout.trim) cuts placed parameters' padding rows inside the compiled function.
    `cold_rule` (a coldstart.RULES key) overrides `cold_rule` for items without training pairs.
    `graph` (default: the experiment's) is the graph as placed on a mesh (sharding.step_graph)."""
    cold = self.cold_items if cold_rule is None else self.cold_links(cold_rule)
    graph = self.graph if graph is None else graph
    return make_evaluate(self.lib, self.opts.model, graph, items, cold, trim)


def item_embeddings(lib, m, params, graph: Graph, cold: coldstart.ColdItems | None = None):
  """(users [n_users, d], items [n_items, d]) of an embedding model, its cold items imputed."""
  users, item_emb = lib.user_item_embeddings(params, graph, m)
  return users, item_emb if cold is None else coldstart.impute(item_emb, cold)


def make_evaluate(lib, m, graph: Graph, items: np.ndarray | None = None,
                  cold: coldstart.ColdItems | None = None, trim=None):
  keep = slice(None) if items is None else jnp.asarray(items)
  trim = trim or (lambda p: p)
  if hasattr(lib, "user_item_embeddings"):
    def embed(p, g, cold):
      users, item_emb = item_embeddings(lib, m, trim(p), g, cold)
      return users, item_emb[keep]
    embed = jax.jit(embed)
    return lambda params, ev: ev.evaluate_embeddings(*embed(params, graph, cold))
  score = jax.jit(lambda p, g, users: lib.score_users(trim(p), g, m, users)[:, keep])
  return lambda params, ev: ev(lambda users: score(params, graph, users))


def build(config: ml_collections.ConfigDict | dict, opts: options.RunOptions | None = None
          ) -> Experiment:
  """Parses `config` (one-line ConfigError on a bad value), loads the data and builds the CKG."""
  opts = opts or options.parse(config)
  ds, split = load.load_split(opts.data)
  graph = build_graph(ds, split.train, GraphOptions(aux_edges=opts.model.aux_edges))
  m = opts.model
  if opts.eval.cold_items and not hasattr(opts.model_lib, "user_item_embeddings"):
    raise options.ConfigError(f"config.eval.cold_items={opts.eval.cold_items!r}: model "
                              f"{m.name!r} scores pairs without item embeddings to impute")
  if opts.kg_need and not len(ds.kg):
    raise options.ConfigError(f"config.model.name={m.name!r}: {opts.kg_need} and {ds.name} has "
                              "none")
  return Experiment(config, opts, ds, split, graph)
