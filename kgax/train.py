"""Training: alternating CF / KG phases, evaluation, early stopping, checkpoints, resume.

`train_and_evaluate(config, workdir)` is the whole job; the `kgax train` command is a thin wrapper.
Workdir layout:
    config.json          the resolved config
    metrics.jsonl        one JSON line per logged chunk of steps and per evaluation
    checkpoints/latest/  Orbax checkpoints of the whole training state (latest N)
    checkpoints/best/    the checkpoint with the best validation metric
    results.json         final validation and test metrics of the best checkpoint, timings
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from kgax import checkpoint, evaluate, sampling, sharding
from kgax.data import load
from kgax.graph import Graph, GraphOptions, build_graph
from kgax import models


class TrainingError(RuntimeError):
  """Training cannot go on (non-finite loss, inconsistent workdir)."""


def setup(config: ml_collections.ConfigDict):
  """Loads data, builds the CKG and the evaluators: everything but the parameters."""
  ds, split = load.load_split(config.data)
  graph = build_graph(ds, split.train, GraphOptions(aux_edges=config.model.aux_edges))
  return ds, split, graph


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(optim, base: float, steps_per_epoch: int, epochs: int):
  """A constant rate, or linear warm-up then cosine decay to final_lr_fraction * base over the
  run's `epochs` (config.optim.lr_schedule, warmup_epochs, final_lr_fraction)."""
  kind = optim.get("lr_schedule", "constant")
  if kind not in LR_SCHEDULES:
    raise ValueError(f"config.optim.lr_schedule={kind!r}: expected one of {LR_SCHEDULES}")
  if kind == "constant":
    return base
  warmup = int(round(optim.get("warmup_epochs", 0.0) * steps_per_epoch))
  total = max(steps_per_epoch * epochs, warmup + 1)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else base, peak_value=base, warmup_steps=warmup,
      decay_steps=total, end_value=base * optim.get("final_lr_fraction", 0.0))


def make_optimizers(config, steps_per_epoch: tuple[int, int] = (1, 1)
                    ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """Adam for the CF and the KG phase; `steps_per_epoch` (CF, KG) places the lr schedule."""
  o, epochs = config.optim, config.train.epochs
  return tuple(_adam(o, base, steps, epochs)
               for base, steps in ((o.lr, steps_per_epoch[0]), (o.kg_lr, steps_per_epoch[1])))


def _adam(optim, base: float, steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
  """Adam at the configured rate; the top-level parameters named in config.optim.freeze stay
  fixed for the first config.optim.freeze_epochs epochs (0: for the whole run)."""
  lr = learning_rate(optim, base, steps_per_epoch, epochs)
  names = tuple(optim.get("freeze", ()) or ())
  if not names:
    return optax.adam(lr)
  until = int(round(optim.get("freeze_epochs", 0.0) * steps_per_epoch))
  if until <= 0:
    frozen = optax.set_to_zero()
  else:
    rate = lr if callable(lr) else (lambda step: lr)
    frozen = optax.adam(lambda step: jnp.where(step < until, 0.0, rate(step)))
  return optax.multi_transform({"train": optax.adam(lr), "frozen": frozen},
                               lambda p: {k: "frozen" if k in names else "train" for k in p})


def init_state(config, graph: Graph) -> dict:
  key = jax.random.key(config.seed)
  params = models.get(config.model.name).init(key, config.model, graph)
  unknown = sorted(set(config.optim.get("freeze", ()) or ()) - set(params))
  if unknown:
    raise ValueError(f"config.optim.freeze: no parameters named {unknown} (this model has "
                     f"{sorted(params)})")
  tx_cf, tx_kg = make_optimizers(config)
  return {
      "params": params,
      "opt_cf": tx_cf.init(params),
      "opt_kg": tx_kg.init(params),
      "epoch": jnp.zeros((), jnp.int32),
      # Early stopping: best validation metric, its epoch, evaluations since it improved.
      "best": jnp.full((), -jnp.inf, jnp.float32),
      "best_epoch": jnp.full((), -1, jnp.int32),
      "bad_evals": jnp.zeros((), jnp.int32),
  }


def spread_embeddings(node: np.ndarray, known: np.ndarray, graph: Graph, rounds: int
                      ) -> np.ndarray:
  """Fills rows of `node` [N, d] that `known` [N] marks as unset, `rounds` times: each unset node
  with a set neighbour in the CKG gets the mean of its set neighbours' rows (and becomes set).
  Nodes still unset keep their row."""
  node, known = np.array(node), np.array(known, bool)
  heads, tails = (np.asarray(a)[:graph.n_real_edges] for a in (graph.heads, graph.tails))
  for _ in range(rounds):
    use = known[tails] & ~known[heads]
    count = np.bincount(heads[use], minlength=len(node))
    total = np.zeros_like(node)
    np.add.at(total, heads[use], node[tails[use]])
    fill = count > 0
    if not fill.any():
      break
    node[fill] = total[fill] / count[fill, None]
    known |= fill
  return node


def with_pretrained(params: dict, workdir: str, graph: Graph, spread: int = 0,
                    scale: float = 1.0) -> dict:
  """KGAT's initialisation from a trained BPR-MF: user and item rows of the node table.

  `workdir` is a finished run on the same dataset and split of any model with user and item
  embeddings (BPR-MF, or LightGCN, whose propagated output rows are used); its best checkpoint
  is used.
  With `spread` > 0 the other nodes (KG entities, aux nodes, and items without a training pair,
  which MF never trained) start as the mean of their pretrained neighbours, spread that many
  hops (`spread_embeddings`), instead of at random. The pretrained rows are multiplied by `scale`:
  MF's ranking does not change, but the L2-normalised layer outputs, whose share of the score is
  fixed in size, weigh 1 / scale^2 as much against it at the start of the fine-tune.
  """
  from kgax import inference   # inference builds on this module
  if not scale > 0:
    raise TrainingError(f"config.model.pretrained_scale={scale}: expected a positive number")
  run = inference.Run.open(workdir, "best")
  users, items = run.model.user_item_embeddings(run.params, run.graph, run.config.model)
  node = params["node"]
  if (users.shape[0], items.shape[0]) != (graph.n_users, graph.n_items) or \
      users.shape[1] != node.shape[1]:
    raise TrainingError(f"config.model.pretrained={workdir}: embeddings {users.shape}/"
                        f"{items.shape} do not fit {graph.n_users} users, {graph.n_items} items, "
                        f"dimension {node.shape[1]}")
  node = (node.at[:graph.n_items].set(scale * items)
          .at[graph.user_start:graph.aux_start].set(scale * users))
  if spread:   # pretrained rows: users, and items with a training pair (an edge to a user)
    heads, tails = (np.asarray(a)[:graph.n_real_edges] for a in (graph.heads, graph.tails))
    known = np.zeros(node.shape[0], bool)
    known[graph.user_start:graph.aux_start] = True
    known[heads[(heads < graph.n_items) & known[tails]]] = True
    node = jnp.asarray(spread_embeddings(np.asarray(node), known, graph, spread), node.dtype)
  return dict(params, node=node)


def make_sampler(config, ds, split, graph: Graph):
  """sample(epoch) -> (CF batches [S, B, 3], KG batches [S', B', 4] or None), seeded per epoch.

  KG batches come when the model trains a KG loss: for the KG phase, or one per CF step with the
  joint schedule. Known positives are kept as sorted keys for negative rejection. BPR negatives
  are uniform over all items, or with config.train.train_item_negatives over the items with a
  training pair (a cold-start split's held-out items are then not in the catalogue at all).
  """
  train = split.train
  known_cf = sampling.PairSet(train[:, 0], train[:, 1], ds.n_items)
  real = slice(0, graph.n_real_edges)
  heads, rels, tails = (np.asarray(a)[real] for a in (graph.heads, graph.relations, graph.tails))
  n_neg = graph.n_nodes - 1   # KG negatives t' are drawn from [0, n_neg)
  if config.model.get("kg_triples", "ckg") == "kg":   # KG relations and inverses; entity negatives
    base = rels % graph.n_fwd_relations
    keep = (base >= 1) & (base <= graph.n_kg_relations)
    heads, rels, tails, n_neg = heads[keep], rels[keep], tails[keep], graph.n_entities
  known_kg = sampling.PairSet(heads.astype(np.int64) * graph.n_relations + rels, tails,
                              graph.n_nodes)
  joint = config.optim.schedule == "joint"
  candidates = sampling.distinct(train[:, 1]) if config.train.get("train_item_negatives") else None

  def sample(epoch):
    rng = np.random.default_rng([config.seed, epoch])
    cf = sampling.cf_epoch(rng, train, ds.n_items, config.train.batch_size, known_cf, candidates)
    if not config.model.use_kge:
      return cf, None
    kg = sampling.kg_epoch(rng, heads, rels, tails, n_neg, graph.n_relations,
                           config.train.kg_batch_size, known_kg)
    if joint:   # one KG batch per CF step
      kg = kg[np.arange(cf.shape[0]) % kg.shape[0]]
    return cf, kg

  spc = config.train.steps_per_call
  cf_steps = chunked_steps(sampling.steps_per_epoch(len(train), config.train.batch_size), spc)
  kg_steps = chunked_steps(sampling.steps_per_epoch(len(heads), config.train.kg_batch_size), spc)
  sample.steps = (cf_steps, cf_steps if joint else kg_steps)   # optimizer steps per epoch
  return sample


class Prefetch:
  """`sample(epoch)` with the next epoch (up to `stop`) drawn on a background thread while the
  device trains on this one; numpy releases the GIL in the sorting and searching that dominate
  sampling, so on an accelerator the host's sampling hides behind the device's steps. Epochs
  are seeded independently: the batches are the same as calling `sample` in order."""

  def __init__(self, sample, start: int, stop: int):
    self._sample, self._stop = sample, stop
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kgax-sample")
    self._next = None
    self._submit(start)

  def _submit(self, epoch: int):
    self._next = (epoch, self._pool.submit(self._sample, epoch)) if epoch < self._stop else None

  def __call__(self, epoch: int):
    if self._next is not None and self._next[0] == epoch:
      batches = self._next[1].result()
    else:
      batches = self._sample(epoch)
    self._submit(epoch + 1)
    return batches

  def close(self):
    """Returns at once: an epoch being drawn (after an early stop) finishes in the background
    while the caller restores the best checkpoint and evaluates."""
    self._pool.shutdown(wait=False, cancel_futures=True)


def make_step_fns(config, mesh, steps_per_epoch: tuple[int, int] = (1, 1)):
  """Jitted functions running `steps_per_call` CF (or KG) steps in one lax.scan.

  The graph is an argument, not a closed-over constant: XLA would otherwise embed (and try to
  constant-fold through) the edge arrays. `steps_per_epoch` (CF, KG) places the lr schedule.
  """
  m = config.model
  model_lib = models.get(m.name)
  tx_cf, tx_kg = make_optimizers(config, steps_per_epoch)
  joint = config.optim.schedule == "joint"

  def cf_loss(params, graph, batch, rng, kg_batch=None):
    loss = model_lib.cf_loss(params, graph, m, batch, rng, config.optim.l2)
    if joint and m.use_kge:
      loss = loss + model_lib.kg_loss(params, graph, m, kg_batch, config.optim.kg_l2)
    return loss

  def cf_steps(params, opt, graph, batches, kg_batches, rng):
    def step(carry, xs):
      params, opt = carry
      i, batch, kg_batch = xs
      loss, grads = jax.value_and_grad(cf_loss)(params, graph, batch,
                                                jax.random.fold_in(rng, i), kg_batch)
      updates, opt = tx_cf.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), loss
    idx = jnp.arange(batches.shape[0])
    (params, opt), losses = jax.lax.scan(step, (params, opt), (idx, batches, kg_batches))
    return params, opt, losses

  def kg_steps(params, opt, graph, batches):
    def step(carry, batch):
      params, opt = carry
      loss, grads = jax.value_and_grad(model_lib.kg_loss)(params, graph, m, batch,
                                                          config.optim.kg_l2)
      updates, opt = tx_kg.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), loss
    (params, opt), losses = jax.lax.scan(step, (params, opt), batches)
    return params, opt, losses

  rep = sharding.replicated(mesh)
  data = sharding.batch_sharded(mesh, axis=1)
  cf = jax.jit(cf_steps, donate_argnums=(0, 1),
               in_shardings=(rep, rep, rep, data, data, rep), out_shardings=(rep, rep, rep))
  kg = jax.jit(kg_steps, donate_argnums=(0, 1),
               in_shardings=(rep, rep, rep, data), out_shardings=(rep, rep, rep))
  return cf, kg


def make_evaluate(config, graph: Graph, items: np.ndarray | None = None):
  """evaluate(params, evaluator) -> metrics, through embeddings or the model's score function.

  With `items` (ids [C]) only those items are ranked: the evaluator's item k is items[k].
  """
  m = config.model
  model_lib = models.get(m.name)
  keep = slice(None) if items is None else jnp.asarray(items)
  if hasattr(model_lib, "user_item_embeddings"):
    def embed(p, g):
      users, item_emb = model_lib.user_item_embeddings(p, g, m)
      return users, item_emb[keep]
    embed = jax.jit(embed)
    return lambda params, ev: ev.evaluate_embeddings(*embed(params, graph))
  score = jax.jit(lambda p, g, users: model_lib.score_users(p, g, m, users)[:, keep])
  return lambda params, ev: ev(lambda users: score(params, graph, users))


def chunked_steps(n: int, size: int) -> int:
  """Steps run for n batches in equal chunks of at most `size` (see _chunks)."""
  calls = -(-n // size)
  return calls * -(-n // calls)


def _chunks(batches: np.ndarray, size: int):
  """Splits [S, B, c] into ceil(S / size) equal chunks of at most `size` steps.

  The chunk length is chosen so that at most (calls - 1) steps are repeated to even out the last
  chunk (18 steps in chunks of up to 16 run as 2 x 9, not 2 x 16 with 14 repeated steps).
  """
  n = batches.shape[0]
  total = chunked_steps(n, size)
  if total > n:   # a few steps seen twice, so that every call has the same shape
    batches = batches[np.arange(total) % n]
  return batches.reshape(-(-n // size), -1, *batches.shape[1:])


class _Log:
  """Appends JSON lines to metrics.jsonl."""

  def __init__(self, path: pathlib.Path):
    self.path = path

  def write(self, **row):
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")


def _check_finite(losses: np.ndarray, phase: str, epoch: int):
  if not np.all(np.isfinite(losses)):
    raise TrainingError(
        f"non-finite {phase} loss at epoch {epoch} ({losses[~np.isfinite(losses)][0]}); "
        "lower optim.lr or check the data. The last good checkpoint is kept.")


# Fields added after runs could have begun whose behaviour-preserving value is not neutral.
ADDED_DEFAULTS = {"model.pretrained_scale": 1.0, "model.combine": "concat",
                  "model.normalize_layers": True, "model.l2_on": "output",
                  "model.edge_norm": "head"}


def _same_config(stored: dict, new: dict, prefix: str = "") -> bool:
  """Whether a workdir's config.json matches `new`. A field that the stored config lacks (added
  to kgax after the run began) matches only at the value that reproduces the behaviour from
  before it existed: a neutral one (empty, zero, False or None) or its entry in ADDED_DEFAULTS."""
  for key, value in new.items():
    if isinstance(value, dict) and isinstance(stored.get(key, {}), dict):
      if not _same_config(stored.get(key, {}), value, f"{prefix}{key}."):
        return False
    elif key not in stored:
      if value not in ("", (), [], 0, 0.0, False, None) and \
          ADDED_DEFAULTS.get(prefix + key, ()) != value:
        return False
    elif stored[key] != value:
      return False
  return set(stored) <= set(new)


# Budget fields that a rerun may raise to extend a run (resume past its old cap or stop).
EXTENDABLE = ("epochs", "patience")


# Fields that change speed or memory but not what a run computes: they may differ on resume.
NEUTRAL = (("model", "score_chunk"), ("eval", "batch_size"), ("train", "keep_checkpoints"))


def config_difference(stored: dict, new: dict) -> str | None:
  """How a workdir's stored config.json differs from `new`: None (the same run), "extend" (only
  train.epochs / train.patience raised, under a constant learning rate when epochs are), or a
  one-line reason that reads after the workdir's name. The NEUTRAL fields are not compared."""
  stored = copy.deepcopy(stored)
  for section, field in NEUTRAL:
    if field in stored.get(section, {}) and field in new.get(section, {}):
      stored[section][field] = new[section][field]
  old_train, new_train = stored.get("train", {}), new.get("train", {})
  raised = [f for f in EXTENDABLE if f in old_train and new_train.get(f) != old_train[f]]
  if not _same_config(dict(stored, train=dict(old_train, **{f: new_train.get(f) for f in raised})),
                      new):
    return ("holds a run with a different config; use another workdir, or the same config to "
            "resume")
  for f in raised:
    if not isinstance(new_train[f], int) or new_train[f] < old_train[f]:
      return (f"has train.{f}={old_train[f]}; a resumed run can only raise it "
              f"(config.train.{f}={new_train[f]})")
  if "epochs" in raised and new.get("optim", {}).get("lr_schedule", "constant") != "constant":
    return (f"has train.epochs={old_train['epochs']} and a {new['optim']['lr_schedule']!r} lr "
            f"schedule that decays over them; only a constant rate can be extended "
            f"(config.train.epochs={new_train['epochs']})")
  return "extend" if raised else None


def write_config(config, workdir: pathlib.Path):
  """Writes config.json, or checks it against the stored one when resuming.

  A rerun may raise train.epochs and train.patience, extending a run that hit its cap or
  stopped early (epochs only under a constant learning rate, which does not depend on them).
  When the old cap is a multiple of train.eval_every, the extended run ends as a run started
  with the larger budget would. Anything else that differs is refused with a one-line error,
  and nothing in the workdir changes.
  """
  path = workdir / "config.json"
  text = config.to_json(indent=2, sort_keys=True)
  if path.exists():
    stored = json.loads(path.read_text())
    why = config_difference(stored, json.loads(text))
    if why not in (None, "extend"):
      raise TrainingError(f"{path}: {why}")
    for f in EXTENDABLE:
      old, value = stored.get("train", {}).get(f), config.train[f]
      if old is not None and old != value:
        print(f"extending {workdir}: train.{f} {old} -> {value}")
  path.write_text(text)


def _validate(state, epoch: int, *, config, evaluate_fn, valid_eval, test_eval, log, ckpt,
              t_start):
  """Evaluates `state` on validation after `epoch` epochs (0: the initial parameters), updates
  the early-stopping fields, logs (with log_test also the test curve row) and checkpoints."""
  metrics = evaluate_fn(state["params"], valid_eval)
  value = metrics[config.train.select_metric]
  improved = value > float(state["best"])
  state = dict(state, best=jnp.asarray(max(value, float(state["best"])), jnp.float32),
               best_epoch=jnp.asarray(epoch if improved else int(state["best_epoch"]), jnp.int32),
               bad_evals=jnp.asarray(0 if improved else int(state["bad_evals"]) + 1, jnp.int32))
  log.write(epoch=epoch, split="valid", wall=time.time() - t_start, **metrics)
  if config.train.log_test:   # reporting only (time-to-quality curves); never for selection
    log.write(epoch=epoch, split="test", wall=time.time() - t_start,
              **evaluate_fn(state["params"], test_eval))
  tqdm.write(f"epoch {epoch}: valid {config.train.select_metric} {value:.4f}"
             f" (best {float(state['best']):.4f} at {int(state['best_epoch'])})")
  ckpt.save(epoch, state, value if improved else None)
  return state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       stop_after_epochs: int | None = None) -> dict[str, Any]:
  """Trains, selects on validation, returns (and writes) the test metrics of the best checkpoint.

  Rerunning on a workdir with checkpoints resumes from the latest one. `stop_after_epochs`
  stops early as if killed (for tests of resume).
  """
  if config.train.distributed:
    jax.distributed.initialize()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  models.get(config.model.name).check_config(config.model)
  if config.optim.schedule not in ("alternate", "joint"):
    raise ValueError(f"config.optim.schedule={config.optim.schedule!r}: "
                     "expected 'alternate' or 'joint'")
  write_config(config, workdir)
  t_start = time.time()

  ds, split, graph = setup(config)
  mesh = sharding.make_mesh()
  n_dev = mesh.devices.size
  for name in ("batch_size", "kg_batch_size"):
    if config.train[name] % n_dev:
      raise ValueError(f"config.train.{name}={config.train[name]} is not divisible by the "
                       f"{n_dev} devices")
  graph = jax.device_put(graph, sharding.replicated(mesh))
  sample = make_sampler(config, ds, split, graph)
  cf_fn, kg_fn = make_step_fns(config, mesh, sample.steps)
  evaluate_fn = make_evaluate(config, graph)
  ks = tuple(config.eval.ks)
  # Validation runs often and selects on a ranking metric: it skips AUC.
  valid_eval = evaluate.Evaluator(ds.n_users, ds.n_items, split.valid, split.train, ks=ks,
                                  batch_size=config.eval.batch_size,
                                  metrics=evaluate.RANKING_METRICS)
  test_eval = evaluate.Evaluator(ds.n_users, ds.n_items, split.test,
                                 np.concatenate([split.train, split.valid]), ks=ks,
                                 batch_size=config.eval.batch_size)
  # The per-evaluation test rows of log_test are for curves: ranking metrics only, as validation.
  test_curve_eval = test_eval.with_metrics(evaluate.RANKING_METRICS)

  ckpt = checkpoint.Checkpoints(workdir / "checkpoints", keep=config.train.keep_checkpoints,
                                metric=config.train.select_metric)
  state = init_state(config, graph)
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state = restored
  elif config.model.get("pretrained"):   # "{seed}" in the path becomes this run's seed
    state = dict(state, params=with_pretrained(
        state["params"], config.model.pretrained.replace("{seed}", str(config.seed)), graph,
        config.model.get("pretrained_spread", 0), config.model.get("pretrained_scale", 1.0)))
  state = jax.device_put(state, sharding.replicated(mesh))
  start_epoch = int(state["epoch"])
  log = _Log(workdir / "metrics.jsonl")
  if start_epoch:
    print(f"resuming from epoch {start_epoch} in {workdir}")

  spc = config.train.steps_per_call
  use_kg_phase = config.model.use_kge and config.optim.schedule == "alternate"
  joint_kg = config.model.use_kge and config.optim.schedule == "joint"
  epochs = config.train.epochs
  epoch_times = []

  validate = functools.partial(_validate, config=config, evaluate_fn=evaluate_fn,
                               valid_eval=valid_eval, test_eval=test_curve_eval, log=log,
                               ckpt=ckpt, t_start=t_start)
  if restored is None and config.train.get("eval_start", False):
    state = validate(state, 0)   # the start is a selection candidate (a fine-tune may keep it)
  if int(state["bad_evals"]) >= config.train.patience:
    epochs = start_epoch   # this run already stopped early: go straight to the final evaluation
  bar = tqdm(total=epochs, initial=start_epoch, desc="train", unit="epoch", dynamic_ncols=True)
  prefetch = Prefetch(sample, start_epoch, epochs)
  try:
    for epoch in range(start_epoch, epochs):
      t0 = time.time()
      cf_batches, kg_batches = prefetch(epoch)
      rng = jax.random.fold_in(jax.random.key(config.seed), epoch)
      params, opt_cf, opt_kg = state["params"], state["opt_cf"], state["opt_kg"]
      cf_chunks = _chunks(cf_batches, spc)
      kg_for_cf = (_chunks(kg_batches, spc) if joint_kg
                   else np.zeros((*cf_chunks.shape[:3], 4), np.int32))
      cf_losses = []
      for c in range(cf_chunks.shape[0]):
        params, opt_cf, losses = cf_fn(params, opt_cf, graph, cf_chunks[c], kg_for_cf[c],
                                       jax.random.fold_in(rng, c))
        cf_losses.append(losses)
      cf_losses = np.asarray(jnp.concatenate(cf_losses))   # one host sync per epoch phase
      _check_finite(cf_losses, "CF", epoch)
      kg_loss = None
      if use_kg_phase:
        kg_losses = []
        for chunk in _chunks(kg_batches, spc):
          params, opt_kg, losses = kg_fn(params, opt_kg, graph, chunk)
          kg_losses.append(losses)
        kg_losses = np.asarray(jnp.concatenate(kg_losses))
        _check_finite(kg_losses, "KG", epoch)
        kg_loss = float(kg_losses.mean())
      state = dict(state, params=params, opt_cf=opt_cf, opt_kg=opt_kg,
                   epoch=jnp.asarray(epoch + 1, jnp.int32))
      epoch_times.append(time.time() - t0)
      row = {"epoch": epoch + 1, "cf_loss": float(cf_losses.mean()), "kg_loss": kg_loss,
             "epoch_seconds": epoch_times[-1], "wall": time.time() - t_start}
      bar.set_postfix(cf=f"{row['cf_loss']:.4f}", kg="-" if kg_loss is None else f"{kg_loss:.4f}")
      log.write(**row)

      last = epoch + 1 == epochs
      if (epoch + 1) % config.train.eval_every == 0 or last:
        state = validate(state, epoch + 1)
        if int(state["bad_evals"]) >= config.train.patience:
          tqdm.write(f"early stopping at epoch {epoch + 1}")
          bar.update(1)
          break
      bar.update(1)
      if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
        bar.close()
        ckpt.save(epoch + 1, state, None)
        ckpt.wait()
        return {}
  finally:
    prefetch.close()
  bar.close()
  ckpt.save(int(state["epoch"]), state, None)
  ckpt.wait()

  best_state = ckpt.restore_best(state) or state
  valid_metrics = evaluate_fn(best_state["params"], valid_eval)
  test_metrics = evaluate_fn(best_state["params"], test_eval)
  results = {
      "model": config.model.name,
      "config": config.model.get("variant", config.model.name),
      "best_epoch": int(best_state["epoch"]),
      "epochs_run": int(state["epoch"]),
      "valid": valid_metrics,
      "test": test_metrics,
      "wall_seconds": time.time() - t_start,
      "seconds_per_epoch": float(np.mean(epoch_times)) if epoch_times else None,
      "peak_device_memory_bytes": sharding.peak_memory(),
      "dataset": {"name": ds.name, "users": ds.n_users, "items": ds.n_items,
                  "train": len(split.train), "valid": len(split.valid), "test": len(split.test),
                  "nodes": graph.n_nodes, "edges": graph.n_real_edges},
  }
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  return results
