"""kgax/coldstart.py: items without a training pair scored through their KG and aux neighbours,
checked against a brute-force loop; what it reads comes from the training side only."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from kgax import coldstart, options
from kgax.data.types import AuxFacts, DataError, Dataset

REPO_CONFIG = "configs/test.py"


def _dataset(rng, n_users=6, n_items=12, n_entities=20, n_triples=40) -> Dataset:
  kg = np.stack([rng.integers(0, n_entities, n_triples), rng.integers(0, 3, n_triples),
                 rng.integers(0, n_entities, n_triples)], 1)
  aux = AuxFacts(owner=np.array([0, 1, 2, 3, 0]), owner_is_user=np.array([0, 0, 0, 1, 1], bool),
                 node=np.array([0, 0, 1, 1, 2]), weight=np.ones(5, np.float32),
                 node_attr=np.array([0, 0, 1]), node_names=np.array(["g=a", "g=b", "u=c"], object),
                 attr_names=("g", "u"))
  pairs = np.stack([rng.integers(0, n_users, 30), rng.integers(0, n_items, 30)], 1)
  return Dataset(name="tiny", n_users=n_users, n_items=n_items, n_entities=n_entities,
                 interactions=np.unique(pairs, axis=0), kg=kg, relation_names=("a", "b", "c"),
                 aux=aux)


def _reference(item_emb, ds, warm, q, centered=False):
  """The loop of docs/model.md §5.1: node means over trained items, their mean per cold item,
  rescaled to the q-quantile of the trained items' norms (centered: all of it around the
  trained items' mean)."""
  base = item_emb[warm].mean(0) if centered else np.zeros(item_emb.shape[1])
  original, item_emb = item_emb, item_emb - base
  links = set()
  for h, _, t in ds.kg:
    for a, b in ((h, t), (t, h)):
      if a < ds.n_items and a != b:
        links.add((int(a), int(b)))
  for o, is_user, n in zip(ds.aux.owner, ds.aux.owner_is_user, ds.aux.node):
    if not is_user and o < ds.n_items:
      links.add((int(o), int(ds.n_entities + n)))
  target = np.quantile(np.linalg.norm(item_emb[warm], axis=1), q)
  out = original.copy()
  for i in np.flatnonzero(~warm):
    means = []
    for (a, v) in links:
      if a != i:
        continue
      members = [j for (j, w) in links if w == v and warm[j]]
      if members:
        means.append(np.mean([item_emb[j] for j in members], 0))
    if means:
      u = np.mean(means, 0)
      if np.linalg.norm(u) > 0:
        out[i] = base + u / np.linalg.norm(u) * target
  return out


@pytest.mark.parametrize("seed,centered", [(0, False), (1, False), (2, False), (0, True),
                                           (1, True)])
def test_impute_matches_the_loop(seed, centered):
  rng = np.random.default_rng(seed)
  ds = _dataset(rng)
  train = ds.interactions[: len(ds.interactions) // 2]
  item_emb = rng.normal(size=(ds.n_items, 5)).astype(np.float32)
  cold = coldstart.build(ds, train, 0.4, centered=centered)
  warm = np.asarray(cold.warm)
  assert warm.sum() == len(np.unique(train[:, 1])) and (~warm).any()
  got = np.asarray(coldstart.impute(jnp.asarray(item_emb), cold))
  want = _reference(item_emb, ds, warm, 0.4, centered)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got[warm], item_emb[warm])   # trained items keep their rows
  assert (got[~warm] != item_emb[~warm]).any()


def test_item_links_read_kg_both_ways_and_item_aux_facts_only():
  rng = np.random.default_rng(0)
  ds = _dataset(rng, n_triples=0)
  ds = Dataset(**{**ds.__dict__, "kg": np.array([[0, 0, 15], [16, 1, 2], [3, 2, 3], [14, 0, 17]])})
  links = {tuple(x) for x in coldstart.item_links(ds)}
  # (0, 15) and (2, 16) from the KG; (3, 3) is a self-link; entity-entity triples link no item;
  # items 0, 1, 2 own aux node 0 or 1 (entity ids 20, 21); user-owned facts link nothing
  assert links == {(0, 15), (2, 16), (0, 20), (1, 20), (2, 21)}


def test_no_link_or_no_trained_neighbour_keeps_the_row():
  rng = np.random.default_rng(1)
  ds = _dataset(rng, n_triples=0)
  ds = Dataset(**{**ds.__dict__, "kg": np.array([[4, 0, 15], [5, 0, 15]]),
                  "aux": AuxFacts.empty()})
  item_emb = rng.normal(size=(ds.n_items, 3)).astype(np.float32)
  train = np.array([[0, 0], [1, 1]])           # items 4 and 5 are cold, and so is all of 15's
  got = np.asarray(coldstart.impute(jnp.asarray(item_emb), coldstart.build(ds, train, 0.5)))
  np.testing.assert_array_equal(got, item_emb)
  train = np.array([[0, 4]])                   # now item 5 borrows item 4 through entity 15
  got = np.asarray(coldstart.impute(jnp.asarray(item_emb), coldstart.build(ds, train, 1.0)))
  np.testing.assert_allclose(got[5], item_emb[4], rtol=1e-6)   # one trained item, its own norm
  np.testing.assert_array_equal(np.delete(got, 5, 0), np.delete(item_emb, 5, 0))


def test_warm_items_come_from_the_training_pairs_only():
  """An item named only by held-out pairs is cold: the split's validation and test pairs never
  make an item warm, and the links read the KG and aux facts, not the pairs."""
  rng = np.random.default_rng(2)
  ds = _dataset(rng)
  train, held_out = np.array([[0, 1], [1, 2]]), np.array([[0, 7], [2, 8]])
  cold = coldstart.build(ds, train, 0.4)
  assert np.flatnonzero(np.asarray(cold.warm)).tolist() == [1, 2]
  again = coldstart.build(Dataset(**{**ds.__dict__, "interactions": held_out}), train, 0.4)
  for a, b in zip((cold.link_item, cold.link_node), (again.link_item, again.link_node)):
    np.testing.assert_array_equal(a, b)


def test_options_are_checked():
  with pytest.raises(options.ConfigError, match="config.eval.cold_items='graph'"):
    options.EvalOptions(cold_items="graph")
  with pytest.raises(options.ConfigError, match="config.eval.cold_norm=0"):
    options.EvalOptions(cold_items="kg", cold_norm=0)


def test_a_run_scores_cold_items_through_the_kg(tmp_path):
  """End to end on the synthetic data: a run with eval.cold_items=kg evaluates and recommends
  with the imputed rows; a model without item embeddings is refused before anything is written."""
  from kgax import config as config_lib, experiment, inference, train
  cfg = config_lib.load_file(f"{REPO_CONFIG}:model=lightgcn")
  cfg.train.epochs, cfg.train.eval_every = 2, 1
  cfg.eval.cold_items = "kg"
  res = train.train_and_evaluate(cfg, tmp_path / "kg")
  run = inference.Run.open(tmp_path / "kg")
  assert run.exp.cold_items is not None
  assert run.evaluate("test") == pytest.approx(res["test"], rel=1e-6)
  users, items = experiment.item_embeddings(run.lib, run.opts.model, run.params, run.graph)
  _, imputed = experiment.item_embeddings(run.lib, run.opts.model, run.params, run.graph,
                                          run.exp.cold_items)
  warm = np.asarray(run.exp.cold_items.warm)
  np.testing.assert_array_equal(np.asarray(imputed)[warm], np.asarray(items)[warm])
  scores = np.asarray(users)[:3] @ np.asarray(imputed).T
  top, _ = run.recommend(np.arange(3), 5)
  seen = {(u, i) for u, i in np.concatenate([run.split.train, run.split.valid])}
  for u in range(3):
    order = [i for i in np.argsort(-scores[u], kind="stable") if (u, i) not in seen][:5]
    assert set(top[u]) == set(order)
  cfg = config_lib.load_file(f"{REPO_CONFIG}:model=kgcn")
  cfg.eval.cold_items = "kg"
  with pytest.raises(options.ConfigError, match="config.eval.cold_items='kg'"):
    train.train_and_evaluate(cfg, tmp_path / "kgcn")
  assert not (tmp_path / "kgcn").exists()
  assert json.loads((tmp_path / "kg" / "config.json").read_text())["eval"]["cold_items"] == "kg"


def test_shuffled_control_keeps_the_link_counts():
  rng = np.random.default_rng(3)
  ds = _dataset(rng)
  cold = coldstart.build(ds, ds.interactions[:10], 0.4)
  control = coldstart.shuffled(cold, 0)
  np.testing.assert_array_equal(control.link_item, cold.link_item)
  np.testing.assert_array_equal(np.sort(control.link_node), np.sort(cold.link_node))
  assert (np.asarray(control.link_node) != np.asarray(cold.link_node)).any()


def test_centered_rule_ignores_an_offset_shared_by_every_item():
  """BPR ranks the same when one vector is added to every item; the centered rule moves the
  imputed rows with it (so their ranks do not change), the plain rule turns toward it."""
  rng = np.random.default_rng(3)
  ds = _dataset(rng)
  train = ds.interactions[: len(ds.interactions) // 2]
  item_emb = rng.normal(size=(ds.n_items, 5)).astype(np.float32)
  offset = 10 * rng.normal(size=5).astype(np.float32)
  centered = coldstart.build(ds, train, 0.4, centered=True)
  imputed = ~np.isclose(np.asarray(coldstart.impute(jnp.asarray(item_emb), centered)),
                        item_emb).all(1)
  assert imputed.any()
  a = np.asarray(coldstart.impute(jnp.asarray(item_emb), centered))
  b = np.asarray(coldstart.impute(jnp.asarray(item_emb + offset), centered))
  np.testing.assert_allclose(b, a + offset, rtol=1e-4, atol=1e-4)
  plain = coldstart.build(ds, train, 0.4)
  c = np.asarray(coldstart.impute(jnp.asarray(item_emb + offset), plain))
  d = np.asarray(coldstart.impute(jnp.asarray(item_emb), plain))
  assert not np.allclose(c[imputed], d[imputed] + offset, atol=1e-2)
  cos = (c[imputed] @ offset) / np.linalg.norm(c[imputed], axis=1) / np.linalg.norm(offset)
  assert cos.min() > 0.9   # the plain rule's cold rows point along the shared offset


def test_auto_selects_the_rule_on_validation_and_evaluate_reuses_it(tmp_path, monkeypatch):
  """eval.cold_items="auto": the run records every rule's validation metric, keeps the best
  (own rows on a tie) for its test metrics, and `kgax evaluate` scores with the same rule."""
  from kgax import config as config_lib, experiment, inference, train
  cfg = config_lib.load_file(f"{REPO_CONFIG}:model=lightgcn")
  cfg.train.epochs, cfg.train.eval_every = 2, 1
  cfg.eval.cold_items = "auto"
  res = train.train_and_evaluate(cfg, tmp_path / "auto")
  valid = res["cold_items"]["valid"]
  assert list(valid) == list(coldstart.RULES)
  assert res["cold_items"]["selected"] == max(valid, key=valid.get)
  assert res["valid"]["recall@20"] == valid[res["cold_items"]["selected"]]
  run = inference.Run.open(tmp_path / "auto")
  assert run.exp.cold_rule == res["cold_items"]["selected"]
  assert run.evaluate("test") == pytest.approx(res["test"], rel=1e-6)

  # a rule that validation prefers is the one that scores test
  plain = experiment.Experiment.evaluate_fn
  def boosted(self, items=None, trim=None, cold_rule=None, graph=None):
    fn = plain(self, items, trim, cold_rule, graph)
    if (cold_rule if cold_rule is not None else self.cold_rule) != "kg_centered":
      return fn
    return lambda params, ev: {k: v + 1.0 for k, v in fn(params, ev).items()}
  monkeypatch.setattr(experiment.Experiment, "evaluate_fn", boosted)
  res = train.train_and_evaluate(cfg, tmp_path / "boosted")
  assert res["cold_items"]["selected"] == "kg_centered"
  assert res["test"]["recall@20"] > 1.0
  assert inference.Run.open(tmp_path / "boosted").exp.cold_rule == "kg_centered"
  monkeypatch.setattr(experiment.Experiment, "evaluate_fn", plain)
  (tmp_path / "boosted" / "results.json").unlink()
  with pytest.raises(DataError, match="no selected rule"):
    inference.Run.open(tmp_path / "boosted")
