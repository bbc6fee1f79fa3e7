"""The paper's studies (experiments/studies) end to end on synthetic-tiny: one shared study root
(MF and KGAT-AX from scratch over two seeds) for Table 2, Figure 3, the cold-start study and
Table 3; fine-tunes that start from another model's runs through a recipe's starts_from; tune.py;
the cold-item split option."""

import json
import pathlib
import sys

import numpy as np
import pandas as pd
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments" / "studies"))
sys.path.insert(0, str(REPO / "experiments" / "diagnostics"))
import cold_start  # noqa: E402
import common  # noqa: E402
import figure3  # noqa: E402
import table2  # noqa: E402
import table3  # noqa: E402
from kgax import config as config_lib, options, study, train  # noqa: E402
from kgax.data import load  # noqa: E402
from kgax.data.types import DataError  # noqa: E402

RECIPES = REPO / "configs" / "recipes"
# Fields every model's config has (model.layers and model.relation_dim are KGAT's and CKE's only).
BASE = ["--dataset", "synthetic-tiny", "--seeds", "0", "1", "--config.train.epochs=2",
        "--config.eval.batch_size=64", "--config.train.batch_size=128",
        "--config.train.kg_batch_size=256", "--config.train.steps_per_call=4",
        "--config.train.eval_every=1"]
# With a small embedding: the paper's layer takes it, LightGCN's layer (configs/kgat_ax.py, its
# layers of size embed_dim) does not.
TINY = BASE + ["--config.model.embed_dim=8"]
SCRATCH = ["--recipe", str(RECIPES / "scratch.py")]


def one_seed(argv):
  i = argv.index("--seeds")
  return argv[:i + 1] + ["0"] + argv[i + 3:]


@pytest.fixture(scope="module")
def study_root(tmp_path_factory):
  """A finished table2 study of MF and KGAT-AX (scratch recipe): (argv, output folder, JSON)."""
  tmp = tmp_path_factory.mktemp("study")
  argv = TINY + SCRATCH + ["--models", "mf", "kgat_ax", "--root", str(tmp / "runs")]
  return argv, tmp, table2.main(argv + ["--out", str(tmp / "table2")])


def results_json(tmp: pathlib.Path) -> list[pathlib.Path]:
  return sorted((tmp / "runs").glob("*/results.json"))


def test_overrides_fit_every_model_and_keep_figure3_ks(tmp_path):
  """Without --recipe each model comes from its config file (the KGAT family starts from
  LightGCN, configs/kgat_ax.py's STARTS_FROM); with one, from the recipe, the --config.*
  overrides on top, for every model of every shipped recipe."""
  for argv in [BASE] + [BASE + ["--recipe", str(r)] for r in sorted(RECIPES.glob("*.py"))]:
    args, overrides = common.study_args("", argv + ["--out", "x", "--root", str(tmp_path)],
                                        default_root="r", models=table2.MODELS)
    assert args.models == list(table2.MODELS)
    for model in table2.MODELS + table3.VARIANTS:
      cfg = common.model_config(model, args, overrides)
      opts = options.parse(cfg)
      assert opts.train.epochs == 2 and opts.train.batch_size == 128, (argv, model)
      assert set(figure3.KS) <= set(opts.eval.ks), model
      assert opts.data.cold_items == 0.0, model
  args, overrides = common.study_args("", BASE + ["--out", "x", "--root", str(tmp_path)],
                                      default_root="r", models=table2.MODELS)
  assert common.model_config("kgat", args, overrides).start.pretrained == \
      str(tmp_path / "lightgcn-seed{seed}")
  assert [j.name for j in common.jobs(args, overrides, ["kgat_ax"])] == [
      "lightgcn-seed0", "lightgcn-seed1", "kgat_ax-seed0", "kgat_ax-seed1"]


def test_improvement_is_over_the_best_other_model_per_metric():
  s = {"mf": {"recall@20": (0.10, 0), "ndcg@20": (0.30, 0)},
       "kgat": {"recall@20": (0.20, 0), "ndcg@20": (0.20, 0)},
       "kgat_ax": {"recall@20": (0.25, 0), "ndcg@20": (0.27, 0)}}
  got = table2.improvement(s)
  assert got["recall@20"]["over"] == "kgat" and got["recall@20"]["percent"] == pytest.approx(25)
  assert got["ndcg@20"]["over"] == "mf" and got["ndcg@20"]["percent"] == pytest.approx(-10)


def test_table2_writes_consistent_table_and_restarts_without_training(study_root, capsys):
  argv, tmp, data = study_root
  assert json.loads((tmp / "table2.json").read_text()) == json.loads(json.dumps(data))
  md = (tmp / "table2.md").read_text()
  rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
  assert set(rows) == {"model", "mf", "kgat_ax", "%Improve"}
  for model in ("mf", "kgat_ax"):
    s = data["models"][model]
    assert len(s["best_epochs"]) == 2
    assert study.fmt(s["recall@20"]) in rows[model] and study.fmt(s["ndcg@20"]) in rows[model]
    valid, epochs, minutes = (cell.strip() for cell in rows[model].split("|")[4:7])
    runs_of = [json.loads(p.read_text())
               for p in results_json(tmp) if p.parent.name.startswith(f"{model}-seed")]
    assert float(valid) == pytest.approx(
        np.mean([r["valid"]["recall@20"] for r in runs_of]), abs=5e-5)
    assert s["per_run"] == {f"{model}-seed{i}": {k: r["test"][k] for k in ("recall@20",
                                                 "ndcg@20", "auc")} for i, r in enumerate(runs_of)}
    assert epochs == ", ".join(str(e) for e in s["best_epochs"])
    assert float(minutes) == pytest.approx(np.mean(s["wall_seconds"]) / 60, abs=0.051)
  assert f"Hardware: {data['hardware']}." in md and "CPU cores, jax " in data["hardware"]
  for key in table2.METRICS:
    ours, base = data["models"]["kgat_ax"][key][0], data["models"]["mf"][key][0]
    percent = 100 * (ours - base) / base
    assert data["improve"][key] == {"over": "mf", "percent": pytest.approx(percent)}
    assert f"{percent:+.2f}% (vs mf)" in rows["%Improve"]

  mtimes = [p.stat().st_mtime_ns for p in results_json(tmp)]
  assert len(mtimes) == 4
  capsys.readouterr()
  again = table2.main(argv + ["--out", str(tmp / "table2-again")])
  assert "4 runs: 4 already finished, 0 to go" in capsys.readouterr().out
  assert [p.stat().st_mtime_ns for p in results_json(tmp)] == mtimes
  assert again == data


def test_figure3_reads_the_study(study_root, capsys):
  argv, tmp, data = study_root
  capsys.readouterr()
  figure3.main(argv + ["--out", str(tmp / "fig3")])
  assert "0 to go" in capsys.readouterr().out
  recall = pd.read_csv(tmp / "fig3.csv")
  for model in ("mf", "kgat_ax"):
    part = recall[recall.model == model]
    assert tuple(part.K) == figure3.KS
    assert np.all(np.diff(part.recall) >= 0)
    assert part.recall.iloc[0] == pytest.approx(data["models"][model]["recall@20"][0], abs=1e-6)
  curves = pd.read_csv(tmp / "fig3-curves.csv")
  assert set(curves.model) == {"mf", "kgat_ax"}
  assert set(curves.epoch) == {1, 2} and set(curves.seeds) == {2}   # eval_every=1, 2 epochs
  for png in ("fig3.png", "fig3-curves.png"):
    assert (tmp / png).read_bytes()[:4] == b"\x89PNG"


def test_attention_stats_ratio_averages_to_one_per_head(study_root):
  import attention_stats
  from kgax import inference
  _, tmp, _ = study_root
  run = inference.Run.open(tmp / "runs" / "kgat_ax-seed0")
  ratios = attention_stats.ratio_to_uniform(run)
  weights, heads = np.asarray(run.graph.weights), np.asarray(run.graph.heads)
  real_heads = heads[weights > 0]
  assert ratios.shape == (len(run.opts.model.layers), len(real_heads))
  for r in ratios:   # a softmax per head: its edges' ratios average to exactly 1
    per_head = np.bincount(real_heads, r) / np.bincount(real_heads)
    np.testing.assert_allclose(per_head[np.bincount(real_heads) > 0], 1.0, rtol=1e-4)
  assert np.abs(ratios - 1).max() > 1e-3   # trained Xavier attention is not uniform


def test_message_terms_add_up_to_the_models_first_layer_aggregate(study_root):
  """The per-relation parts of message_terms sum to the triple attention's e_agg of every item
  (layer 1), and an item's attention masses over its relations sum to 1."""
  import message_terms
  from kgax import inference
  from kgax.models import kgat
  _, tmp, _ = study_root
  run = inference.Run.open(tmp / "runs" / "kgat_ax-seed0")
  parts = message_terms.item_parts(run)
  m, g, p = run.opts.model, run.graph, run.params
  x = kgat.fuse(p, g, m, p["node"])
  attention = kgat.ATTENTIONS["triple"]
  logit, pieces = attention.logits(p["layers"][0], p, g, x, x, m)
  want = attention.aggregate(g.head_softmax(logit) * g.weights, pieces, g, x)[:g.n_items]
  got = sum(a + b + c for a, b, c in parts.values())
  np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-5)
  assert np.abs(got).max() > 1e-3 and len(parts) > 1
  mass = message_terms.attention_mass(run)
  np.testing.assert_allclose(sum(mass.values()), 1.0, rtol=1e-5)


def test_cold_start_buckets_only_trains_nothing(study_root):
  argv, tmp, _ = study_root
  before = sorted(p.name for p in (tmp / "runs").iterdir())
  data = cold_start.main(argv + ["--buckets-only", "--out", str(tmp / "buckets")])
  assert sorted(p.name for p in (tmp / "runs").iterdir()) == before
  assert not any(name.startswith("cold-") for name in before)
  assert "cold_items" not in data and set(data["degree_buckets"]["models"]) == {"mf", "kgat_ax"}
  md = (tmp / "buckets.md").read_text()
  assert "Cold items" not in md and md.count("| mf |") == 1
  # --impute scores the same runs again with cold rows from the KG and from shuffled links
  data = cold_start.main(argv + ["--buckets-only", "--impute", "--models", "mf", "--out",
                                 str(tmp / "imputed")])
  assert sorted(p.name for p in (tmp / "runs").iterdir()) == before
  rows = data["degree_buckets"]["models"]
  assert set(rows) == {"mf", "mf, cold rows from the KG", "mf, cold rows from shuffled links",
                       "mf, cold rows from the KG, centered",
                       "mf, cold rows from shuffled links, centered"}
  assert all(0 <= v[0] <= 1 for r in rows.values() for k, v in r.items() if k != "0")
  assert "| mf, cold rows from the KG |" in (tmp / "imputed.md").read_text()


def test_cold_start_tables(study_root):
  argv, tmp, _ = study_root
  data = cold_start.main(argv + ["--cold-seeds", "0", "--out", str(tmp / "cold")])
  normal = json.loads((tmp / "runs" / "mf-seed0" / "results.json").read_text())["dataset"]
  cold_run = json.loads((tmp / "runs" / "cold-mf-seed0" / "results.json").read_text())["dataset"]
  total = lambda d: d["train"] + d["valid"] + d["test"]
  assert total(cold_run) == total(normal) and cold_run["test"] > normal["test"]

  cold = data["cold_items"]
  assert cold["seeds"] == [0] and not (tmp / "runs" / "cold-mf-seed1").exists()
  assert cold["items"] == round(0.1 * normal["items"]) and cold["test_pairs"] > 0
  assert sum(data["degree_buckets"]["test_pairs"].values()) == normal["test"]
  cold_cfg = json.loads((tmp / "runs" / "cold-mf-seed0" / "config.json").read_text())
  assert cold_cfg["train"]["train_item_negatives"] and cold_cfg["data"]["cold_items"] == 0.1
  for model in ("mf", "kgat_ax"):
    assert 0 <= cold["models"][model]["cold recall@20"][0] <= 1
    assert 0 <= cold["models"][model]["cold auc"][0] <= 1
    among = cold["models"][model]["cold-only recall@20"][0]   # fewer competitors: never lower
    assert cold["models"][model]["cold recall@20"][0] - 1e-9 <= among <= 1
    row = data["degree_buckets"]["models"][model]
    assert set(row) == {*common.BUCKETS, "all", "valid"}
    recorded = [json.loads(p.read_text())["valid"]["recall@20"]
                for p in sorted((tmp / "runs").glob(f"{model}-seed*/results.json"))]
    assert row["valid"][0] == pytest.approx(np.mean(recorded), rel=1e-5)   # the runs' own rows
  md = (tmp / "cold.md").read_text()
  assert md.count("| mf |") == 2 and md.count("| kgat_ax |") == 2
  assert (tmp / "cold.png").read_bytes()[:4] == b"\x89PNG"

  # --cold-only: the same cold-item table from the finished runs, no buckets, no figure.
  only = cold_start.main(argv + ["--cold-only", "--cold-seeds", "0", "--out", str(tmp / "only")])
  assert only["cold_items"]["models"] == cold["models"] and "degree_buckets" not in only
  assert "training degree" not in (tmp / "only.md").read_text()
  assert "over seeds [0])" in (tmp / "only.md").read_text()
  assert only["cold_items"]["chance cold-only recall@20"] == min(1, 20 / cold["items"])


def test_cold_items_leave_train_and_valid_for_test():
  cfg = config_lib.load_file(str(REPO / "configs" / "test.py")).data
  ds, normal = load.load_split(cfg)
  cfg.cold_items = 0.1
  _, cold = load.load_split(cfg)
  items = load.cold_item_ids(ds.n_items, 0.1, cfg.split_seed)
  assert len(np.unique(items)) == round(0.1 * ds.n_items)
  keys = lambda pairs: set(map(tuple, pairs.tolist()))
  is_cold = lambda pair: pair[1] in set(items.tolist())
  assert keys(cold.train) == {p for p in keys(normal.train) if not is_cold(p)}
  assert keys(cold.valid) == {p for p in keys(normal.valid) if not is_cold(p)}
  moved = {p for p in keys(normal.train) | keys(normal.valid) if is_cold(p)}
  assert moved and keys(cold.test) == keys(normal.test) | moved
  assert len(cold.test) == len(keys(cold.test))

  _, again = load.load_split(cfg)
  for part in ("train", "valid", "test"):
    assert np.array_equal(getattr(cold, part), getattr(again, part))
  assert not np.array_equal(items, load.cold_item_ids(ds.n_items, 0.1, cfg.split_seed + 1))
  with pytest.raises(DataError, match="cold_items"):
    load.cold_item_ids(ds.n_items, 1.0, 0)


def test_train_fraction_thins_each_users_training_pairs_only():
  cfg = config_lib.load_file(str(REPO / "configs" / "test.py")).data
  _, whole = load.load_split(cfg)
  cfg.train_fraction = 0.3
  _, thin = load.load_split(cfg)
  for part in ("valid", "test"):   # the evaluation is that of the full split
    assert np.array_equal(getattr(thin, part), getattr(whole, part))
  keys = lambda pairs: set(map(tuple, pairs.tolist()))
  assert keys(thin.train) < keys(whole.train)
  users, n_whole = np.unique(whole.train[:, 0], return_counts=True)
  n_thin = np.bincount(thin.train[:, 0], minlength=users.max() + 1)[users]
  # each user drops round(0.7 n) of its n pairs (halves up) and keeps at least one
  np.testing.assert_array_equal(n_thin, np.maximum(1, n_whole - np.floor(0.7 * n_whole + 0.5)))
  _, again = load.load_split(cfg)
  assert np.array_equal(thin.train, again.train)
  cfg.split_seed += 1
  _, other = load.load_split(cfg)
  assert not np.array_equal(thin.train, other.train)
  with pytest.raises(DataError, match="train_fraction"):
    load.with_train_fraction(whole, 0.0, 0)
  for bad in (0.0, 1.5):
    with pytest.raises(options.ConfigError, match=r"config.data.train_fraction=.*\(0, 1\]"):
      options.DataOptions(train_fraction=bad)


def test_tune_selects_on_validation_and_study_applies_it(tmp_path):
  import tune
  grid = tune.parse_grid(["optim.l2=1e-5,1e-1", "optim.lr=1e-2"])
  assert grid == [{"optim.l2": "1e-5", "optim.lr": "1e-2"},
                  {"optim.l2": "1e-1", "optim.lr": "1e-2"}]
  overrides, _ = config_lib.split_overrides(TINY)
  root = tmp_path / "tune" / "mf"
  out = tune.tune(f"{REPO}/configs/mf.py:dataset=synthetic-tiny", grid, root, overrides=overrides)
  valid = {p["overrides"]["optim.l2"]: p["valid"] for p in out["points"]}
  best_l2 = max(valid, key=valid.get)
  assert out["best"] == {"optim.l2": best_l2, "optim.lr": "1e-2"}
  stored = json.loads((root / "tune.json").read_text())
  assert stored["best"] == out["best"] and stored["config"].endswith("mf.py:dataset=synthetic-tiny")
  assert "**selected**" in (root / "tune.md").read_text()
  assert len(list(root.glob("*/results.json"))) == 2
  # a rerun trains nothing new; the study picks the selected fields up for mf only
  stamps = sorted(f.stat().st_mtime_ns for f in root.glob("*/results.json"))
  assert tune.tune(f"{REPO}/configs/mf.py:dataset=synthetic-tiny", grid, root,
                   overrides=overrides)["best"] == out["best"]
  assert sorted(f.stat().st_mtime_ns for f in root.glob("*/results.json")) == stamps
  args, ov = common.study_args("", TINY + ["--out", "x", "--tuned", str(tmp_path / "tune")],
                               default_root="r", models=table2.MODELS)
  assert common.model_config("mf", args, ov).optim.l2 == float(best_l2)
  assert common.model_config("kgat", args, ov).optim.l2 == 1e-2   # configs/kgat_ax.py's
  with pytest.raises(SystemExit, match="expected FIELD=V1"):
    tune.parse_grid(["optim.l2"])
  # tuple values keep their commas, and reach the config as tuples
  grid = tune.parse_grid(["model.layers=(64,),(64,32)", "optim.l2=1e-2"])
  assert [p["model.layers"] for p in grid] == ["(64,)", "(64,32)"]
  cfg = config_lib.apply_overrides(
      config_lib.load_file(f"{REPO}/configs/kgat_ax.py:dataset=synthetic-tiny"), grid[1])
  assert tuple(cfg.model.layers) == (64, 32)
  with pytest.raises(SystemExit, match="expected FIELD=V1"):
    tune.parse_grid(["optim.l2=1e-2,,1e-3"])


def test_table2_takes_kgin_on_request_only():
  """KGIN is not in the paper's Table 2: --models may name it, the default set leaves it out."""
  base = ["--dataset", "synthetic-small", "--out", "x"]
  args, _ = common.study_args("", base, default_root="r",
                              models=table2.MODELS + table2.EXTRA_MODELS,
                              default_models=table2.MODELS)
  assert args.models == list(table2.MODELS) and "kgin" not in args.models
  args, _ = common.study_args("", base + ["--models", "kgin"], default_root="r",
                              models=table2.MODELS + table2.EXTRA_MODELS,
                              default_models=table2.MODELS)
  assert args.models == ["kgin"]
  assert common.jobs(args, {}, args.models)[0].name == "kgin-seed0"


def test_recipe_starts_the_kgat_family_from_mf_each_seed_from_its_own(tmp_path):
  """configs/recipes/pretrained_mf.py: MF is trained first and each KGAT-family run starts from
  the MF run of its seed; Figure 3's curves continue MF's."""
  root = tmp_path / "runs"
  argv = one_seed(TINY) + ["--recipe", str(RECIPES / "pretrained_mf.py"), "--models", "kgat",
                           "--root", str(root), "--out", str(tmp_path / "t2")]
  args, overrides = common.study_args("", argv, default_root="r", models=table2.MODELS)
  jobs = common.jobs(args, overrides, args.models)
  assert [j.name for j in jobs] == ["mf-seed0", "kgat-seed0"]
  assert jobs[1].config.start.pretrained == str(root / "mf-seed{seed}")
  assert not jobs[0].config.start.pretrained
  assert common.model_config("kgat", args, overrides, prefix="cold-").start.pretrained == \
      str(root / "cold-mf-seed{seed}")
  data = table2.main(argv)
  assert list(data["models"]) == ["kgat"]
  saved = json.loads((root / "kgat-seed0" / "config.json").read_text())
  assert saved["start"]["pretrained"] == str(root / "mf-seed{seed}")
  assert saved["optim"]["lr"] == 1e-4 and saved["train"]["epochs"] == 2   # recipe, then --config
  assert (root / "mf-seed0" / "results.json").is_file()
  _, curves = figure3.main(argv[:-1] + [str(tmp_path / "fig3")])   # curves continue MF's
  mf_best = json.loads((root / "mf-seed0" / "results.json").read_text())["best_epoch"]
  assert list(curves.epoch) == [mf_best + 1, mf_best + 2]


def test_recipe_starting_from_lightgcn_trains_it_first_and_starts_from_it(tmp_path):
  """configs/recipes/lightgcn_start_paper_layer.py: table2 and table3 train LightGCN first and
  point the KGAT family at its runs; the fine-tune starts from LightGCN's embeddings."""
  root = tmp_path / "runs"
  argv = one_seed(TINY) + ["--recipe", str(RECIPES / "lightgcn_start_paper_layer.py"),
                           "--root", str(root)]
  args, overrides = common.study_args("", argv + ["--models", "kgat_ax", "--out", "x"],
                                      default_root="r", models=table2.MODELS)
  jobs = common.jobs(args, overrides, args.models)
  assert [j.name for j in jobs] == ["lightgcn-seed0", "kgat_ax-seed0"]
  assert jobs[1].config.start.pretrained == str(root / "lightgcn-seed{seed}")
  data = table3.main(argv + ["--variants", "kgat_ax", "--out", str(tmp_path / "t3")])
  assert list(data["variants"]) == ["kgat_ax"]
  assert data["recipe"].endswith("lightgcn_start_paper_layer.py")
  assert (root / "lightgcn-seed0" / "results.json").is_file()
  saved = json.loads((root / "kgat_ax-seed0" / "config.json").read_text())
  assert saved["start"]["pretrained"] == str(root / "lightgcn-seed{seed}")
  assert saved["start"]["neutral"] == "mean"
  args, overrides = common.study_args("", argv + ["--recipe", str(tmp_path / "none.py"),
                                                  "--out", "x"], default_root="r")
  with pytest.raises(options.ConfigError, match="none.py: not found"):
    common.jobs(args, overrides, ["kgat_ax"])


def test_recipe_fields_then_config_overrides_then_tuned(tmp_path):
  """A recipe sets fields per model; --config.* overrides apply on top to every model, and
  --tuned's selected fields on top of those, to their model only."""
  (tmp_path / "tune" / "lightgcn").mkdir(parents=True)
  (tmp_path / "tune" / "lightgcn" / "tune.json").write_text(
      json.dumps({"best": {"optim.lr": "2e-3"}}))
  argv = TINY + ["--recipe", str(RECIPES / "pretrained_mf.py"), "--out", "x",
                 "--tuned", str(tmp_path / "tune"), "--config.optim.kg_lr=3e-4"]
  args, ov = common.study_args("", argv, default_root="r", models=table2.MODELS)
  lgcn, mf, ax = (common.model_config(m, args, ov) for m in ("lightgcn", "mf", "kgat_ax"))
  assert (lgcn.optim.lr, lgcn.optim.l2, lgcn.optim.kg_lr) == (2e-3, 1e-3, 3e-4)
  assert (mf.optim.lr, mf.optim.l2, mf.train.epochs) == (1e-3, 1e-2, 2)
  assert (ax.optim.lr, ax.optim.kg_lr, ax.start.neutral) == (1e-4, 3e-4, "mean")


def test_table3_runs_a_subset_of_variants_with_auc(study_root, capsys):
  argv, tmp, _ = study_root
  argv = [a for a in argv if a not in ("--models", "mf", "kgat_ax")]
  data = table3.main(argv + ["--variants", "kgat_ax", "kgat", "--out", str(tmp / "table3")])
  assert json.loads((tmp / "table3.json").read_text()) == json.loads(json.dumps(data))
  data = data["variants"]
  assert list(data) == ["kgat_ax", "kgat"]
  rows = [l for l in (tmp / "table3.md").read_text().splitlines() if l.startswith("| k")]
  assert [r.split(" | ")[0] for r in rows] == ["| kgat_ax", "| kgat"]
  for variant in data:
    auc, _ = data[variant]["auc"]
    assert 0.0 < auc < 1.0 and len(data[variant]["best_epochs"]) == 2
  assert "4 runs: 2 already finished, 2 to go" in capsys.readouterr().out   # kgat trained here
  assert sorted(p.parent.name for p in results_json(tmp) if "kgat-" in str(p)) == \
      ["kgat-seed0", "kgat-seed1"]


def test_tagged_test_pairs_reads_the_movielens_tags(tmp_path):
  from types import SimpleNamespace as NS
  (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n"
                                     "7,30,funny,1\n7,30,dark,2\n8,10,x,3\n99,10,unknown user,4\n")
  run = NS(opts=NS(data=NS(name=str(tmp_path))),
           ds=NS(n_users=2, n_items=3, user_ids=np.array(["7", "8"], object),
                 item_ids=np.array(["10", "20", "30"], object)),
           split=NS(test=np.array([[0, 2], [0, 0], [1, 0], [1, 1]])))
  np.testing.assert_array_equal(cold_start.tagged_test_pairs(run), [True, False, True, False])
  (tmp_path / "tags.csv").unlink()
  with pytest.raises(SystemExit, match="no MovieLens tags file"):
    cold_start.tagged_test_pairs(run)


def test_run_jobs_reuses_extends_or_refuses_a_finished_run(tmp_path, capsys):
  """A finished run is reused under the same config (a speed-only field may differ), extended
  when the study raises train.epochs, and refused, untouched, when anything else differs."""
  def job(**fields):
    c = config_lib.load_file(str(REPO / "configs" / "test.py"))
    c = config_lib.apply_overrides(c, {"train.eval_every": "1", **fields})
    return study.Job("mf-seed0", c)

  first = study.run_jobs([job(**{"train.epochs": "1"})], tmp_path)["mf-seed0"]
  again = study.run_jobs([job(**{"train.epochs": "1", "eval.batch_size": "7"})], tmp_path)
  assert again["mf-seed0"] == first
  assert "1 already finished, 0 to go" in capsys.readouterr().out
  longer = study.run_jobs([job(**{"train.epochs": "2"})], tmp_path)["mf-seed0"]
  assert longer["epochs_run"] == 2 and first["epochs_run"] == 1
  stored = (tmp_path / "mf-seed0" / "config.json").read_text()
  with pytest.raises(train.TrainingError, match="mf-seed0: holds a run with a different config"):
    study.run_jobs([job(**{"train.epochs": "2", "optim.lr": "0.5"})], tmp_path)
  with pytest.raises(train.TrainingError, match=r"can only raise it \(config.train.epochs=1\)"):
    study.run_jobs([job(**{"train.epochs": "1"})], tmp_path)
  assert (tmp_path / "mf-seed0" / "config.json").read_text() == stored


def test_controls_study_trains_each_control_and_reuses_the_source_run(tmp_path, capsys):
  """controls.py: KGAT under full / none / shuffled / no_aux, each starting from the one
  LightGCN run on the full data; the runs see the control (no triples, permuted tails, no aux)
  and the table has a row per control."""
  import controls
  argv = one_seed(BASE) + ["--models", "kgat", "--root", str(tmp_path / "runs"),
                           "--out", str(tmp_path / "controls"), "--buckets"]
  data = controls.main(argv)
  names = sorted(p.parent.name for p in results_json(tmp_path))
  assert names == ["kgat-seed0", "lightgcn-seed0", "no_aux-kgat-seed0", "none-kgat-seed0",
                   "shuffled-kgat-seed0"]
  for control, kg in (("none", "none"), ("shuffled", "shuffled")):
    stored = json.loads((tmp_path / "runs" / f"{control}-kgat-seed0" / "config.json").read_text())
    assert stored["data"]["kg"] == kg
    assert stored["start"]["pretrained"] == str(tmp_path / "runs" / "lightgcn-seed{seed}")
  full = json.loads((tmp_path / "runs" / "kgat-seed0" / "results.json").read_text())
  none = json.loads((tmp_path / "runs" / "none-kgat-seed0" / "results.json").read_text())
  assert none["dataset"]["edges"] < full["dataset"]["edges"]
  assert set(data["models"]["kgat"]) == {"full", "none", "shuffled", "no_aux"}
  rows = [l for l in (tmp_path / "controls.md").read_text().splitlines() if l.startswith("| kgat")]
  assert len(rows) == 8   # the table, then the table by degree

  # --buckets: each run's recall@20 per training-degree bucket, against a brute-force count
  # from its top 20 (train and validation items excluded), and full - control per seed.
  buckets = data["degree_buckets"]
  runs = {c: tmp_path / "runs" / (("" if c == "full" else f"{c}-") + "kgat-seed0")
          for c in ("full", "none", "shuffled", "no_aux")}
  want = {c: _bucket_recall_brute_force(path) for c, path in runs.items()}
  assert sum(buckets["test_pairs"].values()) == full["dataset"]["test"]
  for control, per in buckets["models"]["kgat"].items():
    for b in (*common.BUCKETS, "all"):
      got = per["recall@20"][b][0]
      assert (np.isnan(got) and np.isnan(want[control][b])) or \
          got == pytest.approx(want[control][b], abs=1e-6), (control, b)
      if control != "full" and not np.isnan(got):
        assert per["full - control"][b][0] == pytest.approx(want["full"][b] - got, abs=1e-6)
  assert {k for k, v in buckets["models"]["kgat"]["full"]["recall@20"].items()
          if not np.isnan(v[0])} >= {"all"}
  assert (tmp_path / "controls.png").read_bytes()[:4] == b"\x89PNG"


def test_sparsity_study_thins_training_pairs_and_pairs_each_control_by_seed(tmp_path):
  """sparsity.py: per fraction, the controls of KGAT on thinned training pairs, each starting
  from the LightGCN run of its own fraction; validation and test are the full split's, and the
  table's paired figures are the runs' own."""
  import sparsity
  from kgax import inference
  root, argv = tmp_path / "runs", one_seed(BASE)
  with pytest.raises(SystemExit, match=r"--fractions: config.data.train_fraction=0.0"):
    sparsity.main(argv + ["--fractions", "1", "0", "--root", str(root), "--out", "x"])
  assert not root.exists()
  data = sparsity.main(argv + ["--models", "kgat", "--controls", "full", "none", "--fractions",
                               "1", "0.5", "--root", str(root), "--out", str(tmp_path / "sp")])
  read = lambda f, run, name: json.loads((root / f / run / name).read_text())
  for f in ("f1", "f0.5"):
    assert sorted(p.name for p in (root / f).iterdir()) == ["kgat-seed0", "lightgcn-seed0",
                                                            "none-kgat-seed0"]
    config = read(f, "none-kgat-seed0", "config.json")
    assert config["start"]["pretrained"] == str(root / f / "lightgcn-seed{seed}")
    assert config["data"]["train_fraction"] == float(f[1:])
  whole, thin = (read(f, "kgat-seed0", "results.json")["dataset"] for f in ("f1", "f0.5"))
  assert thin["train"] < whole["train"] and (thin["valid"], thin["test"]) == (whole["valid"],
                                                                               whole["test"])
  for f, per in data["fractions"].items():
    test = {run: read(f, f"{run}-seed0", "results.json")["test"]["recall@20"]
            for run in ("kgat", "none-kgat", "lightgcn")}
    assert per["train_pairs"] == read(f, "kgat-seed0", "results.json")["dataset"]["train"]
    run = inference.Run.open(root / f / "kgat-seed0")
    trained = set(run.split.train[:, 1].tolist())
    assert per["items_without_train"] == sum(i not in trained for i in range(run.ds.n_items))
    kgat = per["models"]["kgat"]
    assert kgat["full"]["recall@20"][0] == test["kgat"]
    assert list(kgat["none"]["full - control"]) == [test["kgat"] - test["none-kgat"], 0.0]
    assert list(kgat["full"]["full - lightgcn"]) == [test["kgat"] - test["lightgcn"], 0.0]
    assert per["sources"]["lightgcn"]["recall@20"][0] == test["lightgcn"]
  rows = [l for l in (tmp_path / "sp.md").read_text().splitlines() if l.startswith("| ")]
  assert len(rows) == 3 and rows[1].startswith("| 1 (") and rows[2].startswith("| 0.5 (")
  assert (tmp_path / "sp.png").read_bytes()[:4] == b"\x89PNG"
  with pytest.raises(ValueError, match="unpaired seeds"):
    sparsity.paired({"a-seed0": {"test": {"recall@20": 1.0}}}, {})


def _bucket_recall_brute_force(workdir) -> dict[str, float]:
  """Test recall@20 per training-degree bucket of a run, from its top-20 lists: per user with a
  test pair in the bucket, the share of those pairs in its top 20, averaged over those users."""
  from kgax import inference
  run = inference.Run.open(workdir)
  train, test = run.split.train, run.split.test
  degree = np.bincount(train[:, 1], minlength=run.ds.n_items)
  users = np.unique(test[:, 0])
  top = dict(zip(users, run.recommend(users, 20)[0]))
  out = {}
  for b, (lo, hi) in {**common.BUCKETS, "all": (0, np.inf)}.items():
    pairs = test[(degree[test[:, 1]] >= lo) & (degree[test[:, 1]] <= hi)]
    per_user = [np.isin(pairs[pairs[:, 0] == u, 1], top[u]).mean() for u in np.unique(pairs[:, 0])]
    out[b] = float(np.mean(per_user)) if per_user else float("nan")
  return out


def test_controls_apply_tuned_fields_to_every_control_and_its_source(tmp_path):
  """controls.py --tuned: each control of a model takes the model's selected fields (and the run
  it starts from, its own), so "full" is the tuned study's run and the controls differ from it
  in the data only."""
  import controls
  for model, lr in (("kgat_ax", "3e-3"), ("lightgcn", "2e-3")):
    (tmp_path / "tune" / model).mkdir(parents=True)
    (tmp_path / "tune" / model / "tune.json").write_text(json.dumps({"best": {"optim.lr": lr}}))
  argv = one_seed(BASE) + ["--models", "kgat_ax", "--root", "r", "--out", "x",
                           "--tuned", str(tmp_path / "tune"), "--controls", "none", "shuffled"]
  args, ov = common.study_args("", argv, default_root="r",
                               extra=lambda p: (p.add_argument("--models", nargs="+"),
                                                p.add_argument("--controls", nargs="+")))
  args.controls = ["full", *args.controls]
  lr = {job.name: job.config.optim.lr for job in controls.jobs(args, ov)}
  assert lr == {"lightgcn-seed0": 2e-3, "kgat_ax-seed0": 3e-3, "none-kgat_ax-seed0": 3e-3,
                "shuffled-kgat_ax-seed0": 3e-3}


def test_controls_refuse_a_model_that_needs_a_kg_without_one_before_training(tmp_path, capsys):
  """KGIN's intents combine KG relations: its "none" control is refused with one line, and
  nothing is trained or written."""
  import controls
  argv = one_seed(BASE) + ["--models", "kgin", "--root", str(tmp_path / "runs"),
                           "--out", str(tmp_path / "controls"), "--controls", "none"]
  with pytest.raises(SystemExit, match="none-kgin-seed0: config.data.kg='none': kgin is built "
                                       "from KG relations, so it cannot train without a KG"):
    controls.main(argv)
  assert not (tmp_path / "runs").exists() and not (tmp_path / "controls.md").exists()


def test_kg_uptake_probe_commands_are_valid_configs(tmp_path):
  """experiments/diagnostics/kg_uptake_probe.sh, run with a `kgax` that records its arguments:
  every run it asks for parses to valid options, each fine-tune starts from the LightGCN run,
  and each setting comes with the real and the shuffled KG."""
  import os
  import subprocess
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  log = tmp_path / "calls.jsonl"
  fake = bin_dir / "kgax"
  fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                  f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
  fake.chmod(0o755)
  env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
  subprocess.run(["bash", str(REPO / "experiments" / "diagnostics" / "kg_uptake_probe.sh"),
                  "synthetic-tiny", str(tmp_path / "r")], check=True, env=env, cwd=REPO)
  from kgax import cli
  runs = {}
  for line in log.read_text().splitlines():
    overrides, rest = config_lib.split_overrides(json.loads(line))
    args = cli.build_parser().parse_args(rest)
    opts = options.parse(config_lib.apply_overrides(config_lib.load_file(args.config), overrides))
    runs[pathlib.Path(args.workdir).name] = opts
  assert len(runs) == 23 and runs.pop("lightgcn-seed0").model.name == "lightgcn"
  for name, opts in runs.items():
    kg = name.rpartition("-")[2]
    assert opts.data.kg == kg
    start = {"ckg_long": "", "joint_transe": "",
             "from_ckg_long": str(tmp_path / "r" / f"ckg_long-{kg}"),
             "from_joint_transe": str(tmp_path / "r" / f"joint_transe-{kg}")}.get(
        name.rpartition("-")[0], str(tmp_path / "r" / "lightgcn-seed0"))
    assert opts.start.pretrained == start
  assert runs["triple_tail-shuffled"].model.attention == "triple_tail"
  assert runs["kgat-full"].model.attention == "kgat" and runs["kg_lr1e-2-full"].optim.kg_lr == 1e-2
  assert runs["ckg_long-full"].model.attention == "mean" and not runs["ckg_long-full"].model.use_kge
  joint = runs["joint_transe-shuffled"].model
  assert joint.attention == "mean" and joint.use_kge and joint.kge == "transe"
  assert runs["transe_kg_lr1e-3-full"].model.kge == "transe"
