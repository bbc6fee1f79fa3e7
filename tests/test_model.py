"""KGAT-AX forward pass against a brute-force numpy reference, for every variant and switch."""

import dataclasses
import pathlib

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from kgax import config as config_lib
from kgax import options
from kgax.data import AuxFacts, Dataset
from kgax.graph import GraphOptions, build_graph
from kgax.models import kgat as model

REPO = pathlib.Path(__file__).resolve().parents[1]
KGAT_AX = config_lib.load_module(str(REPO / "configs" / "kgat_ax.py"))
VARIANTS = tuple(KGAT_AX.VARIANTS)   # docs/model.md §2.5
ATTENTION_KEYS = ("A", "B", "C", "w2")


@pytest.fixture(autouse=True, scope="module")
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _opts(variant="kgat_ax", **kw):
  """The paper's layer (kgat.Options' defaults) for `variant`, at toy sizes."""
  fields = dict(embed_dim=6, relation_dim=6, layers=(5, 3), **KGAT_AX.VARIANTS[variant])
  fields.update(kw)
  return model.Options(**fields)


def _recommended(variant):
  """configs/kgat_ax.py for `variant` (LightGCN's layer, start.neutral), parsed, at toy sizes."""
  c = KGAT_AX.get_config(f"dataset=synthetic,variant={variant}")
  c.model.embed_dim = c.model.relation_dim = 6
  c.model.layers = (6, 6, 6)
  return options.parse(c)


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


def _graph(m=None):
  ds = _dataset()
  return build_graph(ds, ds.interactions,
                     GraphOptions(aux_edges=True if m is None else m.aux_edges, pad_to=16))


def _init(key, m, g):
  return jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(key), m, g))


def _naive_corr(a, b):
  d = a.shape[-1]
  return np.stack([sum(a[..., i] * b[..., (i + k) % d] for i in range(d)) for k in range(d)], -1)


def _leaky(x, s):
  return np.where(x > 0, x, s * x)


def _reference(params, g, m, scale=None, masks=None):
  """Dense, per-edge, loop-based forward pass written straight from docs/model.md §2.2-2.4.

  The messages of the (h, r, t) edges in `scale` are multiplied by their factor after the softmax
  (node dropout); masks[l] [N, d_l+1] zeroes layer l's output where False and scales the rest by
  1 / (1 - m.message_dropout) (message dropout).
  """
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
  for l, layer in enumerate(p["layers"]):
    d_in = x.shape[1]
    msgs, logits = [], []
    for h, r, t in zip(H, R, T):
      if m.attention in ("triple", "triple_tail"):
        W1 = np.concatenate([layer["A"], layer["B"], layer["C"]], 0)   # [2 d_in + k, d_in]
        msg = np.concatenate([x[h], p["relation"][r], x[t]]) @ W1
        logit = _leaky(layer["w2"] @ msg, m.leaky_slope)
        if m.attention == "triple_tail":   # the same weights, the tail's content as message
          msg = x[t] @ layer["C"]
      elif m.attention == "kgat":
        W = p["W_r"][r]
        msg = x[t]
        logit = (x0[t] @ W) @ np.tanh(x0[h] @ W + p["relation"][r])
      elif m.attention == "relation_mean":   # proportional to c(h, r)^-power once softmaxed
        msg, logit = x[t], -m.relation_power * np.log(np.sum((H == h) & (R == r)))
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
      keep = np.array([scale.get((h, R[k], T[k]), 1.0) for k in e])
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
    if masks is not None:
      x = np.where(masks[l], x / (1.0 - m.message_dropout), 0.0)
    outs.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
                if m.normalize_layers else x)
  if m.combine == "mean":
    return np.mean(outs, 0)
  return np.concatenate(outs, 1)


def _check_propagation(params, g, m):
  got = np.asarray(model.propagate(params, g, m))
  want = _reference(params, g, m)
  assert got.shape == want.shape
  np.testing.assert_allclose(got[:g.sink], want[:g.sink], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
def test_propagation_matches_reference(variant):
  m = _opts(variant)
  g = _graph(m)
  _check_propagation(_init(1, m, g), g, m)


@pytest.mark.parametrize("variant", VARIANTS)
def test_recommended_variants_match_reference(variant):
  """configs/kgat_ax.py's settings (linear aggregator, mean of layers, its start.neutral), once
  from the neutral start and once with every attention weight moved off it."""
  opts = _recommended(variant)
  m = opts.model
  assert (m.aggregator, m.combine, m.normalize_layers) == ("linear", "mean", False)
  assert opts.start.neutral == ("" if variant == "kgat" else "zero")
  g = _graph(m)
  params = _init(1, m, g)
  if opts.start.neutral:
    params = model.neutral_start(params, m, opts.start.neutral)
    # zero messages and the identity fusion: every propagated layer is 0, the score is layer 0's
    z = np.asarray(model.propagate(params, g, m))
    np.testing.assert_allclose(z[:g.sink], np.asarray(params["node"])[:g.sink] / 4, atol=1e-12)
  _check_propagation(params, g, m)
  keys = iter(jax.random.split(jax.random.key(5), 4 * len(params["layers"]) + 1))
  moved = dict(params, layers=[{k: v + 0.3 * jax.random.normal(next(keys), v.shape)
                                for k, v in layer.items()} for layer in params["layers"]])
  if "W_f" in params:
    moved["W_f"] = params["W_f"] + 0.3 * jax.random.normal(next(keys), params["W_f"].shape)
  _check_propagation(moved, g, m)


_SQUARE = dict(layers=(6, 6))   # the linear aggregator and the mean need layers of size d


@pytest.mark.parametrize("kw", [dict(aggregator="gcn"), dict(aggregator="graphsage"),
                                dict(fusion="hadamard"), dict(fusion="concat"),
                                dict(attention="mean"), dict(attention="kgat"),
                                dict(attention="relation_mean"),
                                dict(attention="relation_mean", relation_power=0.5),
                                dict(_SQUARE, aggregator="linear", combine="mean",
                                     normalize_layers=False, attention="relation_mean"),
                                dict(attention="triple_tail"), dict(normalize_layers=False),
                                dict(_SQUARE, aggregator="linear", normalize_layers=False),
                                dict(_SQUARE, aggregator="linear", combine="mean",
                                     normalize_layers=False),
                                dict(_SQUARE, aggregator="linear", combine="mean",
                                     normalize_layers=False, attention="kgat"),
                                dict(_SQUARE, aggregator="linear", combine="mean",
                                     normalize_layers=False, attention="triple_tail"),
                                dict(_SQUARE, aggregator="gcn", combine="mean"),
                                dict(leaky_slope=0.0)])
def test_switches_match_reference(kw):
  m = _opts(**kw)
  g = _graph(m)
  _check_propagation(_init(2, m, g), g, m)


def test_every_table_entry_is_tested():
  """The tables of attentions, aggregators and fusions hold the choices checked above."""
  assert set(model.ATTENTIONS) == {"triple", "triple_tail", "kgat", "mean",
                                   "relation_mean"}
  assert set(model.AGGREGATORS) == {"bi", "gcn", "graphsage", "linear"}
  assert set(model.FUSIONS) == {"holographic", "hadamard", "concat", "none"}


def test_losses_against_reference():
  m = _opts()
  g = _graph(m)
  params = _init(3, m, g)
  p = jax.tree.map(np.asarray, params)
  # TransR: softplus(g(h,r,t) - g(h,r,t')) + l2/2 * mean squared norms.
  kb = np.array([[0, 1, 6, 3], [g.user_start, 0, 2, 4]])
  got = float(model.kg_loss(params, g, m, jnp.asarray(kb), 0.1))
  terms, regs = [], []
  for h, r, t, tn in kb:
    W, e, rel = p["W_r"][r], p["node"], p["relation"][r]
    gp = np.sum((e[h] @ W + rel - e[t] @ W) ** 2)
    gn = np.sum((e[h] @ W + rel - e[tn] @ W) ** 2)
    terms.append(np.log1p(np.exp(gp - gn)))
    regs.append(0.5 * sum(np.sum(v ** 2) for v in (e[h] @ W, rel, e[t] @ W, e[tn] @ W)))
  np.testing.assert_allclose(got, np.mean(terms) + 0.1 * np.mean(regs), rtol=1e-9)
  # TransE (kge=transe): the same loss on the unprojected rows; W_r gets no gradient.
  mt = dataclasses.replace(m, kge="transe", relation_dim=m.embed_dim)
  pt = _init(3, mt, g)
  got = float(model.kg_loss(pt, g, mt, jnp.asarray(kb), 0.1))
  e, rels = np.asarray(pt["node"]), np.asarray(pt["relation"])
  terms, regs = [], []
  for h, r, t, tn in kb:
    gp, gn = (np.sum((e[h] + rels[r] - e[v]) ** 2) for v in (t, tn))
    terms.append(np.log1p(np.exp(gp - gn)))
    regs.append(0.5 * sum(np.sum(v ** 2) for v in (e[h], rels[r], e[t], e[tn])))
  np.testing.assert_allclose(got, np.mean(terms) + 0.1 * np.mean(regs), rtol=1e-9)
  grads = jax.grad(model.kg_loss)(pt, g, mt, jnp.asarray(kb), 0.1)
  assert not np.any(np.asarray(grads["W_r"])) and np.any(np.asarray(grads["node"]))
  with pytest.raises(ValueError, match="relation_dim"):
    dataclasses.replace(m, kge="transe", relation_dim=m.embed_dim + 1)
  # BPR on the concatenated representations (no dropout: the pass is deterministic).
  m = dataclasses.replace(m, message_dropout=0.0)
  z = _reference(params, g, m)
  batch = np.array([[0, 1, 2], [3, 0, 4]])
  got = float(model.cf_loss(params, g, m, jnp.asarray(batch), jax.random.key(0), 0.01))
  u, i, j = z[g.user_start + batch[:, 0]], z[batch[:, 1]], z[batch[:, 2]]
  bpr = np.mean(np.log1p(np.exp(-(np.sum(u * i, 1) - np.sum(u * j, 1)))))
  reg = 0.5 * np.mean(np.sum(u * u, 1) + np.sum(i * i, 1) + np.sum(j * j, 1))
  np.testing.assert_allclose(got, bpr + 0.01 * reg, rtol=1e-9)


def test_node_dropout_matches_reference():
  """node_dropout: one Bernoulli mask over the edges for the whole pass, kept messages scaled by
  1 / (1 - p) after the softmax; the evaluation pass (rng None) is unaffected."""
  p_drop = 0.4
  m = _opts(message_dropout=0.0, node_dropout=p_drop)
  g = _graph(m)
  params = _init(6, m, g)
  z, pis = model.propagate(params, g, m, rng=jax.random.key(3), return_attention=True)
  _, pis0 = model.propagate(params, g, m, return_attention=True)
  real = np.asarray(g.weights) > 0
  kept = np.asarray(pis)[0][real] > 0
  assert 0 < (~kept).sum() < kept.size                     # some dropped, some kept
  for layer in range(len(m.layers)):                       # the same mask in every layer
    np.testing.assert_array_equal(np.asarray(pis)[layer][real] > 0, kept)
  edges = zip(*(np.asarray(a)[real] for a in (g.heads, g.relations, g.tails)))
  up = float(np.float32(1) / np.float32(1 - p_drop))     # the graph's weights are float32
  scale = {e: (up if k else 0.0) for e, k in zip(edges, kept)}
  np.testing.assert_allclose(np.asarray(z)[:g.sink],
                             _reference(params, g, m, scale=scale)[:g.sink],
                             rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(np.asarray(pis)[0][real][kept],     # first layer: same inputs
                             np.asarray(pis0)[0][real][kept] * up, rtol=1e-12)
  _check_propagation(params, g, m)


def test_message_dropout_matches_reference():
  """message_dropout: each layer's output entries dropped with probability p by a mask drawn
  from fold_in(rng, layer), the rest scaled by 1 / (1 - p), before the layer's normalisation;
  the evaluation pass (rng None) is unaffected."""
  p_drop = 0.3
  m = _opts(message_dropout=p_drop)
  g = _graph(m)
  params = _init(7, m, g)
  rng = jax.random.key(11)
  masks = [np.asarray(jax.random.bernoulli(jax.random.fold_in(rng, l), 1.0 - p_drop,
                                           (g.n_nodes, size)))
           for l, size in enumerate(m.layers)]
  for mask in masks:
    assert 0.1 < 1.0 - mask.mean() < 0.5                   # about p of the entries dropped
  got = np.asarray(model.propagate(params, g, m, rng=rng))
  want = _reference(params, g, m, masks=masks)
  np.testing.assert_allclose(got[:g.sink], want[:g.sink], rtol=1e-9, atol=1e-9)
  plain = _reference(params, g, m)
  assert np.abs(got[:g.sink] - plain[:g.sink]).max() > 1e-3   # the masks mattered
  _check_propagation(params, g, m)


def test_gradients_flow_through_attention():
  m = _opts()
  g = _graph(m)
  params = model.init(jax.random.key(4), m, g)
  batch = jnp.array([[0, 1, 2], [3, 0, 4]])
  grads = jax.grad(model.cf_loss)(params, g, m, batch, jax.random.key(0), 1e-5)
  for layer in grads["layers"]:
    assert float(jnp.abs(layer["w2"]).sum()) > 0   # attention is part of the forward pass
    assert float(jnp.abs(layer["A"]).sum()) > 0
  assert float(jnp.abs(grads["W_f"]).sum()) > 0
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grads))


@pytest.mark.parametrize("fusion,attention", [("holographic", "triple"), ("hadamard", "triple"),
                                              ("concat", "triple"), ("none", "triple"),
                                              ("holographic", "triple_tail")])
@pytest.mark.parametrize("kind", ["mean", "zero"])
def test_neutral_start_sets_the_identity_init_parameters(fusion, attention, kind):
  """neutral_start after init: W_f = 0 (concat: [I; 0]); every layer's A, B and w2 are 0 and C is
  the identity ("mean") or 0 ("zero"); every other parameter is init's, and `params` is kept."""
  m = _opts(fusion=fusion, attention=attention)
  g = _graph(m)
  params = model.init(jax.random.key(8), m, g)
  before = jax.tree.map(np.array, params)
  got = model.neutral_start(params, m, kind)
  assert jax.tree.structure(got) == jax.tree.structure(params)
  if fusion == "none":
    assert "W_f" not in got
  else:
    d = m.embed_dim
    want = np.eye(2 * d, d) if fusion == "concat" else np.zeros((d, d))
    np.testing.assert_array_equal(np.asarray(got["W_f"]), want)
    assert got["W_f"].dtype == params["W_f"].dtype
  for d_in, layer, old in zip((m.embed_dim, *m.layers), got["layers"], before["layers"]):
    for k in ("A", "B", "w2"):
      np.testing.assert_array_equal(np.asarray(layer[k]), np.zeros_like(old[k]))
    c = np.eye(d_in) if kind == "mean" else np.zeros((d_in, d_in))
    np.testing.assert_array_equal(np.asarray(layer["C"]), c)
    for k in set(layer) - set(ATTENTION_KEYS):   # the aggregator's weights
      np.testing.assert_array_equal(np.asarray(layer[k]), old[k])
  for k in ("node", "relation", "W_r"):
    np.testing.assert_array_equal(np.asarray(got[k]), before[k])
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), before)


@pytest.mark.parametrize("attention", ["kgat", "mean"])
def test_neutral_start_without_attention_weights_only_sets_the_fusion(attention):
  m = _opts(attention=attention)
  g = _graph(m)
  params = model.init(jax.random.key(8), m, g)
  assert not any(k in layer for layer in params["layers"] for k in ATTENTION_KEYS)
  for kind in ("mean", "zero"):
    got = model.neutral_start(params, m, kind)
    np.testing.assert_array_equal(np.asarray(got["W_f"]), 0.0)
    jax.tree.map(np.testing.assert_array_equal, got["layers"], params["layers"])


def test_mean_start_is_the_mean_aggregator():
  """neutral_start "mean": W1 = [0 | 0 | I] and w2 = 0, so at step 0 the triple attention is the
  mean aggregator over e_t (same node, relation and aggregator weights); it still learns from
  there, and the fusion starts as e_v' = e_v."""
  m = _opts()
  g = _graph(m)
  xavier = _init(6, m, g)
  params = model.neutral_start(xavier, m, "mean")
  shared = {k: v for k, v in params.items() if k not in ("layers", "W_f")}
  shared["layers"] = [{k: v for k, v in layer.items() if k not in ATTENTION_KEYS}
                      for layer in params["layers"]]
  got = np.asarray(model.propagate(params, g, m))[:g.sink]
  np.testing.assert_allclose(got, _reference(shared, g, _opts(attention="mean", fusion="none"))
                             [:g.sink], rtol=1e-9, atol=1e-9)
  assert np.abs(np.asarray(model.propagate(xavier, g, m))[:g.sink] - got).max() > 1e-3
  grads = jax.grad(model.cf_loss)(params, g, m, jnp.array([[0, 1, 2], [3, 0, 4]]),
                                  jax.random.key(0), 1e-5)
  assert all(float(jnp.abs(layer[k]).sum()) > 0 for layer in grads["layers"] for k in ("A", "w2"))
  assert float(jnp.abs(grads["W_f"]).sum()) > 0
  for fusion in ("holographic", "hadamard", "concat"):   # the fusion starts as e_v' = e_v
    mf = _opts(fusion=fusion)
    p = model.neutral_start(model.init(jax.random.key(7), mf, g), mf, "mean")
    np.testing.assert_allclose(np.asarray(model.fuse(p, g, mf, p["node"])), np.asarray(p["node"]),
                               atol=1e-12)
    moved = dict(p, W_f=p["W_f"] + 0.1)
    assert np.abs(np.asarray(model.fuse(moved, g, mf, p["node"]) - p["node"])).max() > 1e-3


def test_zero_start_is_the_layer0_model():
  """neutral_start "zero" with the linear aggregator and mean combination: every propagated layer
  starts at zero, so the scores are layer 0's dot products / (L + 1)^2 (the pretrained model's
  ranking); the message weights still get gradients."""
  m = _opts(aggregator="linear", combine="mean", normalize_layers=False, layers=(8, 8),
            embed_dim=8, relation_dim=8, message_dropout=0.0)
  g = _graph(m)
  params = model.neutral_start(model.init(jax.random.key(9), m, g), m, "zero")
  users, items = model.user_item_embeddings(params, g, m)
  node = np.asarray(params["node"])
  np.testing.assert_allclose(np.asarray(users), node[g.user_start:g.user_start + g.n_users] / 3,
                             atol=1e-12)
  np.testing.assert_allclose(np.asarray(items), node[:g.n_items] / 3, atol=1e-12)
  grads = jax.grad(model.cf_loss)(params, g, m, jnp.array([[0, 1, 2], [3, 0, 4]]),
                                  jax.random.key(0), 1e-5)
  assert float(jnp.abs(grads["layers"][0]["C"]).sum()) > 0   # the first message can grow
  assert float(jnp.abs(grads["layers"][1]["B"]).sum()) > 0   # and the second from e_r
  mean = model.neutral_start(model.init(jax.random.key(9), m, g), m, "mean")
  assert np.abs(np.asarray(model.user_item_embeddings(mean, g, m)[1]) - node[:g.n_items] / 3
                ).max() > 1e-3   # the mean start does propagate


@pytest.mark.parametrize("fusion", ["holographic", "concat"])
def test_fusion_l2_penalises_the_distance_from_the_identity_fusion(fusion):
  """fusion_l2 adds fusion_l2 * 0.5 * |W_f - W_identity|^2: nothing at the neutral start, and
  the numpy value once W_f has moved."""
  g = _graph()
  batch = jnp.array([[0, 1, 2], [3, 0, 4]])
  m0 = _opts(fusion=fusion, message_dropout=0.0)
  m1 = _opts(fusion=fusion, message_dropout=0.0, fusion_l2=0.7)
  params = model.neutral_start(model.init(jax.random.key(12), m0, g), m0, "mean")
  extra = lambda p: float(model.cf_loss(p, g, m1, batch, jax.random.key(0), 1e-2)
                          - model.cf_loss(p, g, m0, batch, jax.random.key(0), 1e-2))
  assert abs(extra(params)) < 1e-12
  moved = dict(params, W_f=params["W_f"] + 0.1 * jax.random.normal(jax.random.key(3),
                                                                    params["W_f"].shape))
  neutral = np.eye(*params["W_f"].shape) if fusion == "concat" else 0.0
  want = 0.7 * 0.5 * np.sum((np.asarray(moved["W_f"], np.float64) - neutral) ** 2)
  np.testing.assert_allclose(extra(moved), want, rtol=1e-9)
  grad = jax.grad(lambda p: model.cf_loss(p, g, m1, batch, jax.random.key(0), 1e-2)
                  - model.cf_loss(p, g, m0, batch, jax.random.key(0), 1e-2))(moved)
  np.testing.assert_allclose(np.asarray(grad["W_f"]), 0.7 * (np.asarray(moved["W_f"]) - neutral),
                             rtol=1e-6, atol=1e-12)
  np.testing.assert_allclose(np.asarray(grad["node"]), 0.0, atol=1e-12)


@pytest.mark.parametrize("fields,match", [
    (dict(attention="dot"), "config.model.attention='dot': expected one of"),
    (dict(aggregator="sum"), "config.model.aggregator='sum': expected one of"),
    (dict(fusion="outer"), "config.model.fusion='outer': expected one of"),
    (dict(combine="sum"), "config.model.combine='sum': expected one of"),
    (dict(node_dropout=1.0), "config.model.node_dropout=1.0: expected"),
    (dict(message_dropout=-0.1), "config.model.message_dropout=-0.1: expected"),
    (dict(fusion_l2=-0.1), "config.model.fusion_l2=-0.1: expected"),
    (dict(leaky_slope=-0.2), "config.model.leaky_slope=-0.2: expected"),
    (dict(layers=()), r"config.model.layers=\(\)"),
    (dict(layers=(5, 0)), r"config.model.layers=\(5, 0\)"),
    (dict(embed_dim=0), "config.model.embed_dim=0"),
    (dict(relation_dim=-1), "config.model.relation_dim=-1"),
    (dict(aggregator="linear"), r"config.model.layers=\(5, 3\): the linear"),
    (dict(combine="mean"), r"config.model.layers=\(5, 3\): the linear"),
])
def test_bad_option_is_named(fields, match):
  with pytest.raises(ValueError, match=match):
    _opts(**fields)
  c = options.default_config("kgat")   # the same message through options.parse
  c.model.update(dict(embed_dim=6, relation_dim=6, layers=(5, 3)))
  c.model.update(fields)
  with pytest.raises(options.ConfigError, match=match):
    options.parse(c)


@pytest.mark.parametrize("field", ["drop_target_edges", "identity_aggregator", "graph_l2",
                                   "attention_l2", "edge_norm", "l2_on", "identity_init",
                                   "zero_messages", "variant"])
def test_retired_fields_are_refused(field):
  assert field not in {f.name for f in dataclasses.fields(model.Options)}
  c = options.default_config("kgat")
  c.model[field] = 1.0
  with pytest.raises(options.ConfigError, match=f"^config.model.{field}: no such field"):
    options.parse(c)


def test_relation_mean_gives_each_relation_an_equal_share():
  """relation_mean's weights, brute force per head: each of a head's relations carries 1 / R_h of
  its message, split evenly among that relation's edges, whatever the edge counts; at
  relation_power 0.5 a relation's share is proportional to the square root of its count, at 0
  every edge weighs the same (mean)."""
  g = _graph()
  pi = g.head_softmax(model.relation_mean_logits(g)) * g.weights
  half = np.asarray(g.head_softmax(model.relation_mean_logits(g, 0.5)) * g.weights)
  plain = np.asarray(g.head_softmax(model.relation_mean_logits(g, 0.0)) * g.weights)
  pi, real = np.asarray(pi), np.asarray(g.weights) > 0
  H, R = np.asarray(g.heads), np.asarray(g.relations)
  checked = 0
  for h in np.unique(H[real]):
    rels = np.unique(R[real & (H == h)])
    for r in rels:
      e = real & (H == h) & (R == r)
      np.testing.assert_allclose(pi[e], 1.0 / (len(rels) * e.sum()), rtol=1e-6)
      np.testing.assert_allclose(plain[e], 1.0 / (real & (H == h)).sum(), rtol=1e-6)   # mean
      shares = [np.sqrt((real & (H == h) & (R == q)).sum()) for q in rels]   # c^(1 - 0.5)
      np.testing.assert_allclose(half[e].sum(), np.sqrt(e.sum()) / np.sum(shares), rtol=1e-6)
      checked += len(rels) > 1 and e.sum() > 1
  assert checked > 0   # some head mixes relations of different counts
