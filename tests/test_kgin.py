"""KGIN: propagation and independence loss against brute-force numpy, dropout, training, Options."""

import collections
import dataclasses
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from kgax import models
from kgax.data import split, synthetic
from kgax.graph import GraphOptions, build_graph
from kgax.models import kgin

DIM, INTENTS, LAYERS = 6, 3, 2
_embed = jax.jit(kgin.user_item_embeddings, static_argnums=2)   # (params, graph, Options, rng=)
_loss = jax.jit(kgin.cf_loss, static_argnums=2)                 # (params, graph, Options, ...)


@pytest.fixture
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


@pytest.fixture(scope="module")
def data():
  """(dataset, training pairs, graph without aux edges) of the tiny synthetic preset."""
  ds = synthetic.load_preset("tiny")
  train = split.split_dataset(ds).train
  return ds, train, build_graph(ds, train, GraphOptions(aux_edges=False, pad_to=256))


def _options(**kw):
  return kgin.Options(**{"embed_dim": DIM, "n_intents": INTENTS, "n_layers": LAYERS, **kw})


def _params64(m, graph, key=0):
  params = kgin.init(jax.random.key(key), m, graph)
  return jax.tree.map(lambda a: a.astype(jnp.float64), params)


def _normalize(v):
  return v / np.sqrt(max(float(v @ v), 1e-12))


def _softmax(z):
  z = np.exp(z - z.max())
  return z / z.sum()


def _reference(params, ds, train, m):
  """(users [U, d], items [I, d]) from the equations, one user / entity / neighbour at a time."""
  p = {k: np.asarray(v) for k, v in params.items()}
  n_rel = ds.n_relations
  neighbours = collections.defaultdict(list)      # entity -> [(relation row, tail)]
  for h, r, t in np.unique(ds.kg, axis=0):
    neighbours[h].append((r, t))
    if m.inverse_relations:
      neighbours[t].append((n_rel + r, h))
  history = collections.defaultdict(list)
  for u, i in np.unique(train, axis=0):
    history[u].append(i)
  alpha = np.stack([_softmax(w) for w in p["intent"]])            # [P, R'] eq. 2
  e_p = alpha @ p["relation"]                                      # eq. 1
  query = p["intent_query"] if m.formulation == "code" else e_p
  user, ent = p["user"], p["entity"]
  out_u, out_e = user.copy(), ent.copy()
  for _ in range(m.n_layers):
    new_u = np.zeros_like(user)
    for u in range(ds.n_users):
      beta = _softmax(np.array([query[k] @ user[u] for k in range(m.n_intents)]))   # eq. 8
      for i in history[u]:
        for k in range(m.n_intents):
          new_u[u] += beta[k] * e_p[k] * ent[i] / len(history[u])                    # eq. 7
        if m.formulation == "code":
          new_u[u] += ent[i] / len(history[u])
    new_e = np.zeros_like(ent)
    for v in range(ds.n_entities):
      for r, t in neighbours[v]:
        new_e[v] += p["relation"][r] * ent[t] / len(neighbours[v])                   # eq. 10
    user = np.stack([_normalize(x) for x in new_u])
    ent = np.stack([_normalize(x) for x in new_e])
    out_u, out_e = out_u + user, out_e + ent
  return out_u, out_e[:ds.n_items]


@pytest.mark.parametrize("formulation,inverse", [("paper", True), ("code", True),
                                                 ("paper", False)])
def test_embeddings_match_brute_force(x64, data, formulation, inverse):
  ds, train, graph = data
  m = _options(formulation=formulation, inverse_relations=inverse)
  params = _params64(m, graph)
  users, items = _embed(params, graph, m)
  ref_u, ref_i = _reference(params, ds, train, m)
  np.testing.assert_allclose(users, ref_u, rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(items, ref_i, rtol=1e-5, atol=1e-8)
  if formulation == "code" or not inverse:
    return
  # The aux facts, as CKG edges, change nothing.
  with_aux = build_graph(ds, train, GraphOptions(aux_edges=True, pad_to=64))
  assert with_aux.n_real_edges > graph.n_real_edges
  users_aux, items_aux = _embed(params, with_aux, m)
  np.testing.assert_allclose(users_aux, users, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(items_aux, items, rtol=1e-12, atol=1e-12)


def _dcor_numpy(x, y):
  """Sample distance correlation (Szekely et al. 2007), straight from its definition."""
  n = len(x)
  def centred(v):
    a = np.array([[abs(v[j] - v[k]) for k in range(n)] for j in range(n)])
    return a - a.mean(0)[None] - a.mean(1)[:, None] + a.mean()
  a, b = centred(x), centred(y)
  dcov2 = lambda s, t: sum(s[j, k] * t[j, k] for j in range(n) for k in range(n)) / n ** 2
  return np.sqrt(dcov2(a, b) / np.sqrt(dcov2(a, a) * dcov2(b, b)))


def test_independence_losses_match_numpy(x64):
  v = np.random.default_rng(0).normal(size=(4, 10))
  v[3] = v[0] ** 2 - 0.5 * v[1]          # dependent on rows 0 and 1 (dCor well above 0)
  pairs = [(p, q) for p in range(4) for q in range(p + 1, 4)]
  independence = jax.jit(kgin.independence, static_argnums=1)
  dcor = jax.jit(kgin.distance_correlation)(jnp.asarray(v))
  for p, q in pairs:
    np.testing.assert_allclose(dcor[p, q], _dcor_numpy(v[p], v[q]), rtol=1e-6)
  np.testing.assert_allclose(np.diagonal(dcor), 1.0, rtol=1e-6)
  want = sum(_dcor_numpy(v[p], v[q]) for p, q in pairs)
  np.testing.assert_allclose(independence(jnp.asarray(v), "distance"), want, rtol=1e-6)
  unit = v / np.linalg.norm(v, axis=1, keepdims=True)
  cos = unit @ unit.T
  np.testing.assert_allclose(independence(jnp.asarray(v), "cosine"),
                             sum(cos[p, q] ** 2 for p, q in pairs), rtol=1e-10)
  tau = 0.3
  mi = -sum(np.log(np.exp(cos[p, p] / tau) / np.exp(cos[p] / tau).sum()) for p in range(4))
  np.testing.assert_allclose(independence(jnp.asarray(v), "mutual_info", tau), mi,
                             rtol=1e-10)
  # What the loss is taken over: e_p (paper) or the intent logits (code).
  m = _options(independence="distance")
  graph = build_graph(synthetic.load_preset("tiny"), np.array([[0, 0]]),
                      GraphOptions(aux_edges=False))
  params = _params64(m, graph)
  e_p = jax.nn.softmax(params["intent"], -1) @ params["relation"]
  loss = jax.jit(kgin.independence_loss, static_argnums=1)
  np.testing.assert_allclose(loss(params, m),
                             sum(_dcor_numpy(e_p[p], e_p[q]) for p in range(3)
                                 for q in range(p + 1, 3)), rtol=1e-6)
  code = dataclasses.replace(m, formulation="code")
  w = np.asarray(params["intent"])
  np.testing.assert_allclose(loss(params, code),
                             sum(_dcor_numpy(w[p], w[q]) for p in range(3)
                                 for q in range(p + 1, 3)), rtol=1e-6)


def test_evaluation_is_deterministic_and_dropout_needs_rng(data):
  _, train, graph = data
  m = _options()
  params = kgin.init(jax.random.key(1), m, graph)
  first, second = _embed(params, graph, m), _embed(params, graph, m)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  drop_a = _embed(params, graph, m, rng=jax.random.key(2))
  drop_b = _embed(params, graph, m, rng=jax.random.key(3))
  for a, b, c in zip(drop_a, _embed(params, graph, m, rng=jax.random.key(2)), drop_b):
    np.testing.assert_array_equal(a, b)           # same key, same dropout
    assert not np.allclose(a, c)                  # another key, other edges and messages
  assert not np.allclose(drop_a[1], first[1])
  # With every rate at 0 an rng changes nothing.
  still = dataclasses.replace(m, message_dropout=0.0, edge_dropout=0.0, interaction_dropout=0.0)
  for a, b in zip(_embed(params, graph, still, rng=jax.random.key(2)), first):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_adam_steps_decrease_the_loss(data):
  _, train, graph = data
  m = _options(embed_dim=16, n_layers=2, independence_weight=1e-2)
  params = kgin.init(jax.random.key(0), m, graph)
  rng = np.random.default_rng(0)

  def batch(size):
    pos = train[rng.integers(0, len(train), size)]
    return jnp.asarray(np.c_[pos, rng.integers(0, graph.n_items, size)], jnp.int32)

  loss_fn = lambda p, b, k: _loss(p, graph, m, b, k, 1e-4)
  opt = optax.adam(1e-2)
  state = opt.init(params)

  @jax.jit
  def step(params, state, b, k):
    loss, grads = jax.value_and_grad(loss_fn)(params, b, k)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, grads

  held_out = batch(512)
  key = jax.random.key(5)
  before = float(loss_fn(params, held_out, key))
  for s in range(40):
    params, state, loss, grads = step(params, state, batch(256), jax.random.key(10 + s))
    for name, g in grads.items():
      assert np.all(np.isfinite(g)), name
  for name in ("user", "entity", "relation", "intent"):
    assert np.abs(grads[name]).max() > 0, name
  after = float(loss_fn(params, held_out, key))
  assert after < 0.8 * before, (before, after)
  # The independence term enters with its weight.
  plain = dataclasses.replace(m, independence_weight=0.0)
  gap = loss_fn(params, held_out, key) - _loss(params, graph, plain, held_out, key, 1e-4)
  np.testing.assert_allclose(gap, 1e-2 * kgin.independence_loss(params, m), rtol=1e-4)


@pytest.mark.parametrize("field,value", [
    ("n_intents", 0), ("edge_dropout", 1.0), ("message_dropout", -0.1),
    ("interaction_dropout", 1.5), ("embed_dim", 0), ("n_layers", -1), ("n_intents", 2.0),
    ("independence", "hsic"), ("independence_weight", -1.0), ("temperature", 0.0),
    ("formulation", "mine"), ("l2_on", "all"), ("inverse_relations", 1), ("use_kge", True),
    ("name", "kgat")])
def test_options_reject_bad_values(field, value):
  pattern = re.escape(f"config.model.{field}={value!r}: expected")
  with pytest.raises(ValueError, match=pattern):
    kgin.Options(**{field: value})
  config = ml_collections.ConfigDict({**dataclasses.asdict(kgin.Options()), field: value})
  with pytest.raises(ValueError, match=pattern):
    kgin.check_config(config)


def test_config_dict_and_registry(data):
  _, _, graph = data
  assert models.get("kgin") is kgin
  m = _options()
  config = ml_collections.ConfigDict(dataclasses.asdict(m))
  assert kgin.check_config(config) == m
  params = kgin.init(jax.random.key(0), config, graph)
  for a, b in zip(jax.jit(lambda p, g: kgin.user_item_embeddings(p, g, config))(params, graph),
                  _embed(params, graph, m)):
    np.testing.assert_array_equal(a, b)
  del config["temperature"]
  with pytest.raises(ValueError, match=r"config\.model\.temperature: missing"):
    kgin.check_config(config)
  ds = synthetic.load_preset("tiny")
  no_inverse = build_graph(ds, np.array([[0, 0]]), GraphOptions(aux_edges=False, inverse=False))
  with pytest.raises(ValueError, match=r"config\.model\.inverse_relations=True"):
    kgin.init(jax.random.key(0), m, no_inverse)
  kgin.init(jax.random.key(0), dataclasses.replace(m, inverse_relations=False), no_inverse)
