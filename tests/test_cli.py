"""The `kgax` command line: config files, overrides and one-line errors."""

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
