"""Orbax checkpoints of the training state: the latest N and the best by validation metric."""

from __future__ import annotations

import logging
import pathlib

import jax
import orbax.checkpoint as ocp


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
  """Two Orbax CheckpointManagers under `directory`: latest/ (keep N) and best/ (keep 1)."""

  def __init__(self, directory: str | pathlib.Path, *, keep: int = 2, metric: str = "metric",
               read_only: bool = False):
    directory = pathlib.Path(directory).absolute()
    self.metric = metric
    if read_only:   # Orbax warns about every option a read-only manager overrides
      logging.getLogger("absl").setLevel(logging.ERROR)
    opts = dict(enable_async_checkpointing=False, read_only=read_only)
    self.latest = ocp.CheckpointManager(
        directory / "latest", options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts))
    self.best = ocp.CheckpointManager(
        directory / "best", options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m[metric], best_mode="max",
            keep_checkpoints_without_metrics=False, **opts))

  def save(self, step: int, state, best_value: float | None = None) -> None:
    """Saves `state` as latest; also as best when `best_value` (an improvement) is given."""
    if step not in self.latest.all_steps():
      self.latest.save(step, args=ocp.args.StandardSave(state))
    if best_value is not None:
      self.best.save(step, args=ocp.args.StandardSave(state),
                     metrics={self.metric: float(best_value)})

  def _restore(self, manager, step, target):
    if step is None:
      return None
    return manager.restore(step, args=ocp.args.StandardRestore(_abstract(target)))

  def restore_latest(self, target):
    return self._restore(self.latest, self.latest.latest_step(), target)

  def restore_best(self, target):
    return self._restore(self.best, self.best.best_step(), target)

  def restore(self, which: str | int, target):
    """which: "best", "latest" or a step number (searched in latest/ then best/)."""
    if which == "best":
      state = self.restore_best(target)
    elif which == "latest":
      state = self.restore_latest(target)
    else:
      step = int(which)
      manager = self.latest if step in self.latest.all_steps() else self.best
      if step not in manager.all_steps():
        raise FileNotFoundError(
            f"no checkpoint at step {step}; available: latest {list(self.latest.all_steps())}, "
            f"best {list(self.best.all_steps())}")
      state = self._restore(manager, step, target)
    if state is None:
      raise FileNotFoundError(f"no {which} checkpoint found")
    return state

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()
