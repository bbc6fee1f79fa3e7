"""KGAT-AX forward pass against a brute-force numpy reference, for every variant."""

import dataclasses

import ml_collections
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from kgax.data import AuxFacts, Dataset
from kgax.graph import GraphOptions, build_graph, find_edges
from kgax.models import kgat as model
from kgax.models import lightgcn

VARIANTS = ("kgat_ax", "no_kge", "no_att_eu", "no_att_ei", "no_aux", "kgat")


@pytest.fixture(autouse=True, scope="module")
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _config(variant, **kw):
  import importlib.util, pathlib
  path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "kgat_ax.py"
  spec = importlib.util.spec_from_file_location("kgat_ax_cfg", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(f"dataset=synthetic,variant={variant}")
  c.model.embed_dim = c.model.relation_dim = 6
  c.model.layers = (5, 3)
  c.model.update(kw)
  return c


def _dataset():
  rng = np.random.default_rng(0)
  inter = np.unique(np.stack([rng.integers(0, 7, 40), rng.integers(0, 5, 40)], 1), axis=0)
  kg = np.unique(np.stack([rng.integers(0, 9, 20), rng.integers(0, 3, 20),
                           rng.integers(0, 9, 20)], 1), axis=0)
  aux = AuxFacts(owner=np.array([0, 0, 2, 6, 1, 3]),
                 owner_is_user=np.array([False, False, False, False, True, True]),
                 node=np.array([0, 1, 1, 2, 3, 3]),
                 weight=np.array([0.9, 0.3, 0.5, 1.0, 2.0, 1.0], np.float32),
                 node_attr=np.array([0, 0, 1, 2]),
                 node_names=np.array(["g=a", "g=b", "y=1990", "age=20"], object),
                 attr_names=("genome", "year", "age"))
  return Dataset(name="toy", n_users=7, n_items=5, n_entities=9, interactions=inter, kg=kg,
                 relation_names=("a", "b", "c"), aux=aux).validate()


def _naive_corr(a, b):
  d = a.shape[-1]
  return np.stack([sum(a[..., i] * b[..., (i + k) % d] for i in range(d)) for k in range(d)], -1)


def _leaky(x, s):
  return np.where(x > 0, x, s * x)


def _reference(params, g, m, drop=frozenset(), scale=None):
  """Dense, per-edge, loop-based forward pass written straight from SPEC 2.2-2.4; the messages of
  the (h, r, t) edges in `drop` are removed after the softmax, those in `scale` multiplied by
  their factor."""
  scale = scale or {}
  p = jax.tree.map(np.asarray, params)
  n = g.n_nodes
  x = p["node"].copy()
  if m.fusion != "none":
    s = np.zeros_like(x)
    has = np.zeros(n, bool)
    owner = np.asarray(g.aux_owners)[np.asarray(g.aux_owner_index)]
    for o, a, w in zip(owner, np.asarray(g.aux_node), np.asarray(g.aux_weight)):
      if w > 0:
        s[o] += w * x[a]
        has[o] = True
    fused = x.copy()
    for v in np.flatnonzero(has):
      if m.fusion == "holographic":
        fused[v] = x[v] + _naive_corr(x[v], s[v]) @ p["W_f"]
      elif m.fusion == "hadamard":
        fused[v] = x[v] + (x[v] * s[v]) @ p["W_f"]
      else:
        fused[v] = np.concatenate([x[v], s[v]]) @ p["W_f"]
    x = fused
  real = np.asarray(g.weights) > 0
  H, R, T = (np.asarray(a)[real] for a in (g.heads, g.relations, g.tails))
  outs = [x]
  x0 = x
  deg = np.bincount(H, minlength=n)
  sym = m.get("edge_norm", "head") == "symmetric"
  for layer in p["layers"]:
    d_in = x.shape[1]
    msgs, logits = [], []
    for h, r, t in zip(H, R, T):
      if m.attention == "triple":
        W1 = np.concatenate([layer["A"], layer["B"], layer["C"]], 0)   # [2 d_in + k, d_in]
        msg = np.concatenate([x[h], p["relation"][r], x[t]]) @ W1
        logit = _leaky(layer["w2"] @ msg, m.leaky_slope)
      elif m.attention == "kgat":
        W = p["W_r"][r]
        msg = x[t]
        logit = (x0[t] @ W) @ np.tanh(x0[h] @ W + p["relation"][r])
      else:
        msg, logit = x[t], 0.0
      is_user = g.user_start <= h < g.user_start + g.n_users
      if (is_user and not m.attend_users) or (h < g.n_items and not m.attend_items):
        logit = 0.0
      msgs.append(msg)
      logits.append(logit)
    msgs, logits = np.array(msgs), np.array(logits)
    agg = np.zeros((n, d_in))
    for h in np.unique(H):
      e = np.flatnonzero(H == h)
      w = np.exp(logits[e] - logits[e].max())
      keep = np.array([scale.get((h, R[k], T[k]), float((h, R[k], T[k]) not in drop))
                       * (np.sqrt(deg[h] / deg[T[k]]) if sym else 1.0) for k in e])
      agg[h] = (w / w.sum() * keep) @ msgs[e]
    if m.aggregator == "bi":
      x = (_leaky((x + agg) @ layer["Wa"] + layer["ba"], m.leaky_slope)
           + _leaky((x * agg) @ layer["Wb"] + layer["bb"], m.leaky_slope))
    elif m.aggregator == "gcn":
      x = _leaky((x + agg) @ layer["Wa"] + layer["ba"], m.leaky_slope)
    elif m.aggregator == "graphsage":
      x = _leaky(np.concatenate([x, agg], 1) @ layer["Wa"] + layer["ba"], m.leaky_slope)
    else:
      x = agg
    normalize = m.get("normalize_layers", True)
    outs.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if normalize
                else x)
  if m.get("combine", "concat") == "mean":
    return np.mean(outs, 0)
  return np.concatenate(outs, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_propagation_matches_reference(variant):
  c = _config(variant)
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(aux_edges=c.model.aux_edges, pad_to=16))
  params = model.init(jax.random.key(1), c.model, g)
  params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
  got = np.asarray(model.propagate(params, g, c.model))
  want = _reference(params, g, c.model)
  np.testing.assert_allclose(got[:g.sink], want[:g.sink], rtol=1e-9, atol=1e-9)


_SQUARE = dict(layers=(6, 6))   # the linear aggregator and the mean need layers of size d


@pytest.mark.parametrize("kw", [dict(aggregator="gcn"), dict(aggregator="graphsage"),
                                dict(fusion="hadamard"), dict(fusion="concat"),
                                dict(attention="mean"), dict(normalize_layers=False),
                                dict(_SQUARE, aggregator="linear", normalize_layers=False),
                                dict(_SQUARE, aggregator="linear", combine="mean",
                                     normalize_layers=False, attention="kgat"),
                                dict(_SQUARE, aggregator="gcn", combine="mean"),
                                dict(edge_norm="symmetric"),
                                dict(_SQUARE, aggregator="linear", combine="mean",
                                     normalize_layers=False, edge_norm="symmetric")])
def test_switches_match_reference(kw):
  c = _config("kgat_ax", **kw)
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64),
                        model.init(jax.random.key(2), c.model, g))
  np.testing.assert_allclose(np.asarray(model.propagate(params, g, c.model))[:g.sink],
                             _reference(params, g, c.model)[:g.sink], rtol=1e-9, atol=1e-9)


def test_losses_against_reference():
  c = _config("kgat_ax")
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(3), c.model, g))
  p = jax.tree.map(np.asarray, params)
  # TransR: softplus(g(h,r,t) - g(h,r,t')) + l2/2 * mean squared norms.
  kb = np.array([[0, 1, 6, 3], [g.user_start, 0, 2, 4]])
  got = float(model.kg_loss(params, g, c.model, jnp.asarray(kb), 0.1))
  terms, regs = [], []
  for h, r, t, tn in kb:
    W, e, rel = p["W_r"][r], p["node"], p["relation"][r]
    gp = np.sum((e[h] @ W + rel - e[t] @ W) ** 2)
    gn = np.sum((e[h] @ W + rel - e[tn] @ W) ** 2)
    terms.append(np.log1p(np.exp(gp - gn)))
    regs.append(0.5 * sum(np.sum(v ** 2) for v in (e[h] @ W, rel, e[t] @ W, e[tn] @ W)))
  np.testing.assert_allclose(got, np.mean(terms) + 0.1 * np.mean(regs), rtol=1e-9)
  # BPR on the concatenated representations (deterministic pass: no dropout).
  z = _reference(params, g, c.model)
  batch = np.array([[0, 1, 2], [3, 0, 4]])
  c.model.message_dropout = 0.0
  got = float(model.cf_loss(params, g, c.model, jnp.asarray(batch), jax.random.key(0), 0.01))
  u, i, j = z[g.user_start + batch[:, 0]], z[batch[:, 1]], z[batch[:, 2]]
  bpr = np.mean(np.log1p(np.exp(-(np.sum(u * i, 1) - np.sum(u * j, 1)))))
  reg = 0.5 * np.mean(np.sum(u * u, 1) + np.sum(i * i, 1) + np.sum(j * j, 1))
  np.testing.assert_allclose(got, bpr + 0.01 * reg, rtol=1e-9)


def test_dropping_target_edges_matches_reference():
  """drop_target_edges: the BPR loss of a batch is computed on a propagation without the batch's
  (user, interact, item) and (item, interact^-1, user) edges, as in the reference."""
  c = _config("kgat_ax", message_dropout=0.0, drop_target_edges=True)
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(5), c.model, g))
  pos = ds.interactions[[0, 3, 7]]
  batch = np.c_[pos, [4, 2, 0]]
  drop = set()
  for u, i in pos:
    drop |= {(g.user_start + u, 0, i), (i, g.n_fwd_relations, g.user_start + u)}
  got = float(model.cf_loss(params, g, c.model, jnp.asarray(batch), jax.random.key(0), 0.01))

  def loss(z):
    u, i, j = z[g.user_start + batch[:, 0]], z[batch[:, 1]], z[batch[:, 2]]
    bpr = np.mean(np.log1p(np.exp(-(np.sum(u * i, 1) - np.sum(u * j, 1)))))
    return bpr + 0.01 * 0.5 * np.mean(np.sum(u * u, 1) + np.sum(i * i, 1) + np.sum(j * j, 1))
  np.testing.assert_allclose(got, loss(_reference(params, g, c.model, frozenset(drop))),
                             rtol=1e-9)
  assert abs(got - loss(_reference(params, g, c.model))) > 1e-6   # the edges mattered


def test_node_dropout_matches_reference():
  """node_dropout: one Bernoulli mask over the edges for the whole pass, kept messages scaled by
  1 / (1 - p) after the softmax; the evaluation pass (rng None) is unaffected."""
  p_drop = 0.4
  c = _config("kgat_ax", message_dropout=0.0, node_dropout=p_drop)
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(6), c.model, g))
  z, pis = model.propagate(params, g, c.model, rng=jax.random.key(3), return_attention=True)
  _, pis0 = model.propagate(params, g, c.model, return_attention=True)
  real = np.asarray(g.weights) > 0
  kept = np.asarray(pis)[0][real] > 0
  assert 0 < (~kept).sum() < kept.size                     # some dropped, some kept
  for layer in range(len(c.model.layers)):                 # the same mask in every layer
    np.testing.assert_array_equal(np.asarray(pis)[layer][real] > 0, kept)
  edges = zip(*(np.asarray(a)[real] for a in (g.heads, g.relations, g.tails)))
  up = float(np.float32(1) / np.float32(1 - p_drop))     # the graph's weights are float32
  scale = {e: (up if k else 0.0) for e, k in zip(edges, kept)}
  np.testing.assert_allclose(np.asarray(z)[:g.sink],
                             _reference(params, g, c.model, scale=scale)[:g.sink],
                             rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(np.asarray(pis)[0][real][kept],     # first layer: same inputs
                             np.asarray(pis0)[0][real][kept] * up, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(model.propagate(params, g, c.model))[:g.sink],
                             _reference(params, g, c.model)[:g.sink], rtol=1e-9, atol=1e-9)


def test_find_edges_locates_every_edge():
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  real = np.arange(g.n_real_edges)[::-1]
  got = find_edges(g, *(jnp.asarray(np.asarray(a)[real]) for a in (g.heads, g.relations, g.tails)))
  np.testing.assert_array_equal(np.asarray(got), real)


def test_gradients_flow_through_attention():
  c = _config("kgat_ax")
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = model.init(jax.random.key(4), c.model, g)
  batch = jnp.array([[0, 1, 2], [3, 0, 4]])
  grads = jax.grad(model.cf_loss)(params, g, c.model, batch, jax.random.key(0), 1e-5)
  for layer in grads["layers"]:
    assert float(jnp.abs(layer["w2"]).sum()) > 0   # attention is part of the forward pass
    assert float(jnp.abs(layer["A"]).sum()) > 0
  assert float(jnp.abs(grads["W_f"]).sum()) > 0
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grads))


def test_identity_init_starts_as_mean_aggregator():
  """identity_init: W1 = [0 | 0 | I] and w2 = 0, so at step 0 the triple attention is the mean
  aggregator over e_t (same node, relation and aggregator weights); it still learns from there."""
  ds = _dataset()
  c = _config("kgat_ax", identity_init=True)
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(6), c.model, g))
  mean = _config("kgat_ax", attention="mean")
  shared = {k: v for k, v in params.items() if k != "layers"}
  shared["layers"] = [{k: v for k, v in layer.items() if k not in ("A", "B", "C", "w2")}
                      for layer in params["layers"]]
  got = np.asarray(model.propagate(params, g, c.model))[:g.sink]
  np.testing.assert_allclose(got, _reference(shared, g, mean.model)[:g.sink], rtol=1e-9, atol=1e-9)
  xavier = jax.tree.map(lambda a: a.astype(jnp.float64),
                        model.init(jax.random.key(6), _config("kgat_ax").model, g))
  assert np.abs(np.asarray(model.propagate(xavier, g, c.model))[:g.sink] - got).max() > 1e-3
  grads = jax.grad(model.cf_loss)(params, g, c.model, jnp.array([[0, 1, 2], [3, 0, 4]]),
                                  jax.random.key(0), 1e-5)
  assert all(float(jnp.abs(layer[k]).sum()) > 0 for layer in grads["layers"] for k in ("A", "w2"))
  assert float(jnp.abs(grads["W_f"]).sum()) > 0
  for fusion in ("holographic", "hadamard", "concat"):   # the fusion starts as e_v' = e_v
    m = _config("kgat_ax", identity_init=True, fusion=fusion).model
    p = model.init(jax.random.key(7), m, g)
    np.testing.assert_allclose(np.asarray(model.fuse(p, g, m, p["node"])), np.asarray(p["node"]),
                               atol=1e-6)


def test_zero_messages_start_as_the_layer0_model():
  """zero_messages with the linear aggregator and mean combination: every propagated layer starts
  at zero, so the scores are layer 0's dot products / (L + 1)^2 (the pretrained model's ranking);
  the message weights still get gradients, and other attentions are refused."""
  ds = _dataset()
  c = _config("kgat_ax", identity_init=True, zero_messages=True, aggregator="linear",
              combine="mean", normalize_layers=False, layers=(8, 8), embed_dim=8,
              relation_dim=8, message_dropout=0.0)
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = model.init(jax.random.key(9), c.model, g)
  users, items = model.user_item_embeddings(params, g, c.model)
  node = np.asarray(params["node"])
  np.testing.assert_allclose(np.asarray(users), node[g.user_start:g.user_start + g.n_users] / 3,
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(items), node[:g.n_items] / 3, atol=1e-6)
  grads = jax.grad(model.cf_loss)(params, g, c.model, jnp.array([[0, 1, 2], [3, 0, 4]]),
                                  jax.random.key(0), 1e-5)
  assert float(jnp.abs(grads["layers"][0]["C"]).sum()) > 0   # the first message can grow
  assert float(jnp.abs(grads["layers"][1]["B"]).sum()) > 0   # and the second from e_r
  with pytest.raises(ValueError, match="zero_messages"):
    model.check_config(_config("kgat", zero_messages=True).model)


def test_symmetric_mean_propagation_is_lightgcn_without_kg():
  """Uniform attention with edge_norm=symmetric, the linear aggregator and the mean of the layers,
  on a CKG of interactions only, is LightGCN's propagation (kgax/models/lightgcn.py)."""
  base = _dataset()
  ds = dataclasses.replace(base, kg=np.zeros((0, 3), base.kg.dtype), aux=AuxFacts.empty())
  c = _config("no_aux", attention="mean", aggregator="linear", combine="mean",
              normalize_layers=False, edge_norm="symmetric", layers=(6, 6, 6))
  g = build_graph(ds, ds.interactions, GraphOptions(aux_edges=False, pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(4), c.model, g))
  users, items = model.user_item_embeddings(params, g, c.model)
  node = params["node"]
  want_u, want_i = lightgcn.propagate(node[g.user_start:g.user_start + g.n_users],
                                      node[:g.n_items], g, 3)
  np.testing.assert_allclose(np.asarray(users), np.asarray(want_u), rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(np.asarray(items), np.asarray(want_i), rtol=1e-9, atol=1e-12)
  c.model.edge_norm = "head"   # the softmax's 1 / deg(h) differs here
  assert not np.allclose(np.asarray(model.user_item_embeddings(params, g, c.model)[1]), want_i)


@pytest.mark.parametrize("aggregator", ["bi", "gcn", "graphsage"])
def test_identity_aggregator_starts_as_truncated_sum(aggregator):
  """identity_aggregator: each layer starts as LeakyReLU(e_h + e_agg) (graphsage: of e_h alone),
  cut to the layer's size; the reference with those weights agrees."""
  ds = _dataset()
  c = _config("kgat_ax", aggregator=aggregator, identity_aggregator=True)
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(8), c.model, g))
  x, agg = jax.random.normal(jax.random.key(0), (2, 4, 6), jnp.float64)
  got = np.asarray(model._aggregate(params["layers"][0], c.model, x, agg))
  pre = np.asarray(x if aggregator == "graphsage" else x + agg)[:, :5]
  np.testing.assert_allclose(got, _leaky(pre, c.model.leaky_slope), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(model.propagate(params, g, c.model))[:g.sink],
                             _reference(params, g, c.model)[:g.sink], rtol=1e-9, atol=1e-9)


def test_bad_switch_value_is_named():
  c = _config("kgat_ax", attention="dot")
  with pytest.raises(ValueError, match="config.model.attention='dot'"):
    model.check_config(c.model)
  c = _config("kgat_ax", node_dropout=1.0)
  with pytest.raises(ValueError, match="config.model.node_dropout=1.0: expected"):
    model.check_config(c.model)
  c = _config("kgat_ax", combine="sum")
  with pytest.raises(ValueError, match="config.model.combine='sum': expected"):
    model.check_config(c.model)
  c = _config("kgat_ax", aggregator="linear")   # layers (5, 3) with embed_dim 6
  with pytest.raises(ValueError, match=r"config.model.layers=\(5, 3\): the linear"):
    model.check_config(c.model)


def test_l2_on_layer0_regularises_the_node_rows():
  """l2_on=layer0: the L2 term is 0.5 * mean over the batch of |node row|^2 for the user, the
  positive and the negative (LightGCN), not of their final representations (KGAT's default)."""
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  batch = jnp.array([[0, 1, 2], [3, 0, 4], [5, 2, 1]])
  terms = {}
  for target in ("output", "layer0"):
    m = _config("kgat_ax", l2_on=target, message_dropout=0.0).model
    params = model.init(jax.random.key(10), m, g)
    loss = lambda l2: float(model.cf_loss(params, g, m, batch, jax.random.key(0), l2))
    terms[target] = loss(1.0) - loss(0.0)
  node = np.asarray(params["node"], np.float64)
  rows = (node[np.asarray(batch[:, 0]) + g.user_start], node[np.asarray(batch[:, 1])],
          node[np.asarray(batch[:, 2])])
  want = 0.5 * np.mean(sum((r * r).sum(-1) for r in rows))
  np.testing.assert_allclose(terms["layer0"], want, rtol=1e-4)
  users, items = model.user_item_embeddings(params, g, m)
  out = (np.asarray(users)[np.asarray(batch[:, 0])], np.asarray(items)[np.asarray(batch[:, 1])],
         np.asarray(items)[np.asarray(batch[:, 2])])
  np.testing.assert_allclose(terms["output"], 0.5 * np.mean(sum((r * r).sum(-1) for r in out)),
                             rtol=1e-4)
  assert abs(terms["output"] - terms["layer0"]) > 1e-3
  with pytest.raises(ValueError, match="l2_on"):
    model.check_config(_config("kgat_ax", l2_on="ego").model)


def test_graph_l2_regularises_the_kg_and_aux_rows():
  """graph_l2 adds graph_l2 * 0.5 * mean |row|^2 over the KG-entity and aux rows (neither users,
  items nor the sink), whose gradient then reaches every such row and no other."""
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  batch = jnp.array([[0, 1, 2], [3, 0, 4]])
  m0 = _config("kgat_ax", l2_on="layer0", message_dropout=0.0).model
  m1 = _config("kgat_ax", l2_on="layer0", message_dropout=0.0, graph_l2=0.3).model
  params = model.init(jax.random.key(11), m0, g)
  loss = lambda m, p: model.cf_loss(p, g, m, batch, jax.random.key(0), 1e-2)
  node = np.asarray(params["node"], np.float64)
  rows = np.r_[ds.n_items:ds.n_entities, g.aux_start:g.aux_start + ds.aux.n_nodes]
  want = 0.3 * 0.5 * np.mean((node[rows] ** 2).sum(-1))
  np.testing.assert_allclose(float(loss(m1, params) - loss(m0, params)), want, rtol=1e-5)
  extra = np.asarray(jax.grad(loss, argnums=1)(m1, params)["node"]
                     - jax.grad(loss, argnums=1)(m0, params)["node"])
  np.testing.assert_allclose(extra[rows], 0.3 * node[rows] / len(rows), rtol=1e-4, atol=1e-9)
  others = np.setdiff1d(np.arange(g.n_nodes), rows)
  np.testing.assert_allclose(extra[others], 0.0, atol=1e-9)
  with pytest.raises(ValueError, match="graph_l2"):
    model.check_config(_config("kgat_ax", graph_l2=-1.0).model)


@pytest.mark.parametrize("fusion", ["holographic", "concat"])
def test_fusion_l2_penalises_the_distance_from_the_identity_fusion(fusion):
  """fusion_l2 adds fusion_l2 * 0.5 * |W_f - W_identity|^2: nothing at the identity start, and
  the numpy value once W_f has moved."""
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  batch = jnp.array([[0, 1, 2], [3, 0, 4]])
  m0 = _config("kgat_ax", fusion=fusion, identity_init=True, message_dropout=0.0).model
  m1 = _config("kgat_ax", fusion=fusion, identity_init=True, message_dropout=0.0,
               fusion_l2=0.7).model
  params = model.init(jax.random.key(12), m0, g)
  extra = lambda p: float(model.cf_loss(p, g, m1, batch, jax.random.key(0), 1e-2)
                          - model.cf_loss(p, g, m0, batch, jax.random.key(0), 1e-2))
  assert abs(extra(params)) < 1e-7
  moved = dict(params, W_f=params["W_f"] + 0.1 * jax.random.normal(jax.random.key(3),
                                                                    params["W_f"].shape))
  neutral = np.eye(*params["W_f"].shape) if fusion == "concat" else 0.0
  want = 0.7 * 0.5 * np.sum((np.asarray(moved["W_f"], np.float64) - neutral) ** 2)
  np.testing.assert_allclose(extra(moved), want, rtol=1e-4)
  with pytest.raises(ValueError, match="fusion_l2"):
    model.check_config(_config("kgat_ax", fusion_l2=-0.1).model)


@pytest.mark.parametrize("start", ["identity_init", "zero_messages"])
def test_attention_l2_penalises_the_distance_from_the_neutral_attention(start):
  """attention_l2 adds attention_l2 * 0.5 * sum over layers of |W1 - W1_start|^2 + |w2|^2, where
  W1_start = [0 | 0 | I] (identity_init) or 0 (zero_messages): nothing at either start, the numpy
  value once the weights have moved, and a gradient on the attention weights only."""
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=16))
  batch = jnp.array([[0, 1, 2], [3, 0, 4]])
  flags = dict(identity_init=True, message_dropout=0.0, zero_messages=start == "zero_messages")
  m0 = _config("kgat_ax", **flags).model
  m1 = _config("kgat_ax", attention_l2=0.4, **flags).model
  params = model.init(jax.random.key(13), m0, g)
  loss = lambda m, p: model.cf_loss(p, g, m, batch, jax.random.key(0), 1e-2)
  assert abs(float(loss(m1, params) - loss(m0, params))) < 1e-7
  keys = iter(jax.random.split(jax.random.key(4), 4 * len(params["layers"])))
  moved = dict(params, layers=[
      {k: v + (0.1 * jax.random.normal(next(keys), v.shape) if k in ("A", "B", "C", "w2") else 0)
       for k, v in layer.items()} for layer in params["layers"]])
  want = 0.0
  for layer in moved["layers"]:
    a, b, c, w2 = (np.asarray(layer[k], np.float64) for k in ("A", "B", "C", "w2"))
    c_start = 0.0 if start == "zero_messages" else np.eye(*c.shape)
    want += (a ** 2).sum() + (b ** 2).sum() + ((c - c_start) ** 2).sum() + (w2 ** 2).sum()
  np.testing.assert_allclose(float(loss(m1, moved) - loss(m0, moved)), 0.4 * 0.5 * want,
                             rtol=1e-4)
  extra = jax.tree.map(lambda x, y: np.asarray(x - y), jax.grad(loss, argnums=1)(m1, moved),
                       jax.grad(loss, argnums=1)(m0, moved))
  np.testing.assert_allclose(extra["node"], 0.0, atol=1e-9)
  c0 = np.asarray(moved["layers"][0]["C"], np.float64)
  c_start = 0.0 if start == "zero_messages" else np.eye(*c0.shape)
  np.testing.assert_allclose(extra["layers"][0]["C"], 0.4 * (c0 - c_start), rtol=1e-3, atol=1e-6)
  with pytest.raises(ValueError, match="attention_l2"):
    model.check_config(_config("kgat_ax", attention_l2=-0.1).model)
  with pytest.raises(ValueError, match="attention_l2"):
    model.check_config(_config("kgat", attention_l2=0.1).model)
