"""Sweeps: a stacked (vmapped) sweep gives each run the metrics, best epoch and workdir of the
same run trained alone; grouping, run names, resume after a kill and the CLI."""

import contextlib
import io
import json
import pathlib

import numpy as np
import pytest

from kgax import cli, sweep, train
from kgax import config as config_lib
from kgax.options import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
SEEDS = (0, 1)
# Per model: learning rates (one run stops early under patience 1) and epochs.
CASES = {
    "mf": ({"optim.lr": [1e-2, 1e-1]}, 4),
    "lightgcn": ({"optim.lr": [1e-2, 5e-2]}, 4),
    "kgat": ({"optim.lr": [1e-2, 3e-3]}, 4),
}
TOL = 1e-5


def _config(model: str, epochs: int, **overrides):
  cfg = config_lib.load_file(f"{REPO / 'configs' / 'test.py'}:model={model}")
  cfg.train.epochs = epochs
  cfg.train.eval_every = 1
  cfg.train.patience = 1
  cfg.train.tensorboard = False
  return config_lib.apply_overrides(cfg, {k: str(v) for k, v in overrides.items()})


def _quiet(fn, *args, **kwargs):
  with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    return fn(*args, **kwargs)


def _close(a: dict, b: dict, tol: float = TOL):
  assert a["best_epoch"] == b["best_epoch"]
  assert a["epochs_run"] == b["epochs_run"]
  assert a["capped"] == b["capped"]
  for split in ("valid", "test"):
    assert a[split].keys() == b[split].keys()
    for k in a[split]:
      assert abs(a[split][k] - b[split][k]) <= tol, (split, k, a[split][k], b[split][k])


def _rows(path: pathlib.Path):
  rows = [json.loads(l) for l in (path / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in ("wall", "epoch_seconds")} for r in rows]


@pytest.mark.parametrize("model,width", [(m, None) for m in CASES] + [("lightgcn", 1)])
def test_stacked_sweep_matches_runs_trained_one_by_one(model, width, tmp_path):
  """width None: one jax.vmap over the 4 runs; 1: lax.map, the runs one after another in the
  program."""
  grid, epochs = CASES[model]
  cfg = _config(model, epochs)
  results = _quiet(sweep.sweep, cfg, SEEDS, grid, tmp_path / "sweep", width=width)
  runs = sweep.expand(cfg, SEEDS, grid)
  assert [r.name for r in runs] == list(results)
  assert len(sweep.group(runs)) == 1
  assert len({r["epochs_run"] for r in results.values()}) > 1   # a run stopped before others
  for run in runs:
    single = _quiet(train.train_and_evaluate, run.config, tmp_path / "single" / run.name)
    stacked = results[run.name]
    _close(stacked, single)
    assert stacked.keys() == single.keys()
    a, b = tmp_path / "sweep" / run.name, tmp_path / "single" / run.name
    config = lambda d: json.loads((d / "config.json").read_text())
    assert config(a) == config(b)
    assert json.loads((a / "results.json").read_text())["best_epoch"] == single["best_epoch"]
    rows_a, rows_b = _rows(a), _rows(b)
    assert [(r["epoch"], r.get("split")) for r in rows_a] == \
        [(r["epoch"], r.get("split")) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
      for k, v in ra.items():
        if isinstance(v, float):
          assert abs(v - rb[k]) <= 1e-4, (run.name, ra["epoch"], k)
    for which in ("latest", "best"):
      steps = lambda d: sorted(int(p.name) for p in (d / "checkpoints" / which).iterdir()
                               if p.name.isdigit())
      assert steps(a) == steps(b)


def test_groups_and_names():
  cfg = _config("kgat", 2)
  runs = sweep.expand(cfg, [0, 3], {"optim.lr": ["1e-3", 5e-3], "model.layers": [(16, 8), (8,)],
                                    "model.message_dropout": [0.1, 0.0]})
  assert runs[0].name == "seed0-optim.lr=0.001-model.layers=16_8-model.message_dropout=0.1"
  groups = sweep.group(runs)
  # layers (shapes) and whether a dropout rate is zero (a code path) split; lr and seed do not
  assert len(groups) == 4 and all(len(g) == 4 for g in groups)
  assert {r.opts.optim.lr for r in groups[0]} == {1e-3, 5e-3}
  with pytest.raises(ConfigError, match="no such field"):
    sweep.expand(cfg, [0], {"optim.nope": [1]})
  with pytest.raises(ConfigError, match="expected a positive number"):
    sweep.expand(cfg, [0], {"optim.lr": [-1.0]})
  with pytest.raises(ConfigError, match="twice"):
    sweep.expand(cfg, [0, 0], {})


def test_resume_after_a_kill_with_a_run_ahead(tmp_path):
  """Killed after 2 epochs; one run then trained alone one epoch further (so it is ahead); the
  rerun sweep ends with the uninterrupted sweep's results (that one vmapped, this one with
  lax.map)."""
  cfg = _config("mf", 5)
  grid = {"optim.lr": [1e-2, 5e-2]}
  whole = _quiet(sweep.sweep, cfg, [1], grid, tmp_path / "whole", width=None)
  assert _quiet(sweep.sweep, cfg, [1], grid, tmp_path / "cut", width=1,
                stop_after_epochs=2) == {}
  first = sweep.expand(cfg, [1], grid)[0]
  _quiet(train.train_and_evaluate, first.config, tmp_path / "cut" / first.name,
         stop_after_epochs=1)
  resumed = _quiet(sweep.sweep, cfg, [1], grid, tmp_path / "cut", width=1)
  assert list(resumed) == list(whole)
  for name in whole:
    _close(resumed[name], whole[name])
    cut, ref = _rows(tmp_path / "cut" / name), _rows(tmp_path / "whole" / name)
    assert [(r["epoch"], r.get("split")) for r in cut] == \
        [(r["epoch"], r.get("split")) for r in ref]   # each epoch logged once
  # a rerun of the finished sweep only re-evaluates
  again = _quiet(sweep.sweep, cfg, [1], grid, tmp_path / "cut")
  for name in whole:
    _close(again[name], resumed[name], 0.0)


def test_cli_sweep_prints_one_table(tmp_path, capsys):
  rc = cli.main(["sweep", "--config", f"{REPO / 'configs' / 'test.py'}:model=mf", "--seeds", "0",
                 "--grid", "optim.lr=1e-2,5e-2", "--grid", "optim.l2=1e-3",
                 "--workdir", str(tmp_path), "--width", "all", "--config.train.epochs=2",
                 "--config.train.tensorboard=false"])
  out = capsys.readouterr().out
  assert rc == 0
  table = out[out.index("| run"):].split("\n\n")[0].splitlines()
  assert len(table) == 4   # header, rule, two runs
  assert "seed0-optim.lr=0.05-optim.l2=0.001" in out
  saved = json.loads((tmp_path / "seed0-optim.lr=0.01-optim.l2=0.001" / "results.json")
                     .read_text())
  assert f"{saved['test']['recall@20']:.4f}" in table[2]
  assert np.isfinite(saved["valid"]["recall@20"])


def test_a_diverging_run_stops_alone(tmp_path):
  cfg = _config("mf", 2)
  results = _quiet(sweep.sweep, cfg, [0], {"optim.lr": [1e-2, 1e30]}, tmp_path)
  assert "non-finite CF loss" in results["seed0-optim.lr=1e+30"]["error"]
  assert not (tmp_path / "seed0-optim.lr=1e+30" / "results.json").exists()
  assert results["seed0-optim.lr=0.01"]["epochs_run"] == 2
