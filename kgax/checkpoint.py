"""Orbax checkpoints of the training state: the latest N and the best by validation metric.

Layout under the checkpoint directory: latest/<step> (the newest `keep` steps) and best/<step>
(the step with the best metric). Orbax writes a step into <step>.orbax-checkpoint-tmp and
renames it when complete, so a step directory is complete or absent; a leftover tmp directory
(a kill mid-write) is not a step, is replaced by the next save of that step, and is removed when
a writable `Checkpoints` opens.

Invariant, true at every instant, wherever the process is killed: for the newest usable
latest/L, best/ holds the step that L's state records as `best_epoch` (unless it is -1), or a
step after L. It holds because
  * `save` writes best/ before latest/, and best/ drops a step only once a better one is
    complete;
  * a step is written once: saving a step that exists (or, in best/, one before a step that
    exists) is a no-op.
A best/ step after L is left by a run killed between its best and latest saves: resuming from L
recomputes the same epochs (training is deterministic given the state), reaches that step again
as an improvement, and its best save is then a no-op.

Damage (a cut or garbled file) is found on restore: Orbax fails, or the arrays do not match the
checksum saved in the step's metadata. `restore_latest` (resume) falls back to the newest usable
latest step that satisfies the invariant and, when writable, deletes the newer unusable steps,
which the run rewrites. `restore` (evaluate) raises `CheckpointError` naming the damaged step.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import pathlib
import sys
import tempfile
import threading
import warnings
import zlib

import jax
import numpy as np
import orbax.checkpoint as ocp

from kgax import faults


class CheckpointError(RuntimeError):
  """A checkpoint is missing, damaged or asked for by a bad name (one-line message)."""


class _Unusable(Exception):
  """A step that cannot be restored; the message says why."""


def _abstract(tree):
  """Restore targets: an array's shape, dtype and sharding; a leaf with no sharding (from
  jax.eval_shape) goes to the first device, not to the devices it was saved from."""
  default = jax.sharding.SingleDeviceSharding(jax.devices()[0])

  def target(leaf):
    s = ocp.utils.to_shape_dtype_struct(leaf)
    if isinstance(s, jax.ShapeDtypeStruct) and getattr(s, "sharding", None) is None:
      s = jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=default)
    return s
  return jax.tree.map(target, tree)


def _global(tree):
  """In a multi-process run, the process-local arrays of `tree` (the scalars a step updates on
  the host) as arrays replicated over every process's devices, which Orbax can save."""
  if jax.process_count() == 1:
    return tree
  everywhere = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(jax.devices()), ("all",)),
                                          jax.sharding.PartitionSpec())

  def leaf(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return x
    a = np.asarray(x)
    return jax.make_array_from_callback(a.shape, everywhere, lambda index: a[index])
  return jax.tree.map(leaf, tree)


def _host(leaf) -> np.ndarray | None:
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    if not leaf.sharding.is_fully_replicated:
      return None
    leaf = leaf.addressable_data(0)
  return np.asarray(leaf)


def _digest(tree) -> str | None:
  """CRC32 of every leaf's dtype, shape and bytes; None when a leaf is not readable here."""
  crc = 0
  for leaf in jax.tree.leaves(tree):
    a = _host(leaf)
    if a is None:
      return None
    crc = zlib.crc32(f"{a.dtype}{a.shape};".encode(), crc)
    crc = zlib.crc32(np.ascontiguousarray(a).reshape(-1).view(np.uint8), crc)
  return f"crc32:{crc:08x}"


def _reason(e: BaseException) -> str:
  """The first line of the innermost cause of `e`, shortened."""
  while True:
    inner = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    if inner is None:
      break
    e = inner
  lines = str(e).strip().splitlines()
  text = f"{type(e).__name__}: {lines[0] if lines else ''}"
  return text if len(text) <= 200 else text[:197] + "..."


def _quiet_closed_loop_errors() -> None:
  """Installs (once) a sys.unraisablehook that drops the RuntimeError "Event loop is closed":
  when an Orbax restore fails, its reads still in flight complete into the event loop that
  Orbax has closed, some after the error has been reported in one line (the process goes on:
  a resume falls back to an older step). Every other unraisable exception reaches the previous
  hook."""
  previous = sys.unraisablehook
  if getattr(previous, "kgax_quiet", False):
    return
  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and (
        str(unraisable.exc_value) == "Event loop is closed"):
      return
    previous(unraisable)
  hook.kgax_quiet = True
  sys.unraisablehook = hook


def _quiet_abandoned_reads() -> None:
  """After a failed restore: the coroutines and tasks of its abandoned reads, never awaited or
  never retrieved, are collected without a warning or an asyncio log record."""
  warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                          category=RuntimeWarning)
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _held_stderr():
  """Holds what is written to file descriptor 2 inside the block and passes it on when the block
  succeeds. When it fails, the held text is dropped and descriptor 2 stays on /dev/null, with
  sys.stderr moved to a copy of the real one: a failed Orbax write (a full disk, say) prints a
  traceback from each of its writer threads, some after the save has returned, and the error
  raised says it in one line."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      yield
    except BaseException:
      devnull = os.open(os.devnull, os.O_WRONLY)
      os.dup2(devnull, 2)
      os.close(devnull)
      sys.stderr = os.fdopen(saved, "w", buffering=1)
      raise
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    held.seek(0)
    text = held.read()
    if text:
      os.write(2, text)


def _write_error(path: pathlib.Path, e: BaseException) -> str:
  """One line for a failed checkpoint write."""
  reason = _reason(e)
  if "No space left on device" in str(e) or getattr(e, "errno", None) == errno.ENOSPC:
    reason = "no space left on the device"
  elif getattr(e, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
    reason = "not writable"
  return (f"{path}: cannot write the checkpoint ({reason}); the steps already saved are intact: "
          "make room and rerun the same command to resume")


def _kill_point_path(name: str, root: pathlib.Path):
  """Orbax's local tmp-dir class with `faults.point(name)` after a step under `root` is written
  and before its tmp dir is renamed (item dirs inside the step are renamed first)."""
  class KillPointPath(ocp.path.atomicity.AtomicRenameTemporaryPath):
    async def finalize(self, *args, **kwargs):
      if pathlib.Path(self.get_final()).parent == root:
        faults.point(name)
      return await super().finalize(*args, **kwargs)
  return KillPointPath


def _manager(path: pathlib.Path, name: str, **options) -> ocp.CheckpointManager:
  if faults.armed():   # tests only: Orbax's default tmp-dir class otherwise
    options["temporary_path_class"] = _kill_point_path(f"before_{name}_rename", path)
  try:
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(**options))
  except Exception as e:
    raise CheckpointError(f"cannot list the checkpoints in {path} ({_reason(e)}): delete the "
                          "damaged step directory in it, or start a new workdir") from None


def has_steps(directory: str | pathlib.Path) -> bool:
  """Whether `directory` (a workdir's checkpoints/) holds a finished latest step, without
  opening it (Orbax writes a step under a temporary name and renames it when done)."""
  latest = pathlib.Path(directory) / "latest"
  return latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir())


class Checkpoints:
  """Two Orbax CheckpointManagers under `directory`: latest/ (keep N) and best/ (keep 1).

  read_only: never creates, writes or deletes anything (for evaluation)."""

  def __init__(self, directory: str | pathlib.Path, *, keep: int = 2, metric: str = "metric",
               read_only: bool = False, trim=None):
    directory = pathlib.Path(directory).absolute()
    self.directory, self.metric, self.read_only = directory, metric, read_only
    self._trim = trim or (lambda tree: tree)
    if read_only:   # Orbax warns about every option a read-only manager overrides
      logging.getLogger("absl").setLevel(logging.ERROR)
    opts = dict(enable_async_checkpointing=False, read_only=read_only,
                cleanup_tmp_directories=not read_only)
    self.latest = _manager(directory / "latest", "latest", max_to_keep=keep, **opts)
    self.best = _manager(directory / "best", "best", max_to_keep=1,
                         best_fn=lambda m: m[metric], best_mode="max",
                         keep_checkpoints_without_metrics=False, **opts)

  # Writing.

  def save(self, step: int, state, best_value: float | None = None) -> None:
    """Saves `state` as best (when `best_value`, an improvement, is given), then as latest.

    A step that exists already is left as it is (see the module docstring)."""
    if self.read_only:
      raise CheckpointError(f"{self.directory}: opened read-only, cannot save step {step}")
    state = _global(state)
    meta = {"digest": _digest(self._trim(state))}
    if best_value is not None:
      faults.point("before_best_save")
      if not any(s >= step for s in self.best.all_steps()):
        self._write(self.best, step, state, meta, metrics={self.metric: float(best_value)})
      faults.point("after_best_save")
    if not any(s >= step for s in self.latest.all_steps()):
      self._write(self.latest, step, state, meta)
    faults.point("after_latest_save")

  def _write(self, manager, step: int, state, meta: dict, **kwargs) -> None:
    """One Orbax save; a failure is a one-line CheckpointError. What it leaves is a tmp
    directory, not a step (removed when the workdir is next opened for writing)."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)   # Orbax logs each failed writer thread as an error
    try:
      with _held_stderr():
        before = set(threading.enumerate())
        try:
          manager.save(step, args=ocp.args.StandardSave(state), custom_metadata=meta, **kwargs)
        except Exception:
          for thread in set(threading.enumerate()) - before:   # its writers, still reporting
            thread.join(timeout=30)
          raise
    except Exception as e:   # noqa: BLE001 - any failed write is reported on one line
      raise CheckpointError(_write_error(self._path(manager, step), e)) from None
    finally:
      absl.setLevel(level)

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  # Reading.

  def _path(self, manager, step: int) -> pathlib.Path:
    return pathlib.Path(manager.directory) / str(step)

  def _read(self, manager, step: int, target):
    """The state at `step`, checked against its checksum; raises _Unusable."""
    _quiet_closed_loop_errors()
    try:
      # strict=False: a table saved with another mesh's zero padding rows (kgax/sharding.py)
      # is padded or cut to the target's; the checksum of the trimmed arrays still holds
      state = manager.restore(step, args=ocp.args.StandardRestore(_abstract(target),
                                                                  strict=False))
    except Exception as e:   # noqa: BLE001 - any failure to read makes the step unusable
      _quiet_abandoned_reads()
      gc.collect()
      raise _Unusable(_reason(e)) from None
    try:
      want = (manager.metadata(step).custom_metadata or {}).get("digest")
    except Exception:   # noqa: BLE001 - unreadable metadata: the restore itself succeeded
      want = None
    if want is not None and _digest(self._trim(state)) != want:
      raise _Unusable("its arrays do not match the checksum saved with them")
    return state

  def _consistent(self, step: int, state) -> str | None:
    """Why latest `step` breaks the invariant of the module docstring, or None."""
    if not isinstance(state, dict) or "best_epoch" not in state:
      return None
    best_epoch, best = int(state["best_epoch"]), self.best.all_steps()
    if best_epoch < 0 or best_epoch in best or any(s > step for s in best):
      return None
    return f"it records best epoch {best_epoch}, but best/ holds {list(best) or 'nothing'}"

  def _available(self, exclude=frozenset()) -> str:
    parts = []
    for name, manager in (("latest", self.latest), ("best", self.best)):
      steps = [s for s in manager.all_steps() if self._path(manager, s) not in exclude]
      if steps:
        parts.append(f"{name} {', '.join(map(str, steps))}")
    return "; ".join(parts) or "none"

  def restore_latest(self, target):
    """The newest usable latest state (None when latest/ is empty), for resuming.

    Falls back past damaged steps (one printed line) and, when writable, deletes them; raises
    CheckpointError when no step is usable."""
    steps = sorted(self.latest.all_steps(), reverse=True)
    if not steps:
      return None
    bad = []
    for step in steps:
      try:
        state = self._read(self.latest, step, target)
      except _Unusable as e:
        bad.append((step, str(e)))
        continue
      why = self._consistent(step, state)
      if why is not None:
        bad.append((step, why))
        continue
      if bad:
        names = ", ".join(f"latest/{s} ({why})" for s, why in bad)
        print(f"{self.directory}: skipping unusable {names}; resuming from latest/{step}")
        if not self.read_only:
          for s, _ in bad:
            self.latest.delete(s)
      return state
    names = "; ".join(f"{self._path(self.latest, s)} ({why})" for s, why in bad)
    raise CheckpointError(
        f"no usable checkpoint to resume from: {names}. Delete these step directories to train "
        "this workdir from the start, or start a new workdir")

  def restore_best(self, target):
    """The best state (None when best/ is empty); raises CheckpointError when it is damaged."""
    step = self.best.best_step()
    return None if step is None else self._restore_step([self.best], step, target)

  def _restore_step(self, managers, step: int, target):
    """The state at `step` from the first of `managers` whose copy is usable."""
    bad = []
    for manager in managers:
      try:
        return self._read(manager, step, target)
      except _Unusable as e:
        bad.append((self._path(manager, step), str(e)))
    names = ", ".join(f"{path} ({why})" for path, why in bad)
    raise CheckpointError(
        f"damaged checkpoint {names}; use --step with another checkpoint (available: "
        f"{self._available(exclude={path for path, _ in bad})})")

  def restore(self, which: str | int, target):
    """which: "best", "latest" or a step number (searched in latest/ then best/).

    Raises FileNotFoundError when there is no such checkpoint, CheckpointError when `which` is
    none of these or the checkpoint is damaged."""
    if which in ("best", "latest"):
      manager = self.best if which == "best" else self.latest
      step = manager.best_step() if which == "best" else manager.latest_step()
      if step is None:
        raise FileNotFoundError(f"no {which} checkpoint in {self.directory}")
      return self._restore_step([manager], step, target)
    try:
      step = int(which)
    except (TypeError, ValueError):
      raise CheckpointError(
          f"checkpoint {which!r}: expected 'best', 'latest' or a step number (available: "
          f"{self._available()})") from None
    managers = [m for m in (self.latest, self.best) if step in m.all_steps()]
    if not managers:
      raise FileNotFoundError(
          f"no checkpoint at step {step} in {self.directory}; available: {self._available()}")
    return self._restore_step(managers, step, target)   # the same step in both is the same state
