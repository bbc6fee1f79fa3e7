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


def test_recommended_config_and_paper_defaults_and_sweep():
  """configs/kgat_ax.py is the recommended protocol (LightGCN's layer, a neutral start, L2 1e-2);
  the paper's layer and hyperparameters are the model's own defaults."""
  from kgax import options
  from kgax.models import kgat
  cfg = config_lib.load_file(CONFIG)
  assert cfg.model.aggregator == "linear" and cfg.start.neutral == "zero"
  assert cfg.optim.l2 == 1e-2 and options.parse(cfg).model.layers == (64, 64, 64)
  paper = kgat.Options()
  assert (paper.embed_dim, paper.layers, paper.aggregator) == (64, (64, 32, 16), "bi")
  assert paper.message_dropout == 0.1
  mod = config_lib.load_module(CONFIG)
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
    (["train", "--config", CONFIG, "--workdir", "w", "--config.optim.lr=-1e-5"],
     "config.optim.lr=-1e-05: expected a positive number"),
    (["run", "--dataset", "synthetic-tiny", "--workdir", "w", "--config.train.epochs=0"],
     "config.train.epochs=0"),
    (["train", "--config", str(REPO / "configs" / "test.py"), "--workdir", "w",
      "--config.start.pretrained=/definitely/not/here"],
     "config.start.pretrained=/definitely/not/here: "),
])
def test_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1
  assert not (tmp_path / "w").exists()   # refused before anything is written


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--workdir", "w", "--step", "abc"], "expected best, latest or an epoch"),
    (["evaluate", "--workdir", "w", "--mesh", "(2,4,1)"], "expected (data, model)"),
    (["recommend", "--workdir", "w", "--user", "1", "--k", "0"], "expected a positive integer"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 2 and message in capsys.readouterr().err


def test_data_stats_and_split_on_synthetic(tmp_path, capsys):
  assert cli.main(["data", "stats", "synthetic-tiny"]) == 0
  out = capsys.readouterr().out
  assert "users" in out and "density" in out
  assert cli.main(["data", "split", "synthetic-tiny", "--out", str(tmp_path / "s")]) == 0
  assert cli.main(["data", "stats", str(tmp_path / "s")]) == 0
  assert (tmp_path / "s" / "train.txt").is_file() and (tmp_path / "s" / "kg_final.txt").is_file()


def test_run_trains_the_protocol_and_prints_one_table(tmp_path, monkeypatch, capsys):
  """`kgax run`: MF, LightGCN and KGAT-AX started from that LightGCN run (its STARTS_FROM), one
  workdir each, one comparison table; rerun, it trains nothing and prints the same table. The
  default dataset falls back to synthetic data offline."""
  from kgax.data import fetch

  def offline(name):
    raise OSError("no network")
  monkeypatch.setattr(fetch, "fetch", offline)
  monkeypatch.setattr(cli, "FALLBACK_DATASET", "synthetic-tiny")
  small = ["--config.train.epochs=2", "--config.train.eval_every=1", "--config.eval.ks=(5,20)",
           "--config.train.batch_size=128"]
  assert cli.main(["run", "--workdir", str(tmp_path), *small]) == 0
  out = capsys.readouterr().out
  assert "falling back to synthetic-tiny" in out
  table = (tmp_path / "comparison.md").read_text()
  for model in ("mf", "lightgcn", "kgat_ax"):
    assert f"| {model}" in table and (tmp_path / f"{model}-seed0" / "results.json").is_file()
  saved = json.loads((tmp_path / "kgat_ax-seed0" / "config.json").read_text())
  assert saved["start"]["pretrained"] == str(tmp_path / "lightgcn-seed{seed}")
  assert cli.main(["run", "--workdir", str(tmp_path), *small]) == 0
  assert capsys.readouterr().out.count("1 already finished, 0 to go") == 3


def test_run_tune_gives_every_model_the_same_points_and_keeps_the_winner(tmp_path, capsys):
  """`kgax run --tune`: five lr x L2 points per model on the first seed, the best by
  validation; that run is the model's seed-0 run (a link) and the other seeds use its values."""
  small = ["--config.train.epochs=2", "--config.train.eval_every=1", "--config.eval.ks=(5,20)",
           "--config.train.batch_size=128"]
  assert cli.main(["run", "--dataset", "synthetic-tiny", "--models", "mf",
                   "--seeds", "0", "1", "--tune", "--workdir", str(tmp_path), *small]) == 0
  for model in ("mf",):
    tuned = json.loads((tmp_path / "tune" / model / "tune.json").read_text())
    points = tuned["points"]
    assert len(points) == 5 and points[0]["overrides"] == {}
    base = json.loads((tmp_path / "tune" / model / "default" / "config.json").read_text())
    assert {p["name"] for p in points[1:]} == {
        f"optim.lr={base['optim']['lr'] / 3:.3g}", f"optim.lr={base['optim']['lr'] * 3:.3g}",
        f"optim.l2={base['optim']['l2'] / 10:.3g}", f"optim.l2={base['optim']['l2'] * 10:.3g}"}
    best = max(points, key=lambda p: p["valid"])
    assert tuned["best_name"] == best["name"]
    link = tmp_path / f"{model}-seed0"
    assert link.is_symlink() and link.resolve() == (tmp_path / "tune" / model / best["name"])
    seed1 = json.loads((tmp_path / f"{model}-seed1" / "config.json").read_text())
    for field, value in best["overrides"].items():
      assert seed1["optim"][field.split(".")[1]] == float(value)
    assert seed1["seed"] == 1
  text = (tmp_path / "comparison.md").read_text()
  assert "selected on validation" in text and "| mf" in text
  capsys.readouterr()
  assert cli.main(["run", "--dataset", "synthetic-tiny", "--models", "mf",
                   "--seeds", "0", "1", "--tune", "--workdir", str(tmp_path), *small]) == 0
  assert "0 already finished" not in capsys.readouterr().out
