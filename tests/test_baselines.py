"""Baselines (docs/model.md §3): score functions and losses against brute-force numpy, Options
checks, then training."""

import dataclasses
import pathlib

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from kgax import config as config_lib
from kgax import models, options, sampling, train
from kgax.data import AuxFacts, Dataset
from kgax.data import load
from kgax.graph import GraphOptions, build_graph
from kgax.models import cfkg, cke, fm, kgcn, lightgcn, mf

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = ("mf", "fm", "cke", "cfkg", "kgcn", "lightgcn")


@pytest.fixture
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _config(name, arg="dataset=synthetic-tiny"):
  return config_lib.load_file(f"{REPO / 'configs' / name}.py:{arg}")


def _dataset():
  """9 entities (items 0..4), 3 KG relations, 6 users, aux facts on items and users.

  Item 0 reaches entity 5 through two relations, item 4 and entity 4 have no KG edge, entity 8
  is only a tail.
  """
  kg = np.array([[0, 0, 5], [0, 1, 6], [0, 2, 5], [1, 0, 7], [1, 1, 2], [2, 2, 8], [5, 0, 6],
                 [7, 1, 0], [3, 0, 6]])
  inter = np.array([[0, 0], [0, 1], [1, 2], [1, 4], [2, 0], [2, 3], [3, 1], [4, 4], [5, 2],
                    [5, 3]])
  aux = AuxFacts(owner=np.array([0, 2, 3, 1]), owner_is_user=np.array([False, False, True, True]),
                 node=np.array([0, 1, 2, 2]), weight=np.array([0.9, 0.5, 1.0, 1.0], np.float32),
                 node_attr=np.array([0, 0, 1]), node_names=np.array(["g=a", "g=b", "age=20"],
                                                                     object),
                 attr_names=("genome", "age"))
  return Dataset(name="toy", n_users=6, n_items=5, n_entities=9, interactions=inter, kg=kg,
                 relation_names=("a", "b", "c"), aux=aux).validate()


def _setup(name, key=0, **model):
  """(dataset, graph, model Options, float64 params with random biases where the model has
  any)."""
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(aux_edges=True, pad_to=16))
  lib = models.get(name)
  m = lib.Options(**{"embed_dim": 4, **model})
  params = jax.tree.map(lambda a: a.astype(jnp.float64), lib.init(jax.random.key(key), m, g))
  if name == "fm":
    params["entity_bias"] = jax.random.normal(jax.random.key(key + 1), params["entity_bias"].shape,
                                              jnp.float64)
  if name == "kgcn":
    params["layers"] = [dict(l, b=jax.random.normal(jax.random.key(key + 2 + n), l["b"].shape,
                                                    jnp.float64))
                        for n, l in enumerate(params["layers"])]
  return ds, g, m, params


def _scores(lib, params, g, m):
  if hasattr(lib, "user_item_embeddings"):
    users, items = lib.user_item_embeddings(params, g, m)
    return np.asarray(users @ items.T)
  return np.asarray(lib.score_users(params, g, m, jnp.arange(g.n_users)))


def _softplus(x):
  return np.log1p(np.exp(x))


def _bpr(pos, neg, l2, *vectors):
  reg = 0.5 * np.mean(sum(np.sum(v * v, -1) for v in vectors))
  return np.mean(_softplus(-(pos - neg))) + l2 * reg


BATCH = np.array([[0, 1, 2], [3, 0, 4], [5, 3, 1]])


def _check_bpr(lib, params, g, m, score, vec):
  """cf_loss equals BPR on `score` [U, I] with L2 of the batch vectors vec(u, i, j)."""
  got = float(lib.cf_loss(params, g, m, jnp.asarray(BATCH), jax.random.key(0), 0.1))
  u, i, j = BATCH.T
  np.testing.assert_allclose(got, _bpr(score[u, i], score[u, j], 0.1, *vec(u, i, j)), rtol=1e-10)


@pytest.mark.usefixtures("x64")
def test_mf_score_and_loss():
  _, g, m, params = _setup("mf")
  p = jax.tree.map(np.asarray, params)
  want = p["user"] @ p["item"].T
  np.testing.assert_allclose(_scores(mf, params, g, m), want, rtol=1e-10)
  _check_bpr(mf, params, g, m, want, lambda u, i, j: (p["user"][u], p["item"][i], p["item"][j]))


def _fm_features(ds, item):
  """The FM's item-side features: [(entity id, value)]: the item, then one per KG edge."""
  nb = [t for h, r, t in ds.kg if h == item]
  return [(item, 1.0)] + [(t, 1.0 / len(nb)) for t in nb]


@pytest.mark.usefixtures("x64")
def test_fm_score_is_the_pairwise_double_loop():
  ds, g, m, params = _setup("fm")
  p = jax.tree.map(np.asarray, params)
  want = np.zeros((ds.n_users, ds.n_items))
  for u in range(ds.n_users):
    for i in range(ds.n_items):
      feats = ([(p["user"][u], 1.0, 0.0)]   # the user's linear weight cancels: left out
               + [(p["entity"][e], x, p["entity_bias"][e]) for e, x in _fm_features(ds, i)])
      y = sum(w * x for _, x, w in feats)
      for a in range(len(feats)):
        for b in range(a + 1, len(feats)):
          y += (feats[a][0] @ feats[b][0]) * feats[a][1] * feats[b][1]
      want[u, i] = y
  np.testing.assert_allclose(_scores(fm, params, g, m), want, rtol=1e-10, atol=1e-12)

  def vec(u, i, j):
    s = lambda items: np.stack([sum(x * p["entity"][e] for e, x in _fm_features(ds, k))
                                for k in items])
    return p["user"][u], s(i), s(j)
  _check_bpr(fm, params, g, m, want, vec)


@pytest.mark.usefixtures("x64")
def test_cke_score_and_transr_loss():
  ds, g, m, params = _setup("cke", relation_dim=3)
  p = jax.tree.map(np.asarray, params)
  item = p["item"] + p["node"][:ds.n_items]
  want = p["user"] @ item.T
  np.testing.assert_allclose(_scores(cke, params, g, m), want, rtol=1e-10)
  _check_bpr(cke, params, g, m, want, lambda u, i, j: (p["user"][u], item[i], item[j]))
  n_fwd = g.n_fwd_relations
  kb = np.array([[0, 1, 5, 3], [6, n_fwd + 1, 0, 8], [2, 3, 8, 1]])
  got = float(cke.kg_loss(params, g, m, jnp.asarray(kb), 0.1))
  terms, regs = [], []
  for h, r, t, tn in kb:
    proj = lambda v: p["node"][v] @ p["W_r"][r]
    rel = p["relation"][r]
    terms.append(_softplus(np.sum((proj(h) + rel - proj(t)) ** 2)
                           - np.sum((proj(h) + rel - proj(tn)) ** 2)))
    regs.append(0.5 * sum(np.sum(v ** 2) for v in (proj(h), rel, proj(t), proj(tn))))
  np.testing.assert_allclose(got, np.mean(terms) + 0.1 * np.mean(regs), rtol=1e-10)


@pytest.mark.usefixtures("x64")
def test_cfkg_score_is_minus_transe_distance():
  ds, g, m, params = _setup("cfkg")
  p = jax.tree.map(np.asarray, params)
  e, r = p["node"], p["relation"]
  want = np.array([[-np.sum((e[g.user_start + u] + r[0] - e[i]) ** 2) for i in range(ds.n_items)]
                   for u in range(ds.n_users)])
  np.testing.assert_allclose(_scores(cfkg, params, g, m), want, rtol=1e-10)
  _check_bpr(cfkg, params, g, m, want, lambda u, i, j: (
      e[g.user_start + u], np.broadcast_to(r[0], (len(u), r.shape[1])), e[i], e[j]))
  kb = np.array([[0, 1, 5, 3], [g.aux_start, g.n_fwd_relations + 4, 0, 7]])
  got = float(cfkg.kg_loss(params, g, m, jnp.asarray(kb), 0.1))
  dist = lambda h, rr, t: np.sum((e[h] + r[rr] - e[t]) ** 2)
  want_kg = _bpr(np.array([-dist(h, rr, t) for h, rr, t, _ in kb]),
                 np.array([-dist(h, rr, tn) for h, rr, _, tn in kb]), 0.1,
                 e[kb[:, 0]], r[kb[:, 1]], e[kb[:, 2]], e[kb[:, 3]])
  np.testing.assert_allclose(got, want_kg, rtol=1e-10)


def _kg_neighbours(ds):
  """Undirected KG neighbours of every entity: {entity: {(neighbour, KG relation)}}."""
  out = {v: set() for v in range(ds.n_entities)}
  for h, r, t in ds.kg:
    out[h].add((t, r))
    out[t].add((h, r))
  return out


@pytest.mark.usefixtures("x64")
def test_kgcn_neighbour_table_samples_kg_neighbours():
  ds, g, _, _ = _setup("kgcn")
  ent, rel, has = map(np.asarray, kgcn.neighbour_table(g, jax.random.key(3), 200))
  nbrs = _kg_neighbours(ds)
  for v in range(ds.n_entities):
    assert has[v] == bool(nbrs[v])
    if nbrs[v]:   # every draw is a neighbour; 200 draws hit each of the few neighbours
      assert set(zip(ent[v], rel[v])) == nbrs[v]
    else:
      assert set(ent[v]) == {v}
  other = np.asarray(kgcn.neighbour_table(g, jax.random.key(4), 200)[0])
  assert not np.array_equal(ent, other)   # a new key draws new neighbourhoods


def _kgcn_reference(p, table, u, v, n_iter):
  """KGCN's item vector x_v for user vector u by recursion over the fixed neighbour table."""
  ent, rel, has = table

  def vec(e, level):   # e after `level` iterations
    if level == 0:
      return p["entity"][e]
    logits = np.array([u @ p["relation"][r] for r in rel[e]])
    pi = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum() * has[e]
    agg = sum(w * vec(n, level - 1) for w, n in zip(pi, ent[e]))
    layer = p["layers"][level - 1]
    z = (vec(e, level - 1) + agg) @ layer["W"] + layer["b"]
    return np.tanh(z) if level == n_iter else np.maximum(z, 0)
  return vec(v, n_iter)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("n_iter", [1, 2])
def test_kgcn_score_matches_recursive_reference(n_iter):
  ds, g, m, params = _setup("kgcn", n_iter=n_iter, neighbor_sample_size=3, score_chunk=2)
  p = jax.tree.map(np.asarray, params)
  table = [np.asarray(a) for a in kgcn.neighbour_table(g, jax.random.key(kgcn.EVAL_SEED), 3)]
  want = np.array([[p["user"][u] @ _kgcn_reference(p, table, p["user"][u], i, n_iter)
                    for i in range(ds.n_items)] for u in range(ds.n_users)])
  np.testing.assert_allclose(_scores(kgcn, params, g, m), want, rtol=1e-10, atol=1e-12)
  # Training draws its table from the step's rng.
  table = [np.asarray(a) for a in kgcn.neighbour_table(g, jax.random.key(0), 3)]
  x = lambda u, items: np.stack([_kgcn_reference(p, table, p["user"][a], b, n_iter)
                                 for a, b in zip(u, items)])
  u, i, j = BATCH.T
  pos, neg = (np.sum(p["user"][u] * x(u, items), 1) for items in (i, j))
  got = float(kgcn.cf_loss(params, g, m, jnp.asarray(BATCH), jax.random.key(0), 0.1))
  np.testing.assert_allclose(got, _bpr(pos, neg, 0.1, p["user"][u], x(u, i), x(u, j)),
                             rtol=1e-10)


@pytest.mark.parametrize("name,field,value,match", [
    ("mf", "embed_dim", 0, "config.model.embed_dim=0: expected a positive number"),
    ("fm", "embed_dim", -4, "config.model.embed_dim=-4: expected a positive number"),
    ("cke", "embed_dim", 0, "config.model.embed_dim=0: expected a positive number"),
    ("cke", "relation_dim", 0, "config.model.relation_dim=0: expected a positive number"),
    ("cfkg", "kg_triples", "all", "config.model.kg_triples='all': expected one of"),
    ("kgcn", "neighbor_sample_size", 0, "config.model.neighbor_sample_size=0: expected"),
    ("kgcn", "n_iter", 0, "config.model.n_iter=0: expected"),
    ("kgcn", "score_chunk", -1, "config.model.score_chunk=-1: expected"),
    ("lightgcn", "n_layers", -1, "config.model.n_layers=-1: expected a number >= 0"),
    ("lightgcn", "embed_dim", 0, "config.model.embed_dim=0: expected a positive number")])
def test_bad_option_is_named(name, field, value, match):
  with pytest.raises(ValueError, match=match):
    models.get(name).Options(**{field: value})
  c = _config(name)   # the same message through options.parse of the model's config file
  c.model[field] = value
  with pytest.raises(options.ConfigError, match=match):
    options.parse(c)


@pytest.mark.parametrize("name,field", [("cke", "kg_triples"), ("mf", "use_kge"),
                                        ("lightgcn", "aux_edges"), ("kgcn", "use_kge")])
def test_fixed_properties_are_not_fields(name, field):
  """What a baseline trains on is fixed by its module (class attributes, not config fields)."""
  lib = models.get(name)
  assert field not in {f.name for f in dataclasses.fields(lib.Options)}
  assert hasattr(lib.Options(), field)
  c = _config(name)
  c.model[field] = getattr(lib.Options, field)
  with pytest.raises(options.ConfigError, match=f"^config.model.{field}: no such field"):
    options.parse(c)


@pytest.mark.parametrize("name", MODELS)
def test_config_file_parses_to_the_model_options(name):
  opts = options.parse(_config(name))
  assert isinstance(opts.model, models.get(name).Options)
  assert opts.model.name == opts.name == name
  assert opts.data.name == "synthetic-tiny"


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_lightgcn_is_the_dense_normalised_propagation(n_layers):
  ds, _, m, params = _setup("lightgcn", n_layers=n_layers)
  train_pairs = ds.interactions[[2, 3, 4, 5, 7, 8, 9]]   # users 0 and 3 and item 1 left bare
  g = build_graph(ds, train_pairs, GraphOptions(aux_edges=True, pad_to=16))
  p = jax.tree.map(np.asarray, params)
  a = np.zeros((ds.n_users, ds.n_items))
  a[train_pairs[:, 0], train_pairs[:, 1]] = 1
  du, di = a.sum(1), a.sum(0)
  norm = a / np.sqrt(np.outer(np.maximum(du, 1), np.maximum(di, 1)))
  eu, ei, su, si = p["user"], p["item"], p["user"].copy(), p["item"].copy()
  for _ in range(n_layers):
    eu, ei = norm @ ei, norm.T @ eu
    su, si = su + eu, si + ei
  want = (su @ si.T) / (n_layers + 1) ** 2
  np.testing.assert_allclose(_scores(lightgcn, params, g, m), want, rtol=1e-10, atol=1e-14)
  _check_bpr(lightgcn, params, g, m, want, lambda u, i, j: (p["user"][u], p["item"][i],
                                                             p["item"][j]))


def _random_recall(ds, split, k):
  """Expected recall@k of a random ranking: per test user, k / candidates (at most 1)."""
  seen = np.bincount(np.concatenate([split.train, split.valid])[:, 0], minlength=ds.n_users)
  users = np.unique(split.test[:, 0])
  return float(np.mean(np.minimum(1.0, k / (ds.n_items - seen[users]))))


@pytest.mark.parametrize("name", MODELS)
def test_trains_beyond_random(name, tmp_path, monkeypatch):
  seen, kg_epoch = [], sampling.kg_epoch

  def spy(rng, heads, rels, tails, n_neg, *args):   # records what the KG phase draws from
    seen.append((rels, n_neg))
    return kg_epoch(rng, heads, rels, tails, n_neg, *args)
  monkeypatch.setattr(sampling, "kg_epoch", spy)
  c = _config(name)
  c.model.embed_dim = 16
  if name == "cke":
    c.model.relation_dim = 16
  c.optim.lr = 1e-2
  c.train.update(epochs=20, batch_size=512, kg_batch_size=1024, steps_per_call=4, eval_every=10)
  c.eval.update(ks=(20,), batch_size=128)
  results = train.train_and_evaluate(c, tmp_path)
  ds, split = load.load_split(c.data)
  assert results["model"] == name
  assert results["test"]["auc"] > 0.6
  assert results["test"]["recall@20"] > 2 * _random_recall(ds, split, 20)
  # CKE and CFKG train on KG triples only ("kg"): KG relations and inverses, entity negatives.
  assert len(seen) == (c.train.epochs if models.get(name).Options.use_kge else 0)
  for rels, n_neg in seen:
    base = rels % (1 + ds.n_relations + ds.aux.n_attrs)
    assert n_neg == ds.n_entities and np.all((base >= 1) & (base <= ds.n_relations))
    assert len(rels) == 2 * len(np.unique(ds.kg, axis=0))


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_kgcn_one_hop_scorer_equals_the_per_slot_softmax(scale):
  """The relation-grouped H = 1 scorer against `_represent`, also with relation logits e_u . e_r
  so far apart that exp(logit - the user's largest) underflows for some item."""
  ds, g, m, params = _setup("kgcn", n_iter=1, neighbor_sample_size=4)
  params = dict(params, user=params["user"] * scale, relation=params["relation"] * scale)
  table = kgcn.neighbour_table(g, jax.random.key(kgcn.EVAL_SEED), 4)
  ent, rel, has = (np.asarray(a) for a in table)
  logits = np.asarray(params["user"] @ params["relation"].T)
  items = np.arange(ds.n_items)
  # Whether some (user, item with edges) has all its relations' weights underflowing at this scale.
  item_best = np.array([[logits[b, rel[i]].max() for i in items if has[i]]
                        for b in range(ds.n_users)])
  assert (np.any(item_best - logits.max(1, keepdims=True) < -800)) == (scale > 1)
  u = params["user"]
  got = jax.jit(kgcn._one_hop_scorer(params, table, u, g.n_kg_relations))(jnp.asarray(items))
  x = jax.vmap(lambda u: kgcn._represent(params, table, u, jnp.asarray(items)))(u)
  want = jnp.einsum("bd,bcd->bc", u, x)
  assert np.all(np.isfinite(np.asarray(got)))
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9 * scale ** 2)
