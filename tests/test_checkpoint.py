"""Checkpoints: round trip, the best-before-latest order under kills, damaged and leftover steps,
read-only use, and the kill points of kgax.faults."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from kgax import checkpoint, faults
from kgax.checkpoint import CheckpointError, Checkpoints

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent

# Validation values of a fake run: epochs 1, 2 and 4 improve.
VALUES = {1: 0.1, 2: 0.3, 3: 0.2, 4: 0.5}


def _state(epoch: int, best: float = -np.inf, best_epoch: int = -1) -> dict:
  """A training-state-like tree whose arrays depend on `epoch` only (deterministic training)."""
  rng = np.random.default_rng(epoch)
  return {"params": {"w": jnp.asarray(rng.normal(size=(64, 8)), jnp.float32),
                     "b": jnp.asarray(rng.normal(size=8), jnp.float32)},
          "epoch": jnp.asarray(epoch, jnp.int32), "best": jnp.asarray(best, jnp.float32),
          "best_epoch": jnp.asarray(best_epoch, jnp.int32)}


def _target() -> dict:
  return _state(0)


def _fake_train(directory) -> tuple[Checkpoints, dict]:
  """Resumes (or starts) the fake run in `directory` and runs it to the end, as the trainer."""
  ckpt = Checkpoints(directory, keep=2)
  state = ckpt.restore_latest(_target())
  state = _target() if state is None else state
  for epoch in range(int(state["epoch"]) + 1, max(VALUES) + 1):
    value = VALUES[epoch]
    improved = value > float(state["best"])
    state = _state(epoch, max(value, float(state["best"])),
                   epoch if improved else int(state["best_epoch"]))
    ckpt.save(epoch, state, value if improved else None)
  ckpt.wait()
  return ckpt, state


def _run_killed(directory, kill_at: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", KGAX_KILL_AT=kill_at)
  code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_checkpoint as t; "
          "t._fake_train(sys.argv[1]); print('finished')")
  return subprocess.run([sys.executable, "-c", code, str(directory)], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_same(a: dict, b: dict) -> None:
  la, lb = _leaves(a), _leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


def _saved(directory, epochs=(1, 2), keep=2) -> Checkpoints:
  """Checkpoints of the fake run's first `epochs` (each an improvement here)."""
  ckpt = Checkpoints(directory, keep=keep)
  for e in epochs:
    ckpt.save(e, _state(e, VALUES[e], e), VALUES[e])
  ckpt.wait()
  return ckpt


def _data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
  # every array data file: OCDBT may leave files no array refers to, so one chosen file (say the
  # largest) may hold nothing that a restore reads
  files = sorted(p for p in (step_dir / "default").rglob("*") if p.is_file()
                 and p.parent.name == "d")
  assert files, step_dir
  return files


def _damage(step_dir: pathlib.Path, kind: str) -> None:
  if kind == "truncated":   # every array data file cut to half its size
    for path in _data_files(step_dir):
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  elif kind == "garbled":   # 64 bytes in the middle of every array data file inverted
    for path in _data_files(step_dir):
      data = bytearray(path.read_bytes())
      mid = len(data) // 2
      data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
      path.write_bytes(bytes(data))
  elif kind == "empty_metadata":
    (step_dir / "default" / "_METADATA").write_bytes(b"")
  else:
    raise ValueError(kind)


def _tree_snapshot(root: pathlib.Path) -> dict:
  return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
          for p in [root, *root.rglob("*")]}


# Round trip and idempotence.

def test_round_trip_and_keep(tmp_path):
  ckpt = Checkpoints(tmp_path, keep=2)
  states = {1: _state(1, 0.1, 1), 2: _state(2, 0.1, 1), 3: _state(3, 0.3, 3)}
  ckpt.save(1, states[1], 0.1)
  ckpt.save(2, states[2], None)
  ckpt.save(3, states[3], 0.3)
  ckpt.wait()
  assert ckpt.latest.all_steps() == [2, 3] and ckpt.best.all_steps() == [3]
  again = Checkpoints(tmp_path, keep=2)
  _assert_same(again.restore_latest(_target()), states[3])
  _assert_same(again.restore_best(_target()), states[3])
  _assert_same(again.restore(2, _target()), states[2])
  _assert_same(again.restore("2", _target()), states[2])
  _assert_same(again.restore("latest", _target()), states[3])
  with pytest.raises(FileNotFoundError, match="step 1"):
    again.restore(1, _target())


def test_save_of_existing_step_is_a_no_op(tmp_path):
  ckpt = _saved(tmp_path, (1, 2))
  ckpt.save(2, _state(7, 0.9, 2), 0.9)    # the same step again: nothing changes
  ckpt.save(1, _state(8, 0.9, 1), 0.9)    # a step before existing ones: nothing changes
  ckpt.wait()
  assert ckpt.latest.all_steps() == [1, 2] and ckpt.best.all_steps() == [2]
  _assert_same(ckpt.restore_best(_target()), _state(2, VALUES[2], 2))
  _assert_same(Checkpoints(tmp_path).restore_latest(_target()), _state(2, VALUES[2], 2))


def test_empty_directory_restores_nothing(tmp_path):
  ckpt = Checkpoints(tmp_path / "checkpoints")
  assert ckpt.restore_latest(_target()) is None and ckpt.restore_best(_target()) is None
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    ckpt.restore("best", _target())


# Kills at every instant of a save: the resumed run ends with the right best step.

@pytest.mark.parametrize("kill_at, latest, best, tmp", [
    ("before_best_save:2", [1], [1], None),
    ("before_best_rename:2", [1], [1], "best/2"),
    ("after_best_save:2", [1], [2], None),        # between the best and the latest save
    ("before_latest_rename:2", [1], [2], "latest/2"),
    ("after_latest_save:3", [2, 3], [2], None),
    ("before_best_rename:3", [2, 3], [2], "best/4"),
])
def test_kill_during_save_then_resume_keeps_best(tmp_path, kill_at, latest, best, tmp):
  proc = _run_killed(tmp_path, kill_at)
  assert proc.returncode == -9, proc.stderr[-2000:]
  assert "finished" not in proc.stdout
  on_disk = Checkpoints(tmp_path, read_only=True)
  assert (on_disk.latest.all_steps(), on_disk.best.all_steps()) == (latest, best)
  leftovers = sorted(str(p.relative_to(tmp_path))
                     for p in tmp_path.glob("*/*.orbax-checkpoint-tmp*"))
  assert leftovers == ([f"{tmp}.orbax-checkpoint-tmp"] if tmp else [])

  ckpt, state = _fake_train(tmp_path)   # the resumed run
  assert int(state["best_epoch"]) == 4
  best_state = ckpt.restore_best(_target())
  assert int(best_state["epoch"]) == 4
  _assert_same(best_state, _state(4, 0.5, 4))
  assert ckpt.latest.all_steps() == [3, 4] and ckpt.best.all_steps() == [4]
  assert not list(tmp_path.glob("*/*.orbax-checkpoint-tmp*"))


def test_latest_whose_best_is_missing_falls_back(tmp_path, capsys):
  """A latest step recording a best epoch that best/ lacks (a kill between a latest and a best
  save in the other order) is not resumed from."""
  ckpt = _saved(tmp_path, (1,))
  ckpt.latest.save(2, args=ocp.args.StandardSave(_state(2, VALUES[2], 2)))
  resumed = Checkpoints(tmp_path).restore_latest(_target())
  assert int(resumed["epoch"]) == 1
  out = capsys.readouterr().out
  assert out.count("\n") == 1 and "latest/2" in out and "best epoch 2" in out
  assert Checkpoints(tmp_path).latest.all_steps() == [1]


# Damaged steps.

@pytest.mark.parametrize("kind", ["truncated", "garbled", "empty_metadata"])
def test_damaged_latest_falls_back_to_previous_step(tmp_path, capsys, kind):
  _saved(tmp_path, (1, 2))
  _damage(tmp_path / "latest" / "2", kind)
  ckpt = Checkpoints(tmp_path)
  state = ckpt.restore_latest(_target())
  _assert_same(state, _state(1, VALUES[1], 1))
  out = capsys.readouterr().out
  assert out.count("\n") == 1 and "latest/2" in out and "resuming from latest/1" in out
  assert ckpt.latest.all_steps() == [1]   # the damaged step goes; the run writes it again
  ckpt.save(2, _state(2, VALUES[2], 2), VALUES[2])
  _assert_same(Checkpoints(tmp_path).restore_latest(_target()), _state(2, VALUES[2], 2))


@pytest.mark.parametrize("kind", ["truncated", "garbled", "empty_metadata"])
def test_evaluate_damaged_step_names_it(tmp_path, kind):
  _saved(tmp_path, (1, 2))
  _damage(tmp_path / "latest" / "2", kind)
  ckpt = Checkpoints(tmp_path, read_only=True)
  with pytest.raises(CheckpointError) as e:
    ckpt.restore("latest", _target())
  msg = str(e.value)
  assert "\n" not in msg and str(tmp_path / "latest" / "2") in msg and "--step" in msg
  assert "available: latest 1; best 2" in msg
  _assert_same(ckpt.restore("best", _target()), _state(2, VALUES[2], 2))
  _damage(tmp_path / "best" / "2", kind)   # now no copy of step 2 is usable
  with pytest.raises(CheckpointError) as e:
    Checkpoints(tmp_path, read_only=True).restore(2, _target())
  msg = str(e.value)
  assert "\n" not in msg and "--step" in msg and "available: latest 1)" in msg
  assert str(tmp_path / "latest" / "2") in msg and str(tmp_path / "best" / "2") in msg


def test_same_step_in_best_is_used_when_latest_copy_is_damaged(tmp_path):
  _saved(tmp_path, (1, 2))
  _damage(tmp_path / "latest" / "2", "garbled")
  _assert_same(Checkpoints(tmp_path, read_only=True).restore(2, _target()),
               _state(2, VALUES[2], 2))


def test_damaged_best_raises_one_line(tmp_path):
  _saved(tmp_path, (1, 2))
  _damage(tmp_path / "best" / "2", "truncated")
  with pytest.raises(CheckpointError) as e:
    Checkpoints(tmp_path, read_only=True).restore_best(_target())
  msg = str(e.value)
  assert "\n" not in msg and str(tmp_path / "best" / "2") in msg and "latest 1, 2" in msg


def test_all_latest_damaged_raises_one_line(tmp_path):
  _saved(tmp_path, (1, 2))
  _damage(tmp_path / "latest" / "1", "truncated")
  _damage(tmp_path / "latest" / "2", "empty_metadata")
  ckpt = Checkpoints(tmp_path)
  with pytest.raises(CheckpointError) as e:
    ckpt.restore_latest(_target())
  msg = str(e.value)
  assert isinstance(e.value, RuntimeError) and "\n" not in msg
  assert str(tmp_path / "latest" / "1") in msg and str(tmp_path / "latest" / "2") in msg
  assert "new workdir" in msg
  assert ckpt.latest.all_steps() == [1, 2]   # nothing is deleted when nothing is usable


def test_unreadable_best_metrics_raise_one_line(tmp_path):
  _saved(tmp_path, (1, 2))
  (tmp_path / "best" / "2" / "metrics" / "metrics").write_bytes(b"")
  with pytest.raises(CheckpointError) as e:
    Checkpoints(tmp_path)
  msg = str(e.value)
  assert "\n" not in msg and str(tmp_path / "best") in msg and "new workdir" in msg


def test_restore_rejects_bad_name(tmp_path):
  _saved(tmp_path, (1, 2))
  with pytest.raises(CheckpointError) as e:
    Checkpoints(tmp_path, read_only=True).restore("abc", _target())
  msg = str(e.value)
  assert "\n" not in msg and "'abc'" in msg and "'best', 'latest'" in msg and "latest 1, 2" in msg


# Leftovers of a kill inside an Orbax write.

@pytest.mark.parametrize("sub", ["latest", "best"])
def test_leftover_tmp_dir_is_ignored_then_replaced(tmp_path, sub):
  _saved(tmp_path, (1, 2))
  leftover = tmp_path / sub / "3.orbax-checkpoint-tmp"
  shutil.copytree(tmp_path / sub / "2", leftover)   # a step 3 cut short while being written
  _damage(leftover, "truncated")
  (leftover / "commit_success.txt").unlink()
  reader = Checkpoints(tmp_path, read_only=True)
  assert reader.latest.all_steps() == [1, 2] and reader.best.all_steps() == [2]
  _assert_same(reader.restore_latest(_target()), _state(2, VALUES[2], 2))
  assert leftover.is_dir()
  ckpt = Checkpoints(tmp_path)
  ckpt.save(3, _state(3, 0.4, 3), 0.4)
  ckpt.wait()
  assert not leftover.exists()
  assert ckpt.latest.all_steps() == [2, 3] and ckpt.best.all_steps() == [3]
  _assert_same(Checkpoints(tmp_path).restore(3, _target()), _state(3, 0.4, 3))


# Read-only use.

def test_read_only_changes_nothing(tmp_path):
  _saved(tmp_path, (1, 2))
  _damage(tmp_path / "latest" / "2", "garbled")
  shutil.copytree(tmp_path / "best" / "2", tmp_path / "best" / "3.orbax-checkpoint-tmp")
  before = _tree_snapshot(tmp_path)
  ckpt = Checkpoints(tmp_path, read_only=True)
  _assert_same(ckpt.restore_latest(_target()), _state(1, VALUES[1], 1))   # falls back
  ckpt.restore("best", _target())
  ckpt.restore(1, _target())
  for which in ("latest", "abc"):
    with pytest.raises(CheckpointError):
      ckpt.restore(which, _target())
  with pytest.raises(CheckpointError, match="read-only"):
    ckpt.save(3, _state(3), 0.9)
  ckpt.wait()
  assert _tree_snapshot(tmp_path) == before
  absent = tmp_path / "absent"
  assert Checkpoints(absent, read_only=True).restore_latest(_target()) is None
  assert not absent.exists()
  assert _tree_snapshot(tmp_path) == before


# kgax.faults.

_POINTS = ("from kgax import faults\n"
           "for i in range(3):\n"
           "  faults.point('here')\n"
           "  print('passed', i + 1, flush=True)\n")


def _run_points(kill_at: str | None) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != faults.ENV}
  if kill_at is not None:
    env[faults.ENV] = kill_at
  return subprocess.run([sys.executable, "-c", _POINTS], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kill_at, rc, passed", [
    (None, 0, 3), ("", 0, 3), ("elsewhere", 0, 3), ("elsewhere:1", 0, 3),
    ("here", -9, 0), ("here:1", -9, 0), ("here:2", -9, 1), ("here:3", -9, 2), ("here:4", 0, 3),
])
def test_fault_point_kills_only_when_asked(kill_at, rc, passed):
  proc = _run_points(kill_at)
  assert proc.returncode == rc, proc.stderr
  assert proc.stdout.split("\n")[:-1] == [f"passed {i}" for i in range(1, passed + 1)]


def test_fault_point_rejects_bad_count(monkeypatch):
  monkeypatch.setenv(faults.ENV, "here:0")
  with pytest.raises(ValueError, match="positive integer"):
    faults.point("here")
  faults.point("elsewhere")   # other points are not concerned


def test_fault_point_unarmed_is_cheap(monkeypatch):
  monkeypatch.delenv(faults.ENV, raising=False)
  assert not faults.armed()
  t0 = time.perf_counter()
  for _ in range(100_000):
    faults.point("after_epoch_log")
  assert time.perf_counter() - t0 < 1.0   # about 0.03 s: a dictionary lookup per call
