"""End to end: train, checkpoint, resume, restore and evaluate in a temporary workdir."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import optax
import pytest

from kgax import config as config_lib
from kgax import experiment, inference, pipeline, pretrained, train

REPO = pathlib.Path(__file__).resolve().parents[1]


def _test_config(**overrides):
  cfg = config_lib.load_file(str(REPO / "configs" / "test.py"))
  return config_lib.apply_overrides(cfg, {k: str(v) for k, v in overrides.items()})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  cfg = _test_config()
  results = train.train_and_evaluate(cfg, workdir)
  return workdir, cfg, results


def test_workdir_contents(trained):
  workdir, cfg, results = trained
  for name in ("config.json", "metrics.jsonl", "results.json"):
    assert (workdir / name).is_file()
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in rows if "cf_loss" in r] == list(range(1, cfg.train.epochs + 1))
  assert all(np.isfinite(r["cf_loss"]) and np.isfinite(r["kg_loss"]) for r in rows
             if "cf_loss" in r)
  evals = [r for r in rows if r.get("split") == "valid"]
  assert [r["epoch"] for r in evals] == [2, 4]
  saved = json.loads((workdir / "results.json").read_text())
  assert saved["best_epoch"] in (2, 4)
  assert 0.0 <= saved["test"]["recall@20"] <= 1.0 and "auc" in saved["test"]
  assert saved["seconds_per_epoch"] > 0


def test_model_learns_beyond_random(trained):
  _, _, results = trained
  # Random ranking gives AUC 0.5; the planted structure is easy to pick up.
  assert results["test"]["auc"] > 0.6


def test_evaluate_on_an_item_subset_renumbers_the_items(trained):
  """make_evaluate(items=...): the evaluator's item k is items[k]. With every item in a shuffled
  order the metrics are those of the full ranking; with a subset, those of a brute-force ranking
  of the subset's scores."""
  from kgax import evaluate
  workdir, _, _ = trained
  run = inference.Run.open(workdir, "best")
  s, n = run.split, run.ds.n_items
  order = np.random.default_rng(0).permutation(n)
  index = np.argsort(order)
  relabel = lambda pairs: np.stack([pairs[:, 0], index[pairs[:, 1]]], 1)
  excl = np.concatenate([s.train, s.valid])
  full = evaluate.Evaluator(run.ds.n_users, n, s.test, excl, ks=(5,), metrics=("recall", "ndcg"))
  perm = evaluate.Evaluator(run.ds.n_users, n, relabel(s.test), relabel(excl), ks=(5,),
                            metrics=("recall", "ndcg"))
  want = run.exp.evaluate_fn()(run.params, full)
  got = run.exp.evaluate_fn(order)(run.params, perm)
  for key in want:
    assert got[key] == pytest.approx(want[key], abs=1e-6)

  subset = np.arange(0, n, 2)
  keep = np.isin(s.test[:, 1], subset)
  truth = np.stack([s.test[keep, 0], s.test[keep, 1] // 2], 1)
  sub = evaluate.Evaluator(run.ds.n_users, len(subset), truth, np.zeros((0, 2), int), ks=(5,),
                           metrics=("recall",))
  got = run.exp.evaluate_fn(subset)(run.params, sub)
  users, items = (np.asarray(a) for a in run.lib.user_item_embeddings(
      run.params, run.graph, run.opts.model))
  scores = users @ items[subset].T
  recalls = []
  for u in np.unique(truth[:, 0]):
    mine = set(truth[truth[:, 0] == u, 1].tolist())
    top = np.argsort(-scores[u], kind="stable")[:5]
    recalls.append(len(mine & set(top.tolist())) / len(mine))
  assert got["recall@5"] == pytest.approx(np.mean(recalls), abs=1e-6)


def test_checkpoint_evaluation_matches_results(trained):
  workdir, _, results = trained
  run = inference.Run.open(workdir, "best")
  assert run.step == results["best_epoch"]
  metrics = run.evaluate("test")
  for key in ("recall@20", "ndcg@20", "auc"):
    assert metrics[key] == pytest.approx(results["test"][key], abs=1e-6)


def test_recommendations_file_recomputes_recall(trained, tmp_path):
  workdir, _, results = trained
  run = inference.Run.open(workdir, "best")
  out = tmp_path / "recs.tsv"
  run.write_recommendations(out, 20)
  import pandas as pd
  recs = pd.read_csv(out, sep="\t", dtype={"user": str, "item": str})
  test = run.split.test
  truth = {}
  for u, i in test:
    truth.setdefault(str(u), set()).add(str(i))
  recalls = [len(set(g["item"]) & truth[u]) / len(truth[u]) for u, g in recs.groupby("user")]
  assert len(recalls) == len(truth)
  assert np.mean(recalls) == pytest.approx(results["test"]["recall@20"], abs=1e-6)
  seen = {(str(u), str(i)) for u, i in np.concatenate([run.split.train, run.split.valid])}
  assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"]))


def test_explanations_are_paths_to_the_item(trained):
  workdir, _, _ = trained
  run = inference.Run.open(workdir, "best")
  user = int(run.split.test[0, 0])
  items, _ = run.recommend(np.array([user]), 5)
  g = run.graph
  edges = set(zip(*(np.asarray(a)[:g.n_real_edges].tolist()
                    for a in (g.heads, g.relations, g.tails))))
  n_found = 0
  for item in items[0]:
    for w, steps in run.paths(user, int(item), 3):
      n_found += 1
      assert 0 < w <= 1
      assert steps[0][0] == g.user_start + user and steps[-1][2] == item
      assert all(s in edges for s in steps)
      assert all(a[2] == b[0] for a, b in zip(steps, steps[1:]))
  assert n_found > 0
  assert any("score" in line for line in run.explain_text(str(user), 3))


def test_resume_gives_the_same_result(tmp_path):
  cfg = _test_config(**{"train.epochs": 4, "train.patience": 100})
  full = train.train_and_evaluate(cfg, tmp_path / "full")
  assert train.train_and_evaluate(cfg, tmp_path / "cut", stop_after_epochs=3) == {}
  assert not (tmp_path / "cut" / "results.json").exists()
  resumed = train.train_and_evaluate(cfg, tmp_path / "cut")
  assert resumed["best_epoch"] == full["best_epoch"]
  for key in ("recall@20", "ndcg@20", "auc"):
    assert resumed["test"][key] == pytest.approx(full["test"][key], abs=1e-6)


def test_a_finished_run_extends_to_a_larger_budget(tmp_path):
  """Raising train.epochs (and patience) on a finished workdir continues from its last epoch and
  ends as a run started with that budget; lowering it, or raising it under a decaying lr, is
  refused without touching the workdir."""
  small = _test_config(**{"train.epochs": 2, "train.eval_every": 1, "train.patience": 100})
  large = _test_config(**{"train.epochs": 4, "train.eval_every": 1, "train.patience": 200})
  full = train.train_and_evaluate(large, tmp_path / "full")
  first = train.train_and_evaluate(small, tmp_path / "ext")
  assert first["epochs_run"] == 2
  extended = train.train_and_evaluate(large, tmp_path / "ext")
  assert extended["epochs_run"] == full["epochs_run"] == 4
  assert extended["best_epoch"] == full["best_epoch"]
  for key in ("recall@20", "ndcg@20", "auc"):
    assert extended["test"][key] == pytest.approx(full["test"][key], abs=1e-6)
  stored = (tmp_path / "ext" / "config.json").read_text()
  with pytest.raises(train.TrainingError, match=r"can only raise it \(config.train.epochs=2\)"):
    train.train_and_evaluate(small, tmp_path / "ext")
  cosine = _test_config(**{"train.epochs": 4, "train.eval_every": 1, "train.patience": 200,
                           "optim.lr_schedule": "cosine"})
  train.train_and_evaluate(cosine, tmp_path / "cos", stop_after_epochs=1)
  cosine.train.epochs = 6
  with pytest.raises(train.TrainingError, match=r"constant rate .*\(config.train.epochs=6\)"):
    train.train_and_evaluate(cosine, tmp_path / "cos")
  assert (tmp_path / "ext" / "config.json").read_text() == stored


def test_workdir_with_other_config_is_refused(trained):
  workdir, _, _ = trained
  cfg = _test_config(**{"optim.lr": 0.5})
  with pytest.raises(train.TrainingError, match="different config"):
    train.train_and_evaluate(cfg, workdir)


def test_nan_loss_stops_with_message(tmp_path):
  cfg = _test_config(**{"optim.lr": 1e30, "train.epochs": 3})
  with pytest.raises(train.TrainingError, match="non-finite"):
    train.train_and_evaluate(cfg, tmp_path)


@pytest.mark.parametrize("variant", ["kgat", "no_kge", "no_att_eu"])
def test_variants_train(variant, tmp_path):
  cfg = _test_config()
  config_lib.sibling(str(REPO / "configs" / "kgat_ax.py"), "kgat_ax.py").variant(cfg, variant)
  cfg.train.epochs = 2
  results = train.train_and_evaluate(cfg, tmp_path)
  assert results["config"] == variant and 0 <= results["test"]["recall@20"] <= 1
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  kg = [r["kg_loss"] for r in rows if "cf_loss" in r]
  assert all(v is None for v in kg) if variant == "no_kge" else all(v > 0 for v in kg)


def test_four_devices_match_one(tmp_path):
  """The sharded train step on 4 CPU devices equals 1 device to float tolerance."""
  script = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
import jax, numpy as np
from kgax import config as config_lib, experiment, sampling, sharding, train
cfg = config_lib.load_file({str(REPO / 'configs' / 'test.py')!r})
exp = experiment.build(cfg)
ds, split, graph = exp.ds, exp.split, exp.graph
out = {{}}
for n in (1, 4):
  mesh = sharding.make_mesh(n)
  g = jax.device_put(graph, sharding.replicated(mesh))
  cf, kg = train.make_step_fns(exp.opts, mesh)
  state = jax.device_put(exp.init_state(*experiment.make_optimizers(exp.opts)),
                         sharding.replicated(mesh))
  known = sampling.PairSet(split.train[:, 0], split.train[:, 1], ds.n_items)
  batches = sampling.cf_epoch(np.random.default_rng(0), split.train, ds.n_items, 128, known)[:4]
  zeros = np.zeros((*batches.shape[:2], 4), np.int32)
  params, opt, losses = cf(state.params, state.opt_cf, g, batches, zeros, jax.random.key(0))
  out[n] = [np.asarray(losses).tolist(), float(np.abs(np.asarray(params["node"])).sum())]
print(json.dumps(out))
"""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(out["1"][0], out["4"][0], rtol=1e-4)
  np.testing.assert_allclose(out["1"][1], out["4"][1], rtol=1e-4)


def _start(cfg, workdir, **start):
  """(params from `workdir`'s pretrained rows, the experiment) for config `cfg`."""
  exp = experiment.build(cfg)
  opts = experiment.options.parse(cfg)
  fields = dict(pretrained=str(workdir), scale=1.0, spread=0, neutral="")
  fields.update(start)
  start = experiment.options.StartOptions(**fields)
  source = pretrained.load(start, 0, exp.graph, opts.model.embed_dim, exp.split)
  return pretrained.with_pretrained(exp.init_params(), start, source, exp.graph), exp


def test_pretrained_mf_initialises_users_and_items(tmp_path):
  mf = config_lib.load_file(f"{REPO / 'configs' / 'test.py'}:model=mf")
  mf.train.epochs, mf.train.eval_every = 2, 1
  train.train_and_evaluate(mf, tmp_path / "mf")
  cfg = _test_config(**{"start.pretrained": tmp_path / "mf"})
  params, exp = _start(cfg, tmp_path / "mf")
  graph = exp.graph
  run = inference.Run.open(tmp_path / "mf")
  node = np.asarray(params["node"])
  np.testing.assert_array_equal(node[:graph.n_items], np.asarray(run.params["item"]))
  np.testing.assert_array_equal(node[graph.user_start:graph.aux_start],
                                np.asarray(run.params["user"]))
  scaled = np.asarray(_start(cfg, tmp_path / "mf", scale=2.5)[0]["node"])
  np.testing.assert_allclose(scaled[:graph.n_items], 2.5 * node[:graph.n_items], rtol=1e-6)
  np.testing.assert_allclose(scaled[graph.user_start:graph.aux_start],
                             2.5 * node[graph.user_start:graph.aux_start], rtol=1e-6)
  np.testing.assert_array_equal(scaled[graph.n_items:graph.user_start],
                                node[graph.n_items:graph.user_start])
  with pytest.raises(ValueError, match="config.start.scale=0"):
    _start(cfg, tmp_path / "mf", scale=0.0)
  results = train.train_and_evaluate(cfg, tmp_path / "kgat_ax")
  assert np.isfinite(results["test"]["recall@20"])
  small = _test_config(**{"model.embed_dim": 8, "model.relation_dim": 8})
  with pytest.raises(pretrained.PretrainedError, match="do not fit"):
    _start(small, tmp_path / "mf")
  with pytest.raises(pretrained.PretrainedError, match="config.start.pretrained="):
    _start(cfg, tmp_path / "missing")

  # start.spread: the other nodes, and items without a training pair (here 10% cold items),
  # start from their pretrained neighbours (loop reference).
  mf.data.cold_items = 0.1
  mf.train.train_item_negatives = True
  train.train_and_evaluate(mf, tmp_path / "mf_cold")
  cfg = _test_config(**{"data.cold_items": 0.1})
  params, exp = _start(cfg, tmp_path / "mf_cold")
  graph, split = exp.graph, exp.split
  node = np.asarray(params["node"])
  spread = np.asarray(_start(cfg, tmp_path / "mf_cold", spread=2)[0]["node"])
  heads, tails = (np.asarray(a)[:graph.n_real_edges] for a in (graph.heads, graph.tails))
  known = np.zeros(len(node), bool)
  known[graph.user_start:graph.aux_start] = True
  for h, t in zip(heads, tails):
    if h < graph.n_items and graph.user_start <= t < graph.aux_start:
      known[h] = True
  expected = node.copy()
  for _ in range(2):
    new = {}
    for v in np.flatnonzero(~known):
      nbrs = [t for h, t in zip(heads, tails) if h == v and known[t]]
      if nbrs:
        new[v] = expected[nbrs].mean(0)
    for v, row in new.items():
      expected[v], known[v] = row, True
  np.testing.assert_allclose(spread, expected, rtol=1e-5, atol=1e-6)
  cold = np.setdiff1d(np.arange(graph.n_items), split.train[:, 1])
  assert len(cold) and known[cold].any() and not np.allclose(spread[cold], node[cold])

  # A run on another split would start from what the source learnt on its held-out pairs (the
  # cold items' pairs are this run's test pairs): refused in one line, before anything is written.
  with pytest.raises(pretrained.PretrainedError, match=r"mf: trained on another split \(\d+ of"):
    _start(cfg, tmp_path / "mf")
  for field, value in (("data.split_seed", 7), ("data.train_fraction", 0.5)):
    other = _test_config(**{"start.pretrained": tmp_path / "mf", field: value})
    with pytest.raises(pretrained.PretrainedError, match="trained on another split"):
      train.train_and_evaluate(other, tmp_path / "other")
    assert not (tmp_path / "other").exists()
  other = np.ones(len(node), bool)
  other[:graph.n_items] = other[graph.user_start:graph.aux_start] = False
  assert (known & other).any() and not np.allclose(spread[known & other], node[known & other])


def test_joint_schedule_trains_one_optimizer(tmp_path):
  cfg = _test_config(**{"optim.schedule": "joint", "train.epochs": 2})
  results = train.train_and_evaluate(cfg, tmp_path)
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert all(r["kg_loss"] is None for r in rows if "cf_loss" in r)   # no separate KG phase
  assert np.isfinite(results["test"]["recall@20"])
  bad = _test_config(**{"optim.schedule": "sometimes"})
  with pytest.raises(ValueError, match="config.optim.schedule='sometimes'"):
    train.train_and_evaluate(bad, tmp_path / "bad")
  assert not (tmp_path / "bad").exists()   # refused before anything is written


def test_cfkg_without_a_kg_trains_transe_on_interactions_alone(tmp_path):
  """The no-KG control of a model whose KG loss trains on KG triples (CFKG): no KG phase, and
  no KG relation's row moves; only the interact relation's (relation 0) does."""
  cfg = config_lib.load_file(str(REPO / "configs" / "test.py") + ":model=cfkg")
  cfg = config_lib.apply_overrides(cfg, {"data.kg": "none", "train.epochs": "2"})
  results = train.train_and_evaluate(cfg, tmp_path)
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["kg_loss"] for r in rows if "cf_loss" in r] == [None, None]
  assert np.isfinite(results["test"]["recall@20"])
  rel = np.asarray(inference.Run.open(tmp_path, "latest").params["relation"])
  first = np.asarray(experiment.build(cfg).init_params()["relation"])
  assert not np.allclose(rel[0], first[0]) and np.array_equal(rel[1:], first[1:])


@pytest.mark.parametrize("n,size,calls,length", [(18, 16, 2, 9), (70, 16, 5, 14), (16, 16, 1, 16),
                                                 (3, 16, 1, 3), (33, 16, 3, 11), (34, 16, 3, 12)])
def test_chunks_pad_little_and_cover_every_step(n, size, calls, length):
  batches = np.arange(n)[:, None, None] * np.ones((1, 2, 3), int)
  chunks = pipeline.chunks(batches, size)
  assert chunks.shape == (calls, length, 2, 3)
  steps = chunks[:, :, 0, 0].ravel()
  assert set(steps.tolist()) == set(range(n))          # every step runs
  assert len(steps) - n == calls * length - n < calls  # fewer repeats than calls


def test_prefetch_returns_the_epochs_in_order_and_stops_at_the_last():
  import threading
  calls, main = [], threading.get_ident()

  def sample(epoch):
    calls.append((epoch, threading.get_ident() == main))
    return np.full(3, epoch)

  prefetch = pipeline.Prefetch(sample, 2, 5)
  got = [int(prefetch(e)[0]) for e in (2, 3, 4)]
  assert int(prefetch(7)[0]) == 7          # not the prefetched epoch: drawn here, not lost
  prefetch.close()
  assert got == [2, 3, 4]
  # 2, 3, 4 on the worker thread; 5 was never drawn (the stop); 7 on the caller's thread.
  assert sorted(e for e, on_main in calls if not on_main) == [2, 3, 4]
  assert [e for e, on_main in calls if on_main] == [7]


def test_prefetch_close_does_not_wait_for_an_unused_epoch():
  import threading
  release, started, finished = threading.Event(), threading.Event(), threading.Event()

  def sample(epoch):
    if epoch == 1:
      started.set()
      release.wait(10)
      finished.set()
    return epoch

  prefetch = pipeline.Prefetch(sample, 0, 5)
  assert prefetch(0) == 0
  assert started.wait(10)      # epoch 1 is being drawn when the run stops
  prefetch.close()
  assert not finished.is_set()  # close returned while the draw was still running
  release.set()
  assert finished.wait(10)


def test_cosine_schedule_warms_up_and_decays():
  cfg = _test_config(**{"optim.lr_schedule": "cosine", "optim.warmup_epochs": 1,
                        "optim.final_lr_fraction": 0.1, "train.epochs": 4})
  opts = experiment.options.parse(cfg)
  lr = experiment.learning_rate(opts.optim, 1e-2, 10, cfg.train.epochs)
  assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1e-2)
  assert float(lr(40)) == pytest.approx(1e-3)
  assert 1e-3 < float(lr(25)) < 1e-2
  constant = experiment.options.parse(_test_config()).optim
  assert experiment.learning_rate(constant, 1e-2, 10, 4) == 1e-2
  bad = _test_config(**{"optim.lr_schedule": "step"})
  with pytest.raises(ValueError, match="config.optim.lr_schedule='step'"):
    experiment.options.parse(bad)


def test_cosine_schedule_reaches_the_training_loop(tmp_path):
  """Same seed and data, constant vs cosine learning rate: the losses part after the first step
  (both start at the same lr when there is no warm-up)."""
  ended = {}
  def losses(workdir, **overrides):
    results = train.train_and_evaluate(_test_config(**overrides), workdir)
    ended[workdir.name] = (results["capped"], results["schedule_ended"])
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").open()]
    return [r["cf_loss"] for r in rows if "cf_loss" in r]
  constant = losses(tmp_path / "constant", **{"train.patience": 100})
  cosine = losses(tmp_path / "cosine", **{"optim.lr_schedule": "cosine", "train.patience": 100})
  assert len(constant) == len(cosine) > 1
  assert cosine != constant
  # Both ran to train.epochs: the constant rate was cut there, the cosine schedule ended there.
  assert ended == {"constant": (True, False), "cosine": (False, True)}


def test_workdir_of_an_older_version_is_refused_with_one_line(tmp_path):
  """A config.json with a field this version retired (or lacks one it needs) is refused with
  one line naming the field; nothing in the workdir changes."""
  cfg = _test_config(**{"train.epochs": 2})
  train.train_and_evaluate(cfg, tmp_path / "w")
  path = tmp_path / "w" / "config.json"
  stored = json.loads(path.read_text())
  stored["model"]["identity_init"] = True
  path.write_text(json.dumps(stored))
  before = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "w").rglob("*"))
  with pytest.raises(train.TrainingError, match=r"another kgax version .*identity_init"):
    train.train_and_evaluate(cfg, tmp_path / "w")
  assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "w").rglob("*")) == before


def test_config_difference_compares_parsed_options():
  """Values equal after parsing (1 and 1.0, a list and a tuple) are the same run; neutral fields
  (eval.batch_size) may differ; any other field may not."""
  base = experiment.options.parse(_test_config()).to_dict()
  same = json.loads(json.dumps(base))
  same["optim"]["lr"] = 0.001 if base["optim"]["lr"] == 1e-3 else base["optim"]["lr"]
  same["eval"]["batch_size"] = 7
  assert train.config_difference(same, base) is None
  other = json.loads(json.dumps(base))
  other["optim"]["l2"] = 0.5
  assert "optim.l2: stored 0.5" in train.config_difference(other, base)


def test_log_test_writes_ranking_rows_for_curves(tmp_path):
  """train.log_test: a test row (ranking metrics, no AUC) after every validation row; the final
  test metrics keep AUC."""
  results = train.train_and_evaluate(_test_config(**{"train.log_test": "true"}), tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
  valid = [r["epoch"] for r in rows if r.get("split") == "valid"]
  test = [r for r in rows if r.get("split") == "test"]
  assert valid and [r["epoch"] for r in test] == valid
  assert all("recall@20" in r and "auc" not in r for r in test)
  assert "auc" in results["test"]


def test_eval_start_logs_epoch_0_and_can_select_it(tmp_path):
  """train.eval_start: the initial parameters are evaluated (epoch 0) and are a selection
  candidate; at a negligible learning rate no later epoch improves on them, so the run keeps
  them and reports their metrics."""
  cfg = _test_config(**{"train.eval_start": "true", "train.log_test": "true",
                        "optim.lr": 1e-20, "optim.kg_lr": 1e-20})
  results = train.train_and_evaluate(cfg, tmp_path / "run")
  log = (tmp_path / "run" / "metrics.jsonl").read_text()
  rows = [json.loads(line) for line in log.splitlines()]
  start = [r for r in rows if r.get("epoch") == 0]
  assert [r["split"] for r in start] == ["valid", "test"]
  assert results["best_epoch"] == 0
  assert results["valid"]["recall@20"] == pytest.approx(start[0]["recall@20"], abs=1e-6)
  assert results["test"]["recall@20"] == pytest.approx(start[1]["recall@20"], abs=1e-6)
  trained = train.train_and_evaluate(_test_config(**{"train.eval_start": "true"}),
                                     tmp_path / "trained")
  assert trained["best_epoch"] > 0   # training the tiny model beats its random start


def _tensorboard_scalars(workdir) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value)]} from the workdir's event files (TFRecord framing: u64 length,
  u32 crc, the Event proto, u32 crc)."""
  import struct
  from tensorboardX.proto import event_pb2
  out = {}
  for path in sorted(workdir.glob("events.out.tfevents.*")):
    data, i = path.read_bytes(), 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def test_tensorboard_events_hold_the_logged_curves(trained):
  """Beside metrics.jsonl, TensorBoard event files with the same numbers (tensorboardX)."""
  pytest.importorskip("tensorboardX")
  workdir, cfg, _ = trained
  scalars = _tensorboard_scalars(workdir)
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  loss = [(r["epoch"], r["cf_loss"]) for r in rows if "cf_loss" in r]
  got = scalars["train/cf_loss"]
  assert [s for s, _ in got] == [s for s, _ in loss]
  np.testing.assert_allclose([v for _, v in got], [v for _, v in loss], rtol=1e-6)
  valid = [r["recall@20"] for r in rows if r.get("split") == "valid"]
  # tags cannot hold "@": recall@20 is logged as recall_20
  np.testing.assert_allclose([v for _, v in scalars["valid/recall_20"]], valid, rtol=1e-6)


def test_an_equal_validation_score_is_not_an_improvement():
  """The best is stored as float32; a float64 score equal to it after rounding (here one above
  its own float32 rounding) must not count as an improvement, or plateaus never stop."""
  import jax.numpy as jnp
  value = 0.1194444457689921            # > float(np.float32(value)) = 0.11944444477558136
  assert value > float(np.float32(value))
  saved = []

  class Log:
    def write(self, **row):
      pass

  class Ckpt:
    def save(self, step, state, best_value):
      saved.append(best_value)

  opts = experiment.options.parse(_test_config())
  state = experiment.TrainState(params={}, opt_cf=(), opt_kg=(), epoch=jnp.asarray(4),
                                best=jnp.asarray(value, jnp.float32),
                                best_epoch=jnp.asarray(2), bad_evals=jnp.asarray(0))
  out = train._validate(state, opts=opts, evaluate_fn=lambda p, ev: {"recall@20": value},
                        valid_eval=None, test_eval=None, log=Log(), ckpt=Ckpt(), t_start=0.0)
  assert int(out.best_epoch) == 2 and int(out.bad_evals) == 1 and saved == [None]
  better = train._validate(state, opts=opts, evaluate_fn=lambda p, ev: {"recall@20": 0.2},
                           valid_eval=None, test_eval=None, log=Log(), ckpt=Ckpt(), t_start=0.0)
  assert int(better.best_epoch) == 4 and int(better.bad_evals) == 0 and saved[-1] == 0.2


def test_split_difference_counts_leaked_and_unseen_pairs():
  """The refusal's counts against a brute-force count of pairs: the source's training pairs
  that are this run's validation or test pairs, and this run's training pairs it never saw."""
  from kgax.data.types import Split
  rng = np.random.default_rng(0)
  pairs = np.unique(np.c_[rng.integers(0, 7, 60), rng.integers(0, 9, 60)], axis=0)
  ours = Split(train=pairs[::3], valid=pairs[1::3], test=pairs[2::3])
  assert pretrained.split_difference(ours, ours, 9) is None
  theirs = Split(train=np.r_[pairs[::3][2:], pairs[1::3][:4], pairs[2::3][:1]], valid=ours.valid,
                 test=ours.test)
  as_set = lambda a: set(map(tuple, a.tolist()))
  leaked = len(as_set(theirs.train) & (as_set(ours.valid) | as_set(ours.test)))
  unseen = len(as_set(ours.train) - as_set(theirs.train))
  assert (leaked, unseen) == (5, 2)
  assert pretrained.split_difference(theirs, ours, 9) == (
      f"trained on another split ({leaked} of its {len(theirs.train)} training pairs are this "
      f"run's validation or test pairs, {unseen} of this run's it never trained on): start from "
      "a run with the same data split fields")
