"""Sweeps: the runs of one config over seeds x grid points, trained as one vmapped program.

`sweep(config, seeds, grid, workdir)` trains every combination of `seeds` and the points of
`grid` ({dotted field: [values]}). Runs that share shapes and code paths form a group, trained
together: the parameter and optimizer pytrees carry a leading run axis [R, ...], and each jitted
chunk of steps is `jax.vmap` of the single run's chunk over the runs (`width`: runs per vmap;
with width 1, the default on a CPU, `lax.map` runs them one after another inside the program,
each with the single run's shapes and numbers). Per run, inside the program:

    seed                    its own init key, sampler stream and dropout keys
    optim.lr, optim.kg_lr   the Adam update times a per-run rate (constant lr_schedule)
    optim.l2, optim.kg_l2   the loss coefficients
    model.*_dropout         the rates (whether a rate is 0 is a code path: it splits groups)

and on the host: train.epochs (constant lr_schedule), patience, eval_every, select_metric,
log_test, eval_start, keep_checkpoints, tensorboard, the start section and the name. Any other
field that differs (model.layers, embed_dim, attention, train.batch_size, lr_schedule, data...)
splits the sweep into groups, run one after another.

Each run keeps its own early stopping: once it stops (or reaches its epochs) its updates are
masked out, so its parameters and optimizer state stay as they were, and its best checkpoint is
kept. Each run writes W/<run>/ as `train.train_and_evaluate` writes a workdir (config.json with
the run's resolved config, metrics.jsonl, checkpoints/latest and best, results.json), so any run
can be evaluated, or resumed alone, with the single-run tools. Timings in its files are the
group's: epoch_seconds and seconds_per_epoch are those of the stacked epoch (all R runs),
wall_seconds the group's wall time.

Resume: the runs' own latest checkpoints are the sweep's state. A rerun restores each run's
latest checkpoint and starts the group's epoch loop at the smallest epoch reached; a run ahead
of it (killed between the runs' saves) is masked until the loop reaches its epoch. Training is
deterministic given the state, so the recomputed epochs repeat what was logged and saved.
W/sweep.json lists the runs and their groups.

A run whose loss turns non-finite stops alone: the sweep goes on, the run writes no results and
its entry in the returned dict is {"error": message}.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import itertools
import json
import pathlib
import re
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from kgax import checkpoint, config as config_lib, experiment, options, pipeline, pretrained
from kgax import train
from kgax.experiment import TrainState
from kgax.workdir import Workdir, write_text_atomic

# train.* fields read only by the host loop (they never change the compiled program).
HOST_TRAIN = ("patience", "eval_every", "select_metric", "log_test", "eval_start",
              "keep_checkpoints", "tensorboard")


@dataclasses.dataclass
class Run:
  """One run of a sweep: its name (the folder under the sweep's workdir), resolved config and
  parsed options."""
  name: str
  config: ml_collections.ConfigDict
  opts: options.RunOptions


# Planning -------------------------------------------------------------------------------------

def _format(value) -> str:
  if isinstance(value, (tuple, list)):
    return "_".join(map(_format, value))
  return repr(value) if isinstance(value, float) else str(value)


def _get(d: dict, field: str):
  for key in field.split("."):
    d = d[key]
  return d


def run_name(seed: int, point: Mapping[str, Any], opts: options.RunOptions | None = None) -> str:
  """"seed0-optim.lr=0.001-optim.l2=0.01": the seed, then each grid field with its (resolved,
  when `opts` is given) value; characters outside [A-Za-z0-9._=+-] become "_"."""
  resolved = opts.to_dict() if opts is not None else None
  parts = [f"seed{seed}"] + [
      f"{field}={_format(_get(resolved, field) if resolved else value)}"
      for field, value in point.items()]
  return re.sub(r"[^A-Za-z0-9._=+-]", "_", "-".join(parts))


def expand(config: ml_collections.ConfigDict | dict, seeds: Sequence[int],
           grid: Mapping[str, Sequence[Any]]) -> list[Run]:
  """The runs of seeds x grid points (seed-major), each config parsed (one-line ConfigError).

  Grid values are Python values or strings parsed as `--config.FIELD=TEXT` overrides."""
  if not seeds:
    raise options.ConfigError("sweep: no seeds")
  for field, values in grid.items():
    if field in ("seed", "name"):
      raise options.ConfigError(f"sweep: grid field {field!r} (give seeds instead)")
    if not len(values):
      raise options.ConfigError(f"sweep: grid field {field!r} has no values")
  fields = list(grid)
  runs, names = [], set()
  for seed in seeds:
    for values in itertools.product(*(grid[f] for f in fields)):
      cfg = copy.deepcopy(ml_collections.ConfigDict(config))
      overrides = {f: v if isinstance(v, str) else repr(v) for f, v in zip(fields, values)}
      cfg = config_lib.apply_overrides(cfg, {"seed": str(int(seed)), **overrides})
      opts = options.parse(cfg)
      if opts.train.distributed:
        raise options.ConfigError("config.train.distributed=True: a sweep runs in one process")
      name = run_name(int(seed), dict(zip(fields, values)), opts)
      if name in names:
        raise options.ConfigError(f"sweep: run {name} appears twice (repeated seed or value)")
      names.add(name)
      runs.append(Run(name, cfg, opts))
  return runs


def dropout_fields(m) -> tuple[str, ...]:
  """The model's dropout rates (fields named *_dropout), traced per run."""
  return tuple(f.name for f in dataclasses.fields(m) if f.name.endswith("_dropout"))


def group_key(opts: options.RunOptions) -> str:
  """What a group's runs share: the resolved config without the per-run fields (a dropout rate
  counts only as zero or not)."""
  d = opts.to_dict()
  for key in ("seed", "name", "start"):
    d.pop(key)
  o, t = d["optim"], d["train"]
  for key in ("l2", "kg_l2") + (("lr", "kg_lr") if o["lr_schedule"] == "constant" else ()):
    o.pop(key)
  for key in HOST_TRAIN + (("epochs",) if o["lr_schedule"] == "constant" else ()):
    t.pop(key)
  for key in dropout_fields(opts.model):
    d["model"][key] = d["model"][key] > 0
  return json.dumps(d, sort_keys=True)


def group(runs: Sequence[Run]) -> list[list[Run]]:
  """The runs split into groups of one compiled program each, in order of first appearance."""
  groups: dict[str, list[Run]] = {}
  for run in runs:
    groups.setdefault(group_key(run.opts), []).append(run)
  return list(groups.values())


# Steps ----------------------------------------------------------------------------------------

class _Rate:
  """A dropout rate traced per run in place of a model option: arithmetic and comparisons with
  arrays use the traced value; `rate > 0` (the model's code-path test) is the group's static
  answer."""

  def __init__(self, value: jax.Array, positive: bool):
    self.value, self.positive = value, positive

  def _static(self, other, op: str) -> bool:
    if other != 0:
      raise TypeError(f"a per-run dropout rate compares only with 0 statically, not {op} {other}")
    return self.positive

  def __gt__(self, other):
    if isinstance(other, (int, float)):
      return self._static(other, ">")
    return self.value > other

  def __ne__(self, other):
    if isinstance(other, (int, float)):
      return self._static(other, "!=")
    return self.value != other

  def __eq__(self, other):
    if isinstance(other, (int, float)):
      return not self._static(other, "==")
    return self.value == other

  __hash__ = None
  __le__ = lambda self, other: self.value <= other   # noqa: E731 (x >= rate lands here)
  __lt__ = lambda self, other: self.value < other    # noqa: E731
  __ge__ = lambda self, other: self.value >= other   # noqa: E731
  __rsub__ = lambda self, other: other - self.value  # noqa: E731
  __sub__ = lambda self, other: self.value - other   # noqa: E731
  __mul__ = __rmul__ = lambda self, other: self.value * other   # noqa: E731
  __truediv__ = lambda self, other: self.value / other          # noqa: E731
  __rtruediv__ = lambda self, other: other / self.value         # noqa: E731


def _with_rates(m, rates: Mapping[str, jax.Array]):
  """The model options `m` with each dropout rate replaced by its traced per-run value."""
  m = copy.copy(m)   # a frozen dataclass: fields are set on the copy without its checks
  for name, value in rates.items():
    object.__setattr__(m, name, _Rate(value, getattr(m, name) > 0))
  return m


def hyperparameters(runs: Sequence[Run]) -> dict[str, jax.Array]:
  """The per-run values of a group, {name: [R] float32}."""
  out = {k: [getattr(r.opts.optim, k) for r in runs] for k in ("lr", "kg_lr", "l2", "kg_l2")}
  for k in dropout_fields(runs[0].opts.model):
    out[k] = [getattr(r.opts.model, k) for r in runs]
  return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}


def make_step_fns(opts: options.RunOptions, steps_per_epoch: tuple[int, int] = (1, 1),
                  width: int | None = None):
  """The vmapped and jitted chunks of CF (and KG) steps of a group (`opts`: any of its runs).

  fn(params [R, ...], opt [R, ...], graph, batches [R, S, B, c], kg_batches [R, S, B', 4],
  rng [R], hyper {name: [R]}, active [R] bool) -> (params, opt, losses [R, S]). Each run's chunk
  is train.make_step_fns' chunk with its own hyperparameters; an inactive run keeps its params
  and optimizer state. With a constant lr_schedule the Adam step is optax.adam(1.0)'s update
  times the run's rate, which is optax.adam(lr)'s update exactly (and its state).

  `width`: runs per vmap. None (or >= R): `jax.vmap` over all R runs, one wide program (what an
  accelerator wants); 1: `lax.map`, the runs one after another inside the program, each with the
  single run's shapes (on a CPU, faster than the wide program, whose arrays outgrow the caches);
  w: `lax.map` over vmaps of w runs.
  """
  m, o, lib = opts.model, opts.optim, opts.model_lib
  joint = o.schedule == "joint" and opts.kg_phase
  per_run_lr = o.lr_schedule == "constant"
  if per_run_lr:
    tx_cf = tx_kg = optax.adam(1.0)
  else:
    tx_cf, tx_kg = experiment.make_optimizers(opts, steps_per_epoch)
  drop = dropout_fields(m)

  def cf_loss(params, graph, m, batch, rng, kg_batch, hyper):
    loss = lib.cf_loss(params, graph, m, batch, rng, hyper["l2"])
    if joint:
      loss = loss + lib.kg_loss(params, graph, m, kg_batch, hyper["kg_l2"])
    return loss

  def kg_loss(params, graph, m, batch, rng, kg_batch, hyper):
    return lib.kg_loss(params, graph, m, batch, hyper["kg_l2"])

  def scan(loss_fn, tx, lr_name):
    def steps(params, opt, graph, batches, kg_batches, rng, hyper, active):
      m_run = _with_rates(m, {k: hyper[k] for k in drop})

      def step(carry, xs):
        params, opt = carry
        i, batch, kg_batch = xs
        loss, grads = jax.value_and_grad(loss_fn)(params, graph, m_run, batch,
                                                  jax.random.fold_in(rng, i), kg_batch, hyper)
        updates, opt = tx.update(grads, opt, params)
        if per_run_lr:
          updates = jax.tree.map(lambda u: hyper[lr_name] * u, updates)
        return (optax.apply_updates(params, updates), opt), loss
      idx = jnp.arange(batches.shape[0])
      (new_params, new_opt), losses = jax.lax.scan(step, (params, opt),
                                                   (idx, batches, kg_batches))
      keep = lambda new, old: jnp.where(active, new, old)
      return jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_opt, opt), losses

    def stacked(params, opt, graph, batches, kg_batches, rng, hyper, active):
      per_run = lambda xs: steps(xs[0], xs[1], graph, *xs[2:])
      xs = (params, opt, batches, kg_batches, rng, hyper, active)
      n = active.shape[0]
      if width is None or (width >= n and width > 1):
        return jax.vmap(per_run)(xs)
      return jax.lax.map(per_run, xs, batch_size=None if width == 1 else width)
    return jax.jit(stacked, donate_argnums=(0, 1))

  return scan(cf_loss, tx_cf, "lr"), scan(kg_loss, tx_kg, "kg_lr")


def default_width() -> int | None:
  """Runs per vmap when not given: all on an accelerator, 1 (lax.map) on a CPU."""
  return 1 if jax.default_backend() == "cpu" else None


_fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))


def _stack(trees):
  """[R, ...] leaves from R pytrees (stacked on the host: no compile per leaf shape)."""
  return jax.device_put(jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees))


# The job --------------------------------------------------------------------------------------

def sweep(config: ml_collections.ConfigDict | dict, seeds: Sequence[int],
          grid: Mapping[str, Sequence[Any]], workdir, *, width: int | None | str = "auto",
          stop_after_epochs: int | None = None) -> dict[str, dict[str, Any]]:
  """Trains every run of seeds x grid into workdir/<run>/ -> {run name: results.json's dict}.

  `width`: runs per vmap (see make_step_fns); "auto" is all of a group's runs on an
  accelerator and 1 on a CPU. Rerunning resumes every run from its latest checkpoint.
  `stop_after_epochs` stops each group as if killed after that many epochs (for tests of
  resume) and returns {}.
  """
  if width == "auto":
    width = default_width()
  if width is not None and (not isinstance(width, int) or width < 1):
    raise options.ConfigError(f"sweep: width={width!r}: expected a positive integer, None "
                              "(all runs) or 'auto'")
  runs = expand(config, seeds, grid)   # every config is checked before anything is written
  root = pathlib.Path(workdir)
  dirs = {r.name: Workdir(root / r.name) for r in runs}
  for r in runs:
    if dirs[r.name].path.exists():
      train._check_workdir(dirs[r.name], r.opts.to_dict())
  groups = group(runs)
  results: dict[str, dict[str, Any]] = {}
  with contextlib.ExitStack() as stack:
    for r in runs:
      stack.enter_context(dirs[r.name].lock())
      train._check_workdir(dirs[r.name], r.opts.to_dict())
    write_text_atomic(root / "sweep.json", json.dumps(
        {"seeds": [int(s) for s in seeds], "grid": {k: list(map(_plain, v))
                                                    for k, v in grid.items()},
         "groups": [[r.name for r in g] for g in groups]}, indent=2))
    for g, runs_g in enumerate(groups):
      print(f"sweep group {g + 1}/{len(groups)}: {len(runs_g)} runs")
      out = _train_group(runs_g, [dirs[r.name] for r in runs_g], width, stop_after_epochs)
      if stop_after_epochs is not None:
        return {}
      results.update(out)
  return results


def _plain(value):
  return value if isinstance(value, (int, float, str, bool)) or value is None else repr(value)


def _train_group(runs: list[Run], wds: list[Workdir], width: int | None,
                 stop_after_epochs: int | None) -> dict[str, dict[str, Any]]:
  t_start = time.time()
  first = runs[0]
  exp = experiment.build(first.config, first.opts)   # the group's data, split and CKG
  exps = [dataclasses.replace(exp, config=r.config, opts=r.opts) for r in runs]
  sources = [train.pretrained_source(e, wd) for e, wd in zip(exps, wds)]
  for wd, r in zip(wds, runs):
    wd.write_config(r.opts.to_dict())
  graph = jax.device_put(exp.graph)
  samplers = {}
  for r in runs:
    if r.opts.seed not in samplers:
      samplers[r.opts.seed] = pipeline.make_sampler(r.opts, exp.ds, exp.split, exp.graph)
  steps = next(iter(samplers.values())).steps
  cf_fn, kg_fn = make_step_fns(first.opts, steps, width)
  hyper = hyperparameters(runs)
  evaluate_fn = exp.evaluate_fn()
  valid_eval = exp.evaluator("valid", experiment.evaluate.RANKING_METRICS)
  test_eval = exp.evaluator("test")
  test_curve_eval = test_eval.with_metrics(experiment.evaluate.RANKING_METRICS)

  # Each run's start: its latest checkpoint, or its own initialisation.
  n = len(runs)
  ckpts, logs, states, restored_any = [], [], [], []
  for r, e, wd, source in zip(runs, exps, wds, sources):
    t = r.opts.train
    ckpt = checkpoint.Checkpoints(wd.checkpoints, keep=t.keep_checkpoints,
                                  metric=t.select_metric)
    tx_cf, tx_kg = experiment.make_optimizers(r.opts, steps)
    state = e.init_state(tx_cf, tx_kg)
    restored = ckpt.restore_latest(train._state_dict(state))
    if restored is not None:
      state = TrainState(**restored)
    elif r.opts.start.pretrained:
      source = source or train.pretrained_source(e, wd)
      params = pretrained.with_pretrained(state.params, r.opts.start, source, exp.graph)
      state = e.init_state(tx_cf, tx_kg, params)
    state = jax.device_put(state)
    ckpts.append(ckpt)
    states.append(state)
    restored_any.append(restored is not None)
    logs.append(wd.open_log(int(state.epoch) if restored is not None else -1,
                            tensorboard=t.tensorboard))

  def validate(i: int, state: TrainState) -> TrainState:
    r = runs[i]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):   # its lines, each prefixed with the run's name
      state = train._validate(state, opts=r.opts, evaluate_fn=evaluate_fn,
                              valid_eval=valid_eval, test_eval=test_curve_eval, log=logs[i],
                              ckpt=ckpts[i], t_start=t_start)
    for line in text.getvalue().splitlines():
      print(f"{r.name}: {line}")
    return state

  for i, r in enumerate(runs):
    if not restored_any[i] and r.opts.train.eval_start:
      states[i] = validate(i, states[i])
  epoch = [int(s.epoch) for s in states]
  failed: dict[int, str] = {}

  def done(i: int) -> bool:
    t = runs[i].opts.train
    return (i in failed or int(states[i].bad_evals) >= t.patience or epoch[i] >= t.epochs)

  params = _stack([s.params for s in states])
  opt_cf = _stack([s.opt_cf for s in states])
  opt_kg = _stack([s.opt_kg for s in states])
  states = [s.replace(params=None, opt_cf=None, opt_kg=None) for s in states]   # stacked now
  base_keys = jnp.stack([jax.random.key(r.opts.seed) for r in runs])
  m, spc = first.opts.model, first.opts.train.steps_per_call
  joint = first.opts.kg_phase and first.opts.optim.schedule == "joint"

  def sample(e: int):
    """The chunked batches of epoch `e` for the seeds of the runs still training."""
    seeds = {runs[i].opts.seed for i in range(n) if not done(i)}
    out = {}
    for seed in seeds:
      cf, kg = samplers[seed](e)
      out[seed] = (pipeline.chunks(cf, spc), None if kg is None else pipeline.chunks(kg, spc))
    return out

  def stacked(by_seed, part: int):
    """[C, R, S, B, c] from each run's chunks (zeros for a run not sampled)."""
    like = next(iter(by_seed.values()))[part]
    return np.stack([by_seed[r.opts.seed][part] if r.opts.seed in by_seed
                     else np.zeros_like(like) for r in runs], axis=1)

  epoch_times: list[list[float]] = [[] for _ in runs]
  pending = [i for i in range(n) if not done(i)]
  start = min((epoch[i] for i in pending), default=0)
  stop = max((runs[i].opts.train.epochs for i in pending), default=0)
  if start:
    print(f"resuming from epoch {start} in {wds[0].path.parent}")
  prefetch = pipeline.Prefetch(sample, start, stop)
  try:
    for e in range(start, stop):
      active = [not done(i) and epoch[i] == e for i in range(n)]
      if not any(not done(i) for i in range(n)):
        break
      if not any(active):
        continue
      t0 = time.time()
      by_seed = prefetch(e)
      mask = jnp.asarray(active)
      keys = _fold(base_keys, e)
      cf_chunks = stacked(by_seed, 0)
      kg_chunks = stacked(by_seed, 1) if first.opts.kg_phase else None
      kg_for_cf = kg_chunks if joint else np.zeros((*cf_chunks.shape[:4], 4), np.int32)
      losses = []
      for c in range(cf_chunks.shape[0]):
        params, opt_cf, loss = cf_fn(params, opt_cf, graph, cf_chunks[c], kg_for_cf[c],
                                     _fold(keys, c), hyper, mask)
        losses.append(loss)
      cf_losses = np.asarray(jnp.concatenate(losses, axis=1))   # [R, steps]
      _check(cf_losses, active, failed, runs, "CF", e)
      kg_losses = None
      if first.opts.kg_phase and not joint:
        mask = jnp.asarray([a and i not in failed for i, a in enumerate(active)])
        losses = []
        for chunk in kg_chunks:
          params, opt_kg, loss = kg_fn(params, opt_kg, graph, chunk, chunk, keys, hyper, mask)
          losses.append(loss)
        kg_losses = np.asarray(jnp.concatenate(losses, axis=1))
        _check(kg_losses, active, failed, runs, "KG", e)
      seconds = time.time() - t0
      host = None   # the stacked state on the host, fetched once when a run needs its slice
      for i in range(n):
        if not active[i] or i in failed:
          continue
        epoch[i] = e + 1
        states[i] = states[i].replace(epoch=jnp.asarray(e + 1, jnp.int32))
        epoch_times[i].append(seconds)
        logs[i].write(epoch=e + 1, cf_loss=float(cf_losses[i].mean()),
                      kg_loss=None if kg_losses is None else float(kg_losses[i].mean()),
                      epoch_seconds=seconds, wall=time.time() - t_start)
        t = runs[i].opts.train
        if (e + 1) % t.eval_every == 0 or e + 1 == t.epochs:
          host = jax.device_get((params, opt_cf, opt_kg)) if host is None else host
          state = validate(i, _full(states[i], host, i))
          states[i] = state.replace(params=None, opt_cf=None, opt_kg=None)
          if int(state.bad_evals) >= t.patience:
            print(f"{runs[i].name}: early stopping at epoch {e + 1}")
      if stop_after_epochs is not None and e + 1 - start >= stop_after_epochs:
        for i in range(n):
          if active[i] and i not in failed:
            host = jax.device_get((params, opt_cf, opt_kg)) if host is None else host
            ckpts[i].save(e + 1, train._state_dict(_full(states[i], host, i)))
            ckpts[i].wait()
        return {}
  finally:
    prefetch.close()
    for log in logs:
      log.close()

  results, host = {}, jax.device_get((params, opt_cf, opt_kg))
  for i, r in enumerate(runs):
    if i in failed:
      results[r.name] = {"error": failed[i]}
      continue
    results[r.name] = train.finish_run(
        exps[i], wds[i], ckpts[i], _full(states[i], host, i),
        evaluate_fn=evaluate_fn, valid_eval=valid_eval, test_eval=test_eval, t_start=t_start,
        epoch_times=epoch_times[i])
  return results


def _full(state: TrainState, host, i: int) -> TrainState:
  """Run i's whole TrainState: its record with its slice of the stacked (params, opt_cf, opt_kg)
  fetched to the host (`host`, one transfer for all runs)."""
  params, opt_cf, opt_kg = jax.device_put(jax.tree.map(lambda x: x[i], host))
  return state.replace(params=params, opt_cf=opt_cf, opt_kg=opt_kg)


def _check(losses: np.ndarray, active, failed: dict, runs, phase: str, epoch: int) -> None:
  """Stops (and records) each active run whose `phase` losses [R, S] are not all finite."""
  for i, ok in enumerate(np.isfinite(losses).all(axis=1)):
    if active[i] and not ok and i not in failed:
      try:
        train._check_finite(losses[i], phase, epoch)
      except train.TrainingError as e:
        failed[i] = str(e)
        print(f"{runs[i].name}: stopped: {e}")
