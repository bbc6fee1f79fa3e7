"""A run's workdir: the one reader and writer of its files.

    config.json          the resolved config (written once, atomically)
    metrics.jsonl        one JSON line per epoch and per evaluation, each logged step once
    events.out.tfevents.*  the same curves for TensorBoard (optional writer, tensorboardX)
    checkpoints/latest/  Orbax checkpoints of the whole training state (latest N)
    checkpoints/best/    the checkpoint with the best validation metric
    results.json         validation and test metrics of the best checkpoint (best_epoch),
                         epochs_run, how the run stopped (capped: cut at train.epochs while
                         still improving under a constant rate; schedule_ended: a decaying
                         schedule reached its end; neither: early stopping), timings, the data
    .lock                held (flock) by the one process writing here

Every file is replaced whole (written beside, then renamed), so a kill at any instant leaves
either the old or the new version. metrics.jsonl is cut back to the restored epoch when a run
resumes, so the rows recomputed after a kill are not logged twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib


class WorkdirError(RuntimeError):
  """The workdir cannot be used as asked; the message names it and says what to do."""


def _describe(e: OSError) -> str:
  if e.errno == errno.ENOSPC:
    return "no space left on the device"
  if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
    return "not writable"
  return e.strerror or str(e)


def write_text_atomic(path: pathlib.Path, text: str) -> None:
  """Writes `path` whole or not at all: a temporary file beside it, fsynced, then renamed."""
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as e:
    with contextlib.suppress(OSError):
      tmp.unlink()
    raise WorkdirError(f"{path}: cannot write ({_describe(e)}); nothing was changed") from None


def read_json(path: pathlib.Path) -> dict | None:
  """The JSON object in `path`, None when it does not exist; a damaged file is a one-line
  WorkdirError naming it."""
  path = pathlib.Path(path)
  if not path.exists():
    return None
  try:
    data = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise WorkdirError(f"{path}: damaged or unreadable ({type(e).__name__}: {e}); restore it or "
                       "use a new workdir") from None
  if not isinstance(data, dict):
    raise WorkdirError(f"{path}: expected a JSON object")
  return data


class Workdir:
  """Paths and the files of one workdir."""

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    self.config_path = self.path / "config.json"
    self.metrics_path = self.path / "metrics.jsonl"
    self.results_path = self.path / "results.json"
    self.checkpoints = self.path / "checkpoints"

  def read_config(self) -> dict | None:
    return read_json(self.config_path)

  def read_results(self) -> dict | None:
    return read_json(self.results_path)

  def write_config(self, config: dict) -> None:
    text = json.dumps(config, indent=2, sort_keys=True)
    if self.config_path.exists() and self.config_path.read_text() == text:
      return   # a resumed run leaves the file alone
    write_text_atomic(self.config_path, text)

  def write_results(self, results: dict) -> None:
    write_text_atomic(self.results_path, json.dumps(results, indent=2))

  def read_metrics(self) -> list[dict]:
    """The rows of metrics.jsonl (a torn last line, from a kill mid-write, is skipped)."""
    if not self.metrics_path.exists():
      return []
    rows = []
    for line in self.metrics_path.read_text().splitlines():
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue
    return rows

  @contextlib.contextmanager
  def lock(self, process: int = 0):
    """Holds the workdir for one writer; a second one is refused with one line. The lock is
    the kernel's (flock): a killed process cannot leave it held. Process `process` of a
    multi-process run holds its own lock (`.lock`, `.lock.1`, ...)."""
    name = ".lock" if process == 0 else f".lock.{process}"
    try:
      self.path.mkdir(parents=True, exist_ok=True)
      fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise WorkdirError(f"{self.path}: cannot write here ({_describe(e)})") from None
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        raise WorkdirError(f"{self.path}: another kgax process (pid {holder}) is writing here; "
                           "wait for it or use another workdir") from None
      os.ftruncate(fd, 0)
      os.pwrite(fd, str(os.getpid()).encode(), 0)
      yield self
    finally:
      os.close(fd)

  def open_log(self, through_epoch: int, tensorboard: bool = False,
               writer: bool = True) -> MetricsLog:
    """The metrics log of a run resumed at `through_epoch` (-1: a fresh start): rows of later
    epochs, which the resumed run recomputes, are dropped first. Not `writer` (a process other
    than 0): a log that writes nothing."""
    if not writer:
      return MetricsLog(None, None, through_epoch + 1)
    rows = [r for r in self.read_metrics() if r.get("epoch", -1) <= through_epoch]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if not self.metrics_path.exists() or self.metrics_path.read_text() != text:
      write_text_atomic(self.metrics_path, text)
    return MetricsLog(self.metrics_path, self.path if tensorboard else None, through_epoch + 1)


class MetricsLog:
  """Appends rows to metrics.jsonl (one line each, flushed) and, with a TensorBoard directory,
  their numbers to event files (tensorboardX, when installed: `pip install kgax[tensorboard]`).
  The event file is opened at the first row, so a run that logs nothing adds none."""

  def __init__(self, path: pathlib.Path, tensorboard_dir: pathlib.Path | None, first_epoch: int):
    self.path = path
    self._tb_dir, self._first_epoch, self._tb = tensorboard_dir, first_epoch, None

  def _tensorboard(self):
    if self._tb is None and self._tb_dir is not None:
      try:
        from tensorboardX import SummaryWriter
      except ImportError:
        self._tb_dir = None
        return None
      # purge_step hides the events a killed run had logged past the restored epoch
      self._tb = SummaryWriter(str(self._tb_dir), purge_step=self._first_epoch)
    return self._tb

  def write(self, **row) -> None:
    if self.path is None:
      return
    try:
      with self.path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    except OSError as e:
      raise WorkdirError(f"{self.path}: cannot write ({_describe(e)})") from None
    tb = self._tensorboard() if "epoch" in row else None
    if tb is not None:
      prefix = row.get("split", "train")
      for key, value in row.items():
        if isinstance(value, (int, float)) and key not in ("epoch", "wall"):
          tb.add_scalar(f"{prefix}/{key}", value, row["epoch"])
      tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
