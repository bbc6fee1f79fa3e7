"""Crash consistency end to end: `kgax train` killed (SIGKILL) at each critical instant, then
rerun with the same command until it finishes, ends with exactly the metrics of an
uninterrupted run, and metrics.jsonl holds each logged step once. Also: one writer per workdir.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = f"{REPO / 'configs' / 'test.py'}"
# 4 epochs, validation every epoch: every phase of the loop is reached several times.
ARGS = ["--config.train.epochs=4", "--config.train.eval_every=1", "--config.train.patience=100",
        "--config.train.eval_start=true"]

# (point, K): the K-th time the point is reached. Between the best and the latest save is the
# case that used to resume to a wrong best epoch.
KILLS = [
    ("after_epoch_log", 2),
    ("after_validation_log", 1),   # the epoch-0 validation, before its checkpoint
    ("after_validation_log", 3),
    ("before_best_save", 2),
    ("after_best_save", 2),
    ("before_best_rename", 2),     # inside the Orbax write of a best checkpoint
    ("before_latest_rename", 3),   # inside the Orbax write of a latest checkpoint
    ("after_latest_save", 2),
    ("before_results", 1),
]


# The runs of this module share a persistent compilation cache (one per test process, whose runs
# never compile at the same time), which halves each run; a warm cache gives the same results.
_CACHE = {}


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
  _CACHE.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax-cache")),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  yield
  _CACHE.clear()


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", **_CACHE)
  env.pop("KGAX_KILL_AT", None)
  return env


def _train(workdir, kill=None, timeout=600):
  env = _env()
  if kill:
    env["KGAX_KILL_AT"] = f"{kill[0]}:{kill[1]}"
  return subprocess.run([sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG,
                         "--workdir", str(workdir), *ARGS], capture_output=True, text=True,
                        env=env, timeout=timeout, cwd=REPO)


def _metrics(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in ("wall", "epoch_seconds")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full")
  proc = _train(workdir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads((workdir / "results.json").read_text()), _metrics(workdir)


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILLS, ids=[f"{p}-{k}" for p, k in KILLS])
def test_killed_run_resumes_to_the_same_result(kill, reference, tmp_path):
  results, rows = reference
  proc = _train(tmp_path, kill)
  assert proc.returncode == -9, (kill, proc.returncode, proc.stderr[-1500:])
  assert not (tmp_path / "results.json").exists()
  proc = _train(tmp_path)
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = json.loads((tmp_path / "results.json").read_text())
  assert got["best_epoch"] == results["best_epoch"]
  assert got["test"] == results["test"] and got["valid"] == results["valid"]
  assert _metrics(tmp_path) == rows   # each logged step once, in order


@pytest.mark.slow
def test_second_writer_is_refused_with_one_line(tmp_path):
  """While one `kgax train` holds the workdir, a second is refused with one line and changes
  nothing; the lock does not outlive a killed holder."""
  env = _env()
  first = subprocess.Popen([sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG,
                            "--workdir", str(tmp_path), *ARGS, "--config.train.epochs=400",
                            "--config.train.eval_every=100"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                           cwd=REPO)
  try:
    deadline = time.time() + 300
    while not (tmp_path / "metrics.jsonl").exists() and time.time() < deadline:
      time.sleep(0.2)
    assert (tmp_path / "metrics.jsonl").exists()
    second = subprocess.run([sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG,
                             "--workdir", str(tmp_path), *ARGS, "--config.train.epochs=400",
                             "--config.train.eval_every=100"], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=600)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert "another kgax process" in lines[0] and str(tmp_path) in lines[0]
  finally:
    first.kill()
    first.wait()
  # the killed holder left no stuck lock: the same command resumes and finishes
  proc = subprocess.run([sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG,
                         "--workdir", str(tmp_path), *ARGS, "--config.train.epochs=400",
                         "--config.train.eval_every=100"],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture
def small_disk(tmp_path):
  """A tmpfs mounted on a fresh folder (needs root; skipped where mounting is not allowed), and
  a function that resizes it."""
  mount = tmp_path / "disk"
  mount.mkdir()
  proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")

  def resize(size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)
  try:
    yield mount, resize
  finally:
    subprocess.run(["umount", "-l", str(mount)], check=False)


# Sizes at which the run fills the disk in its first best save and in the second epoch's saves
# (the workdir of a finished run is about 1.1 MB; 400k, in the first latest save, passes too).
@pytest.mark.slow
@pytest.mark.parametrize("size", ["100k", "1000k"])
def test_full_disk_stops_with_one_line_and_resumes(size, small_disk, reference):
  """A run that fills its disk stops with one line (no traceback), keeps what it had written,
  and the same command, once there is room, ends with the uninterrupted run's metrics."""
  results, rows = reference
  mount, resize = small_disk
  resize(size)
  workdir = mount / "w"
  proc = _train(workdir)
  lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("train:", "epoch "))]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith("kgax: error: ") and "no space left on the device" in lines[0]
  assert (workdir / "config.json").exists() and not (workdir / "results.json").exists()
  resize("16m")
  proc = _train(workdir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = json.loads((workdir / "results.json").read_text())
  assert got["best_epoch"] == results["best_epoch"]
  assert got["test"] == results["test"] and got["valid"] == results["valid"]
  assert _metrics(workdir) == rows
