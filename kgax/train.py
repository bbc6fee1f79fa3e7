"""Training: alternating CF / KG phases, validation, early stopping, checkpoints, resume.

`train_and_evaluate(config, workdir)` is the whole job (the `kgax train` command is a thin
wrapper); it reads top to bottom: parse and check the config, hold the workdir, build the data
and the model, restore or start the state, loop over epochs, evaluate the best checkpoint.
The workdir's files are kgax/workdir.py's; a run killed at any instant and rerun with the same
command ends with the metrics of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from kgax import checkpoint, coldstart, experiment, faults, options, pipeline, pretrained, sharding
from kgax.experiment import TrainState
from kgax.workdir import Workdir


class TrainingError(RuntimeError):
  """Training cannot go on (non-finite loss, inconsistent workdir)."""


# Steps ----------------------------------------------------------------------------------------

def make_step_fns(opts: options.RunOptions, mesh, steps_per_epoch: tuple[int, int] = (1, 1),
                  *, layout: sharding.Layout | None = None, state: TrainState | None = None,
                  graph_sharding=None):
  """Jitted functions running a chunk of CF (or KG) steps in one lax.scan.

  The graph is an argument, not a closed-over constant: XLA would otherwise embed (and try to
  constant-fold through) the edge arrays. With the joint schedule each CF step adds the loss of
  one KG batch. With a `layout` (a mesh with a "model" axis) the parameters and optimizer state
  keep the shardings of `state` (placed by `layout.place`) and the model sees them trimmed.
  `graph_sharding` (a sharding or a pytree of them for the Graph) defaults to replicated.
  """
  m, o, lib = opts.model, opts.optim, opts.model_lib
  tx_cf, tx_kg = experiment.make_optimizers(opts, steps_per_epoch)
  joint = o.schedule == "joint" and opts.kg_phase
  trim = layout.trim if layout is not None else (lambda p: p)

  def cf_loss(params, graph, batch, rng, kg_batch):
    params = trim(params)
    loss = lib.cf_loss(params, graph, m, batch, rng, o.l2)
    if joint:
      loss = loss + lib.kg_loss(params, graph, m, kg_batch, o.kg_l2)
    return loss

  def kg_loss(params, graph, batch, rng, kg_batch):
    return lib.kg_loss(trim(params), graph, m, batch, o.kg_l2)

  def scan(loss_fn, tx):
    def steps(params, opt, graph, batches, kg_batches, rng):
      def step(carry, xs):
        params, opt = carry
        i, batch, kg_batch = xs
        loss, grads = jax.value_and_grad(loss_fn)(params, graph, batch,
                                                  jax.random.fold_in(rng, i), kg_batch)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss
      idx = jnp.arange(batches.shape[0])
      (params, opt), losses = jax.lax.scan(step, (params, opt), (idx, batches, kg_batches))
      return params, opt, losses
    rep, data = sharding.replicated(mesh), sharding.batch_sharded(mesh, axis=1)
    if state is None:
      p_sh = opt_sh = rep
    else:
      p_sh = layout.shardings(state.params)
      opt_sh = layout.shardings(state.opt_cf if tx is tx_cf else state.opt_kg)
    g_sh = rep if graph_sharding is None else graph_sharding
    fn = jax.jit(steps, donate_argnums=(0, 1),
                 in_shardings=(p_sh, opt_sh, g_sh, data, data, rep),
                 out_shardings=(p_sh, opt_sh, rep))
    if jax.process_count() == 1:
      return fn

    def call(params, opt, graph, batches, kg_batches, rng):   # every process holds the batches
      return fn(params, opt, graph, sharding.global_array(batches, data),
                sharding.global_array(kg_batches, data), rng)
    return call

  return scan(cf_loss, tx_cf), scan(kg_loss, tx_kg)


def _check_finite(losses: np.ndarray, phase: str, epoch: int):
  if not np.all(np.isfinite(losses)):
    raise TrainingError(
        f"non-finite {phase} loss at epoch {epoch} ({losses[~np.isfinite(losses)][0]}); "
        "lower optim.lr or check the data. The last good checkpoint is kept.")


def train_epoch(state: TrainState, batches, *, opts, graph, cf_fn, kg_fn) -> tuple:
  """One epoch: the CF phase, then (alternate schedule) the KG phase. -> (state, cf loss,
  kg loss or None)."""
  epoch, spc = int(state.epoch), opts.train.steps_per_call
  cf_batches, kg_batches = batches
  rng = jax.random.fold_in(jax.random.key(opts.seed), epoch)
  joint = opts.kg_phase and opts.optim.schedule == "joint"
  params, opt_cf, opt_kg = state.params, state.opt_cf, state.opt_kg
  cf_chunks = pipeline.chunks(cf_batches, spc)
  kg_for_cf = (pipeline.chunks(kg_batches, spc) if joint
               else np.zeros((*cf_chunks.shape[:3], 4), np.int32))
  losses = []
  for c in range(cf_chunks.shape[0]):
    params, opt_cf, loss = cf_fn(params, opt_cf, graph, cf_chunks[c], kg_for_cf[c],
                                 jax.random.fold_in(rng, c))
    losses.append(loss)
  cf_losses = np.asarray(jnp.concatenate(losses))   # one host sync per phase
  _check_finite(cf_losses, "CF", epoch)
  kg_loss = None
  if opts.kg_phase and not joint:
    losses = []
    for chunk in pipeline.chunks(kg_batches, spc):
      params, opt_kg, loss = kg_fn(params, opt_kg, graph, chunk, chunk, rng)
      losses.append(loss)
    kg_losses = np.asarray(jnp.concatenate(losses))
    _check_finite(kg_losses, "KG", epoch)
    kg_loss = float(kg_losses.mean())
  state = state.replace(params=params, opt_cf=opt_cf, opt_kg=opt_kg,
                        epoch=jnp.asarray(epoch + 1, jnp.int32))
  return state, float(cf_losses.mean()), kg_loss


# Workdir compatibility ------------------------------------------------------------------------

EXTENDABLE = ("epochs", "patience")   # budget fields a rerun may raise to extend a run
# Fields that change speed, memory or logging but not what a run computes.
NEUTRAL = (("model", "score_chunk"), ("eval", "batch_size"), ("train", "keep_checkpoints"),
           ("train", "tensorboard"), ("train", "mesh"), ("train", "shard_edges"),
           ("train", "distributed"), ("train", "coordinator"), ("train", "num_processes"),
           ("train", "process_id"))


def config_difference(stored: dict, new: dict) -> str | None:
  """How a workdir's stored config.json differs from `new` (both parsed and compared as
  options): None (the same run), "extend" (only train.epochs / train.patience raised, epochs
  under a constant learning rate), or a one-line reason that reads after the workdir's name."""
  try:
    old = options.parse(stored).to_dict()
  except options.ConfigError as e:
    return (f"was written by another kgax version and cannot be resumed ({e}); use a new "
            "workdir")
  new = options.parse(new).to_dict()
  for section, field in NEUTRAL:
    if field in old[section]:
      old[section][field] = new[section].get(field)
  raised = [f for f in EXTENDABLE if new["train"][f] != old["train"][f]]
  extended = {**old, "train": {**old["train"], **{f: new["train"][f] for f in raised}}}
  if extended != new:
    diff = _first_difference(extended, new)
    return (f"holds a run with a different config ({diff}); use another workdir, or the same "
            "config to resume")
  for f in raised:
    if new["train"][f] < old["train"][f]:
      return (f"has train.{f}={old['train'][f]}; a resumed run can only raise it "
              f"(config.train.{f}={new['train'][f]})")
  if "epochs" in raised and new["optim"]["lr_schedule"] != "constant":
    return (f"has train.epochs={old['train']['epochs']} and a {new['optim']['lr_schedule']!r} "
            f"lr schedule that decays over them; only a constant rate can be extended "
            f"(config.train.epochs={new['train']['epochs']})")
  return "extend" if raised else None


def _first_difference(old, new, prefix="") -> str:
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      found = _first_difference(a, b, f"{prefix}{key}.")
      if found:
        return found
    elif a != b:
      return f"{prefix}{key}: stored {a!r}, now {b!r}"
  return ""


def _check_workdir(wd: Workdir, config_dict: dict) -> None:
  """Refuses (one line, nothing changed) a workdir that holds another run."""
  stored = wd.read_config()
  if stored is None:
    if wd.checkpoints.exists() and any(wd.checkpoints.iterdir()):
      raise TrainingError(f"{wd.path}: has checkpoints but no config.json; use a new workdir")
    return
  why = config_difference(stored, config_dict)
  if why not in (None, "extend"):
    raise TrainingError(f"{wd.config_path}: {why}")
  for f in EXTENDABLE:
    if stored["train"][f] != config_dict["train"][f]:
      print(f"extending {wd.path}: train.{f} {stored['train'][f]} -> {config_dict['train'][f]}")


# The job --------------------------------------------------------------------------------------

def _state_dict(state: TrainState) -> dict:
  return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def _validate(state: TrainState, *, opts, evaluate_fn, valid_eval, test_eval, log, ckpt,
              t_start) -> TrainState:
  """Evaluates `state` on validation after its epoch (0: the initial parameters), updates the
  early-stopping fields, logs (with log_test also the test curve row) and checkpoints."""
  epoch = int(state.epoch)
  metrics = evaluate_fn(state.params, valid_eval)
  value = metrics[opts.train.select_metric]
  # compared at the precision the best is stored in: an equal score is not an improvement
  improved = np.float32(value) > np.float32(state.best)
  state = state.replace(
      best=jnp.asarray(max(value, float(state.best)), jnp.float32),
      best_epoch=jnp.asarray(epoch if improved else int(state.best_epoch), jnp.int32),
      bad_evals=jnp.asarray(0 if improved else int(state.bad_evals) + 1, jnp.int32))
  log.write(epoch=epoch, split="valid", wall=time.time() - t_start, **metrics)
  if opts.train.log_test:   # reporting only (time-to-quality curves); never for selection
    log.write(epoch=epoch, split="test", wall=time.time() - t_start,
              **evaluate_fn(state.params, test_eval))
  faults.point("after_validation_log")
  tqdm.write(f"epoch {epoch}: valid {opts.train.select_metric} {value:.4f}"
             f" (best {float(state.best):.4f} at {int(state.best_epoch)})")
  ckpt.save(epoch, _state_dict(state), value if improved else None)
  return state


def train_and_evaluate(config: ml_collections.ConfigDict | dict, workdir, *,
                       stop_after_epochs: int | None = None) -> dict[str, Any]:
  """Trains, selects on validation, returns (and writes) the test metrics of the best checkpoint.

  Rerunning on a workdir with checkpoints resumes from the latest one. `stop_after_epochs`
  stops early as if killed (for tests of resume).
  """
  opts = options.parse(config)   # every value is checked before anything is written
  config_dict = opts.to_dict()
  wd = Workdir(workdir)
  if wd.path.exists():
    _check_workdir(wd, config_dict)
  mesh = start_devices(opts.train)
  t_start = time.time()
  exp = experiment.build(config, opts)   # data errors stop here, before the workdir is written
  source = pretrained_source(exp, wd)     # and so do a wrong start.pretrained's
  try:                                    # and edges that the devices cannot split
    graph, graph_sh = sharding.step_graph(mesh, exp.graph, exp.lib, opts.train.shard_edges)
  except ValueError as e:
    raise options.ConfigError(str(e)) from None
  with wd.lock(jax.process_index()):
    _check_workdir(wd, config_dict)   # again, now that no other writer can change it
    return _train(exp, wd, mesh, t_start, stop_after_epochs, source, config_dict,
                  sharding.place(graph, graph_sh), graph_sh)


def start_devices(t: options.TrainOptions) -> jax.sharding.Mesh:
  """Joins the other processes (train.distributed) and builds the mesh of `train.mesh`; a
  one-line ConfigError when it or the batch sizes do not fit the devices."""
  if t.distributed and not jax.distributed.is_initialized():
    kwargs = {k: v for k, v in (("coordinator_address", t.coordinator),
                                ("num_processes", t.num_processes or None),
                                ("process_id", None if t.process_id < 0 else t.process_id)) if v}
    if t.process_id == 0:
      kwargs["process_id"] = 0
    jax.distributed.initialize(**kwargs)
  try:
    mesh = sharding.make_mesh(t.mesh)
  except ValueError as e:
    raise options.ConfigError(str(e)) from None
  n_data = mesh.shape["data"]
  for name in ("batch_size", "kg_batch_size"):
    if getattr(t, name) % n_data:
      raise options.ConfigError(f"config.train.{name}={getattr(t, name)}: not divisible by the "
                                f"mesh's {n_data} data-parallel devices")
  return mesh


def pretrained_source(exp: experiment.Experiment, wd: Workdir) -> pretrained.Pretrained | None:
  """The checked rows of `start.pretrained` for a run that starts in `wd`; None without one, or
  when `wd` already has checkpoints (a resumed run does not read the pretrained workdir)."""
  if not exp.opts.start.pretrained or checkpoint.has_steps(wd.checkpoints):
    return None
  dim = jax.eval_shape(exp.init_params)["node"].shape[1]
  return pretrained.load(exp.opts.start, exp.opts.seed, exp.graph, dim, exp.split)


class _Stderr:
  """Whatever sys.stderr is at each write (a failed checkpoint write moves it; see
  checkpoint.py), so the bar's last line ends before the error is printed."""

  def write(self, text: str) -> int:
    return sys.stderr.write(text)

  def flush(self) -> None:
    sys.stderr.flush()

  def isatty(self) -> bool:
    return sys.stderr.isatty()

  @property
  def encoding(self) -> str | None:
    return getattr(sys.stderr, "encoding", None)


def _train(exp: experiment.Experiment, wd: Workdir, mesh, t_start: float,
           stop_after_epochs: int | None, source: pretrained.Pretrained | None,
           config_dict: dict, graph, graph_sh) -> dict[str, Any]:
  opts = exp.opts
  sample = pipeline.make_sampler(opts, exp.ds, exp.split, exp.graph)
  tx_cf, tx_kg = experiment.make_optimizers(opts, sample.steps)
  state = exp.init_state(tx_cf, tx_kg)
  layout = sharding.Layout.for_model(mesh, exp.lib, state.params)
  target = layout.abstract(state)   # the placed state's shapes and shardings
  cf_fn, kg_fn = make_step_fns(opts, mesh, sample.steps, layout=layout, state=target,
                               graph_sharding=graph_sh)
  evaluate_fn = exp.evaluate_fn(trim=layout.trim, graph=graph)
  # Validation runs often and selects on a ranking metric: it skips AUC, as do the test rows
  # that log_test adds for curves.
  valid_eval = exp.evaluator("valid", experiment.evaluate.RANKING_METRICS, mesh)
  test_eval = exp.evaluator("test", mesh=mesh)
  test_curve_eval = test_eval.with_metrics(experiment.evaluate.RANKING_METRICS)

  ckpt = checkpoint.Checkpoints(wd.checkpoints, keep=opts.train.keep_checkpoints,
                                metric=opts.train.select_metric, trim=layout.trim)
  restored = ckpt.restore_latest(_state_dict(target))
  # written once the run can go on: a resume refused above (damaged checkpoints) leaves the
  # stored config.json as it was, even where neutral fields (mesh, ...) differ
  if jax.process_index() == 0:
    wd.write_config(config_dict)
  if restored is not None:
    state = TrainState(**restored)
  else:
    if opts.start.pretrained:   # (all checkpoints unusable: then the source is read here)
      source = source or pretrained_source(exp, wd)
      params = pretrained.with_pretrained(state.params, opts.start, source, exp.graph)
      state = exp.init_state(tx_cf, tx_kg, params)
    state = layout.place(state)
  start_epoch = int(state.epoch)
  log = wd.open_log(start_epoch if restored is not None else -1,
                    tensorboard=opts.train.tensorboard, writer=jax.process_index() == 0)
  if start_epoch:
    print(f"resuming from epoch {start_epoch} in {wd.path}")

  epochs, t = opts.train.epochs, opts.train
  validate = functools.partial(_validate, opts=opts, evaluate_fn=evaluate_fn,
                               valid_eval=valid_eval, test_eval=test_curve_eval, log=log,
                               ckpt=ckpt, t_start=t_start)
  if restored is None and t.eval_start:
    state = validate(state)   # the start is a selection candidate (a fine-tune may keep it)
  if int(state.bad_evals) >= t.patience:
    epochs = start_epoch   # this run already stopped early: go straight to the final evaluation
  epoch_times = []
  bar = tqdm(total=epochs, initial=start_epoch, desc="train", unit="epoch", dynamic_ncols=True,
             file=_Stderr())
  prefetch = pipeline.Prefetch(sample, start_epoch, epochs)
  try:
    for epoch in range(start_epoch, epochs):
      t0 = time.time()
      state, cf_loss, kg_loss = train_epoch(state, prefetch(epoch), opts=opts, graph=graph,
                                            cf_fn=cf_fn, kg_fn=kg_fn)
      epoch_times.append(time.time() - t0)
      log.write(epoch=epoch + 1, cf_loss=cf_loss, kg_loss=kg_loss,
                epoch_seconds=epoch_times[-1], wall=time.time() - t_start)
      faults.point("after_epoch_log")
      bar.set_postfix(cf=f"{cf_loss:.4f}", kg="-" if kg_loss is None else f"{kg_loss:.4f}")
      bar.update(1)
      if (epoch + 1) % t.eval_every == 0 or epoch + 1 == epochs:
        state = validate(state)
        if int(state.bad_evals) >= t.patience:
          tqdm.write(f"early stopping at epoch {epoch + 1}")
          break
      if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
        ckpt.save(epoch + 1, _state_dict(state), None)
        ckpt.wait()
        return {}
  finally:
    prefetch.close()
    bar.close()
    log.close()
  return finish_run(exp, wd, ckpt, state, evaluate_fn=evaluate_fn, valid_eval=valid_eval,
                    test_eval=test_eval, t_start=t_start, epoch_times=epoch_times,
                    evaluate_rule=lambda rule: exp.evaluate_fn(trim=layout.trim, cold_rule=rule,
                                                                 graph=graph))


def _stop_reason(opts, epochs_run: int, bad_evals: int) -> dict[str, bool]:
  """How a run ended. `capped`: it reached train.epochs under a constant rate without early
  stopping, so more epochs might have helped; `schedule_ended`: it reached the end of a decaying
  schedule (the rate there is final_lr_fraction * lr), which is the schedule's own stop."""
  at_cap = epochs_run >= opts.train.epochs and bad_evals < opts.train.patience
  constant = opts.optim.lr_schedule == "constant"
  return {"capped": at_cap and constant, "schedule_ended": at_cap and not constant}


def finish_run(exp: experiment.Experiment, wd: Workdir, ckpt: checkpoint.Checkpoints,
               state: TrainState, *, evaluate_fn, valid_eval, test_eval, t_start: float,
               epoch_times: list[float], evaluate_rule=None) -> dict[str, Any]:
  """The end of a run: saves the last state, restores the best checkpoint, evaluates it on
  validation and test and writes (and returns) results.json's dict. With
  eval.cold_items="auto", `evaluate_rule(rule)` (default exp.evaluate_fn(cold_rule=rule)) gives
  each rule's evaluation; the one with the best validation metric (ties: the first of
  coldstart.RULES, own rows) scores test and is recorded as results["cold_items"]."""
  opts = exp.opts
  ckpt.save(int(state.epoch), _state_dict(state), None)
  ckpt.wait()
  faults.point("before_results")

  best = ckpt.restore_best(_state_dict(state))
  best = TrainState(**best) if best is not None else state
  ds, split = exp.ds, exp.split
  valid = evaluate_fn(best.params, valid_eval)
  cold = {}
  if opts.eval.cold_items == "auto":
    evaluate_rule = evaluate_rule or (lambda rule: exp.evaluate_fn(cold_rule=rule))
    metric = opts.train.select_metric
    scored = {rule: evaluate_rule(rule) if rule else evaluate_fn for rule in coldstart.RULES}
    by_rule = {rule: fn(best.params, valid_eval) if rule else valid
               for rule, fn in scored.items()}
    chosen = max(by_rule, key=lambda rule: by_rule[rule][metric])
    evaluate_fn, valid = scored[chosen], by_rule[chosen]
    cold = {"cold_items": {"selected": chosen,
                           "valid": {rule: m[metric] for rule, m in by_rule.items()}}}
  results = {
      "model": opts.model.name,
      "config": opts.name,
      "best_epoch": int(best.epoch),
      "epochs_run": int(state.epoch),
      **_stop_reason(opts, int(state.epoch), int(state.bad_evals)),
      "valid": valid,
      "test": evaluate_fn(best.params, test_eval),
      **cold,
      "wall_seconds": time.time() - t_start,
      "seconds_per_epoch": float(np.mean(epoch_times)) if epoch_times else None,
      "peak_device_memory_bytes": sharding.peak_memory(),
      "dataset": {"name": ds.name, "users": ds.n_users, "items": ds.n_items,
                  "train": len(split.train), "valid": len(split.valid), "test": len(split.test),
                  "nodes": exp.graph.n_nodes, "edges": exp.graph.n_real_edges},
  }
  if jax.process_index() == 0:
    wd.write_results(results)
  return results


__all__ = ["TrainingError", "train_and_evaluate", "config_difference", "pretrained_source",
           "start_devices",
           "make_step_fns", "train_epoch", "finish_run"]
