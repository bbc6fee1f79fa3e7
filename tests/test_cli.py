"""The `kgax` command line: config files, overrides and one-line errors."""

import json
import pathlib

import pytest

from kgax import cli
from kgax import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "kgat_ax.py")


def test_config_file_and_overrides():
  cfg = config_lib.load_file(f"{CONFIG}:dataset=synthetic-tiny,variant=kgat")
  assert cfg.data.name == "synthetic-tiny" and cfg.model.attention == "kgat"
  assert cfg.model.fusion == "none" and not cfg.model.aux_edges
  overrides, rest = config_lib.split_overrides(
      ["train", "--config.optim.lr=5e-3", "--config.model.layers", "(32,16)",
       "--config.model.use_kge=false", "--config.data.name=data/x", "--workdir", "w"])
  assert rest == ["train", "--workdir", "w"]
  config_lib.apply_overrides(cfg, overrides)
  assert cfg.optim.lr == 5e-3 and cfg.model.layers == (32, 16)
  assert cfg.model.use_kge is False and cfg.data.name == "data/x"


def test_paper_defaults_and_sweep():
  cfg = config_lib.load_file(CONFIG)
  assert (cfg.model.embed_dim, tuple(cfg.model.layers)) == (64, (64, 32, 16))
  assert (cfg.train.batch_size, cfg.optim.lr, cfg.optim.l2) == (1024, 1e-3, 1e-5)
  assert cfg.model.message_dropout == 0.1
  import importlib.util
  spec = importlib.util.spec_from_file_location("c", CONFIG)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  grid = []
  mod.sweep(lambda **kw: grid.append(kw))
  assert sorted({g["optim.lr"] for g in grid}) == [1e-4, 1e-3, 5e-3, 1e-2]
  assert sorted({g["optim.l2"] for g in grid}) == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
  assert len(grid) == 20 and config_lib.load_sweep(CONFIG) == grid


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "nope.py", "--workdir", "w"], "config file nope.py: not found"),
    (["train", "--config", f"{CONFIG}:variant=bogus", "--workdir", "w"], "variant='bogus'"),
    (["train", "--config", CONFIG, "--workdir", "w", "--config.optim.nope=1"],
     "--config.optim.nope: no such field"),
    (["train", "--config", CONFIG, "--workdir", "w", "--config.optim.lr=abc"],
     "--config.optim.lr=abc"),
    (["data", "stats", "/definitely/not/here"], "not a folder"),
    (["evaluate", "--workdir", "/definitely/not/here"], "config.json: not found"),
])
def test_errors_are_one_line(argv, message, capsys):
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1


def test_data_stats_and_split_on_synthetic(tmp_path, capsys):
  assert cli.main(["data", "stats", "synthetic-tiny"]) == 0
  out = capsys.readouterr().out
  assert "users" in out and "density" in out
  assert cli.main(["data", "split", "synthetic-tiny", "--out", str(tmp_path / "s")]) == 0
  assert cli.main(["data", "stats", str(tmp_path / "s")]) == 0
  assert (tmp_path / "s" / "train.txt").is_file() and (tmp_path / "s" / "kg_final.txt").is_file()


def test_main_job_trains_mf_then_kgat_ax_from_it(tmp_path, monkeypatch, capsys):
  from kgax import cli
  from kgax.data import fetch

  def offline(name):
    raise OSError("no network")
  monkeypatch.setattr(fetch, "fetch", offline)
  monkeypatch.setattr(cli, "FALLBACK_DATASET", "synthetic-tiny")
  real = cli.main_job_configs

  def small(dataset, workdir, epochs, from_scratch):   # seconds on a CPU
    jobs = real(dataset, workdir, epochs, from_scratch)
    for _, cfg in jobs:
      cfg.model.embed_dim, cfg.train.batch_size, cfg.train.epochs = 8, 128, 2
      cfg.train.eval_every, cfg.eval.batch_size = 1, 64
      if "layers" in cfg.model:
        cfg.model.layers, cfg.model.relation_dim, cfg.train.kg_batch_size = (8,), 8, 256
    return jobs
  monkeypatch.setattr(cli, "main_job_configs", small)
  assert cli.main(["run", "--workdir", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "falling back to synthetic-tiny" in out and "BPR-MF on" in out and "KGAT-AX on" in out
  saved = json.loads((tmp_path / "kgat_ax" / "config.json").read_text())
  assert saved["model"]["pretrained"] == str(tmp_path / "mf")
  assert (saved["optim"]["lr"], saved["optim"]["l2"]) == (1e-4, 1e-2)
  assert (tmp_path / "mf" / "results.json").is_file()
  jobs = real("ml-100k-kg", tmp_path, 25, True)
  assert [n for n, _ in jobs] == ["kgat_ax"] and jobs[0][1].optim.lr == 5e-3
