"""KGAT-AX and KGAT as pure functions over a parameter pytree (SPEC section 2).

One code path serves every variant of SPEC 2.5: the switches live in `config.model`
(attention, aggregator, fusion, aux_edges, use_kge, attend_users, attend_items).

Shapes: N nodes (graph.n_nodes), R relations, E edges, d = embed_dim, k = relation_dim,
layer l maps d_l -> d_{l+1} with d_0 = d.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kgax import ops
from kgax.graph import Graph, find_edges

ATTENTIONS = ("triple", "kgat", "mean")
AGGREGATORS = ("bi", "gcn", "graphsage", "linear")
FUSIONS = ("holographic", "hadamard", "concat", "none")
COMBINES = ("concat", "mean")
L2_TARGETS = ("output", "layer0")
EDGE_NORMS = ("head", "symmetric")

_glorot = jax.nn.initializers.glorot_uniform()


def check_config(m: ml_collections.ConfigDict) -> None:
  """Rejects unknown switch values with a one-line error naming the field."""
  for field, allowed in (("attention", ATTENTIONS), ("aggregator", AGGREGATORS),
                         ("fusion", FUSIONS), ("combine", COMBINES), ("l2_on", L2_TARGETS),
                         ("edge_norm", EDGE_NORMS)):
    if m.get(field, allowed[0]) not in allowed:
      raise ValueError(f"config.model.{field}={m[field]!r}: expected one of {allowed}")
  if not m.layers or any(int(s) <= 0 for s in m.layers):
    raise ValueError(f"config.model.layers={m.layers!r}: expected positive layer sizes")
  if ((m.aggregator == "linear" or m.get("combine", "concat") == "mean")
      and any(int(s) != m.embed_dim for s in m.layers)):
    raise ValueError(f"config.model.layers={m.layers!r}: the linear aggregator and the mean "
                     f"combination need every layer of size embed_dim={m.embed_dim}")
  if m.get("zero_messages", False) and m.attention != "triple":
    raise ValueError(f"config.model.zero_messages=True needs attention='triple' (W1 to zero), "
                     f"not {m.attention!r}")
  if m.get("attention_l2", 0.0) > 0 and m.attention != "triple":
    raise ValueError(f"config.model.attention_l2={m.attention_l2} needs attention='triple' "
                     f"(the weights it penalises), not {m.attention!r}")
  for field in ("graph_l2", "fusion_l2", "attention_l2"):
    if m.get(field, 0.0) < 0:
      raise ValueError(f"config.model.{field}={m[field]}: expected >= 0")
  for field in ("message_dropout", "node_dropout"):
    if not 0.0 <= m.get(field, 0.0) < 1.0:
      raise ValueError(f"config.model.{field}={m[field]}: expected [0, 1)")


def init(key: jax.Array, m: ml_collections.ConfigDict, graph: Graph) -> dict:
  """Xavier-initialised parameters."""
  check_config(m)
  d, k = m.embed_dim, m.relation_dim
  keys = iter(jax.random.split(key, 8 + 8 * len(m.layers)))
  params = {
      "node": _glorot(next(keys), (graph.n_nodes, d)),
      "relation": _glorot(next(keys), (graph.n_relations, k)),
      "W_r": _glorot(next(keys), (graph.n_relations, d, k)),
  }
  if m.fusion in ("holographic", "hadamard"):
    params["W_f"] = _glorot(next(keys), (d, d))
  elif m.fusion == "concat":
    params["W_f"] = _glorot(next(keys), (2 * d, d))
  if "W_f" in params and m.get("identity_init", False):   # fusion starts as e_v' = e_v
    params["W_f"] = neutral_fusion(params["W_f"], m)
  layers = []
  sizes = (d, *m.layers)
  for d_in, d_out in zip(sizes[:-1], sizes[1:]):
    layer = {}
    if m.attention == "triple":   # W1 = [A | B | C] acting on [e_h || e_r || e_t] (eq. 4)
      layer.update(A=_glorot(next(keys), (d_in, d_in)), B=_glorot(next(keys), (k, d_in)),
                   C=_glorot(next(keys), (d_in, d_in)),
                   w2=_glorot(next(keys), (d_in, 1))[:, 0])
      if m.get("identity_init", False) or m.get("zero_messages", False):
        layer.update(neutral_attention(layer, m))
    if m.aggregator == "bi":
      layer.update(Wa=_glorot(next(keys), (d_in, d_out)), ba=jnp.zeros(d_out),
                   Wb=_glorot(next(keys), (d_in, d_out)), bb=jnp.zeros(d_out))
    elif m.aggregator == "gcn":
      layer.update(Wa=_glorot(next(keys), (d_in, d_out)), ba=jnp.zeros(d_out))
    elif m.aggregator == "graphsage":
      layer.update(Wa=_glorot(next(keys), (2 * d_in, d_out)), ba=jnp.zeros(d_out))
    if m.get("identity_aggregator", False) and "Wa" in layer:
      # e(l+1) starts as LeakyReLU(e_h + e_agg), truncated to the layer size
      layer["Wa"] = jnp.eye(*layer["Wa"].shape)
      if "Wb" in layer:
        layer["Wb"] = jnp.zeros_like(layer["Wb"])
    layers.append(layer)
  params["layers"] = layers
  return params


def neutral_fusion(w_f: jax.Array, m) -> jax.Array:
  """W_f of the identity fusion e_v' = e_v: 0, or [I; 0] for the concat fusion."""
  d = w_f.shape[1]
  return jnp.eye(2 * d, d, dtype=w_f.dtype) if m.fusion == "concat" else jnp.zeros_like(w_f)


def neutral_attention(layer: dict, m) -> dict:
  """The triple attention's neutral start for `layer`: the mean aggregator (W1 = [0 | 0 | I],
  w2 = 0: message e_t, uniform pi), or with m.zero_messages no message at all (W1 = 0, w2 = 0)."""
  start = {name: jnp.zeros_like(layer[name]) for name in ("A", "B", "C", "w2")}
  if not m.get("zero_messages", False):
    start["C"] = jnp.eye(*layer["C"].shape, dtype=layer["C"].dtype)
  return start


def fuse(params: dict, graph: Graph, m, x: jax.Array) -> jax.Array:
  """Holographic fusion of aux facts into layer-0 embeddings (SPEC 2.2).

  s_v = sum_a w~_{v,a} x_a;  e_v' = e_v + W_f (e_v * s_v) for nodes with aux facts.
  Computed on the rows of the facts' owners only (graph.aux_owners), which are few next to all
  nodes (2,626 of 35,778 on ml-100k-kg with its aux facts); the other rows pass through.
  """
  if m.fusion == "none" or graph.n_aux == 0:
    return x
  owners, index = graph.aux_owners, graph.aux_owner_index
  n = owners.shape[0]
  s = ops.segment_sum(graph.aux_weight[:, None] * x[graph.aux_node], index, n,
                      indices_are_sorted=True)
  has_aux = ops.segment_sum(graph.aux_weight, index, n, indices_are_sorted=True) > 0
  e = x[owners]
  if m.fusion == "holographic":
    delta = ops.circular_correlation(e, s) @ params["W_f"]
  elif m.fusion == "hadamard":
    delta = (e * s) @ params["W_f"]
  else:   # concat: W [e_v || s_v] replaces e_v
    delta = jnp.concatenate([e, s], -1) @ params["W_f"] - e
  return x.at[owners].add(jnp.where(has_aux[:, None], delta, 0.0), indices_are_sorted=True,
                          unique_indices=True)


def _per_relation(rows: jax.Array, w: jax.Array, sizes, *, transpose: bool = False,
                  bias: jax.Array | None = None) -> jax.Array:
  """rows [P, a] grouped by relation (sizes[r] rows each) times w[r] (or w[r]^T), plus bias[r]
  when given: [P, b].

  One matmul per relation block; the blocks come from `jnp.split`, whose gradient is a
  concatenation (slicing would pad every block's gradient to the full size).
  """
  bounds = [int(b) for b in np.cumsum(sizes)[:-1]]
  return jnp.concatenate([part @ (w[r].T if transpose else w[r]) + (0 if bias is None else bias[r])
                          for r, part in enumerate(jnp.split(rows, bounds)) if sizes[r]])


def kgat_logits(params: dict, graph: Graph, x: jax.Array) -> jax.Array:
  """KGAT's attention: (W_r e_t)^T tanh(W_r e_h + e_r), per edge [E].

  Written as e_t . u(h, r) with u(h, r) = W_r tanh(W_r e_h + e_r) (row-vector convention
  x W_r), which depends on the edge only through its (head, relation) pair: u is computed once
  per distinct pair (e.g. once per user for all of its interactions), and per edge there remain
  two gathers and a dot product.
  """
  w, sizes = params["W_r"], graph.head_pair_sizes
  query = jnp.tanh(_per_relation(x[graph.head_pair_nodes], w, sizes, bias=params["relation"]))
  u = _per_relation(query, w, sizes, transpose=True)
  return jnp.sum(x[graph.tails] * u[graph.head_pair_index], -1)


def _uniform_mask(graph: Graph, m) -> jax.Array | None:
  """Edges whose attention is replaced by uniform weights (no_Att_eu / no_Att_ei)."""
  mask = None
  if not m.attend_users:
    mask = (graph.heads >= graph.user_start) & (graph.heads < graph.user_start + graph.n_users)
  if not m.attend_items:
    items = graph.heads < graph.n_items
    mask = items if mask is None else mask | items
  return mask


def symmetric_factor(graph: Graph, dtype=jnp.float32) -> jax.Array:
  """sqrt(deg(h) / deg(t)) per edge [E], degrees counting the graph's real edges (node dropout
  and dropped target edges do not change them).

  Times a softmax over the head's edges, uniform weights 1 / deg(h) become LightGCN's
  1 / sqrt(deg(h) deg(t)); learned weights are rescaled the same way. Every CKG edge has its
  inverse, so a node's out-degree is also its in-degree.
  """
  deg = ops.segment_sum((graph.weights > 0).astype(dtype), graph.heads, graph.n_nodes,
                        indices_are_sorted=True)
  deg = jnp.maximum(deg, 1.0)
  return jnp.sqrt(deg[graph.heads] / deg[graph.tails])


def _aggregate(layer: dict, m, x: jax.Array, agg: jax.Array) -> jax.Array:
  if m.aggregator == "linear":   # LightGCN's: the next layer is the attentive neighbour sum
    return agg
  act = lambda v: jax.nn.leaky_relu(v, m.leaky_slope)
  if m.aggregator == "bi":
    return act((x + agg) @ layer["Wa"] + layer["ba"]) + act((x * agg) @ layer["Wb"] + layer["bb"])
  if m.aggregator == "gcn":
    return act((x + agg) @ layer["Wa"] + layer["ba"])
  return act(jnp.concatenate([x, agg], -1) @ layer["Wa"] + layer["ba"])


def propagate(params: dict, graph: Graph, m, *, rng: jax.Array | None = None,
              return_attention: bool = False, drop_edges: jax.Array | None = None):
  """All node representations e* = e(0) || ... || e(L): [N, d + sum(layers)] (KGAT's
  concatenation; with m.combine == "mean", LightGCN's mean of the layers: [N, d]).

  `rng` enables message dropout and node dropout (training); None is the deterministic
  evaluation pass. With `return_attention`, also returns the attention weights pi of every
  layer: [L, E]. `drop_edges` [M]: edge indices whose messages are removed (weight 0 after the
  softmax).

  Node dropout is KGAT's: each edge of the attentive adjacency is dropped with probability
  m.node_dropout for the whole forward pass (all layers) and the kept ones are scaled by
  1 / (1 - p), after the softmax, so a node's expected message is unchanged.
  """
  n, heads, tails = graph.n_nodes, graph.heads, graph.tails
  weights = graph.weights if drop_edges is None else graph.weights.at[drop_edges].set(0.0)
  node_dropout = m.get("node_dropout", 0.0)
  if rng is not None and node_dropout > 0:
    rng, edge_rng = jax.random.split(rng)
    keep = jax.random.bernoulli(edge_rng, 1.0 - node_dropout, heads.shape)
    weights = jnp.where(keep, weights / (1.0 - node_dropout), 0.0)
  x = fuse(params, graph, m, params["node"])
  outs = [x]
  uniform = _uniform_mask(graph, m)
  rescale = (symmetric_factor(graph, x.dtype) if m.get("edge_norm", "head") == "symmetric"
             else None)
  logits = kgat_logits(params, graph, x) if m.attention == "kgat" else None
  pis = []
  for l, layer in enumerate(params["layers"]):
    if m.attention == "triple":
      # m(h,r,t) = A e_h + B e_r + C e_t (eq. 4): A e_h and C e_t once per node, B e_r per relation,
      # so no [E, 3d] tensor is formed. The logit w2 . m splits the same way (eq. 5).
      ah, ct, br = x @ layer["A"], x @ layer["C"], params["relation"] @ layer["B"]
      w2 = layer["w2"]
      logit = jax.nn.leaky_relu((ah @ w2)[heads] + ops.take_few(br @ w2, graph.relations)
                                + (ct @ w2)[tails], m.leaky_slope)
    elif m.attention == "kgat":
      logit = logits
    else:
      logit = jnp.zeros(heads.shape, x.dtype)
    if uniform is not None:
      logit = jnp.where(uniform, 0.0, logit)
    pi = ops.segment_softmax(logit, heads, n, indices_are_sorted=True) * weights  # eq. 6
    if rescale is not None:
      pi = pi * rescale
    pis.append(pi)
    if m.attention == "triple":
      # e_agg(h) = sum_e pi_e (A e_h + B e_r + C e_t)  (eq. 3)
      r_all = graph.n_relations
      mass = ops.segment_sum(pi, heads, n, indices_are_sorted=True)
      per_rel = ops.segment_sum(pi, heads * r_all + graph.relations, n * r_all,
                                indices_are_sorted=True).reshape(n, r_all)
      agg = (ah * mass[:, None] + per_rel @ br
             + ops.weighted_spmm(pi, ct, heads, tails, graph.tail_order))
    else:
      agg = ops.weighted_spmm(pi, x, heads, tails, graph.tail_order)
    x = _aggregate(layer, m, x, agg)
    if rng is not None and m.message_dropout > 0:
      keep = jax.random.bernoulli(jax.random.fold_in(rng, l), 1.0 - m.message_dropout, x.shape)
      x = jnp.where(keep, x / (1.0 - m.message_dropout), 0.0)
    outs.append(ops.l2_normalize(x) if m.get("normalize_layers", True) else x)
  z = (jnp.concatenate(outs, -1) if m.get("combine", "concat") == "concat"
       else sum(outs) / len(outs))
  return (z, jnp.stack(pis)) if return_attention else z


def user_item_embeddings(params, graph: Graph, m, *, rng=None, drop_edges=None
                         ) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, D], items [n_items, D]) final representations; score = dot product."""
  z = propagate(params, graph, m, rng=rng, drop_edges=drop_edges)
  return z[graph.user_start:graph.user_start + graph.n_users], z[:graph.n_items]


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR loss (eq. 8-9) on a batch [B, 3] of (user, pos item, neg item) + L2 of the batch: of
  its final representations (KGAT), or with m.l2_on="layer0" of its node-table rows (LightGCN).

  With m.drop_target_edges the propagation runs without the batch's own interaction edges
  (user -> item and item -> user), so that no score sees the edge it is trained to predict.
  m.graph_l2 > 0 adds m.graph_l2 * 0.5 * the mean |row|^2 over the node table's rows that are
  neither users nor items (KG entities and aux nodes), which no batch term reaches with
  l2_on="layer0"; m.fusion_l2 > 0 adds m.fusion_l2 * 0.5 * |W_f - W_identity|^2, and
  m.attention_l2 > 0 adds m.attention_l2 * 0.5 * the triple attention's squared distance from its
  neutral start (`attention_sq_distance`).
  """
  drop = None
  if m.get("drop_target_edges", False):
    u_nodes, pos = graph.user_nodes(batch[:, 0]), batch[:, 1]
    zeros = jnp.zeros_like(pos)
    drop = jnp.concatenate([find_edges(graph, u_nodes, zeros, pos),
                            find_edges(graph, pos, zeros + graph.n_fwd_relations, u_nodes)])
  users, items = user_item_embeddings(params, graph, m, rng=rng, drop_edges=drop)
  u, i, j = users[batch[:, 0]], items[batch[:, 1]], items[batch[:, 2]]
  diff = jnp.sum(u * i, -1) - jnp.sum(u * j, -1)
  if m.get("l2_on", "output") == "layer0":   # LightGCN: the batch's own rows of the node table
    node = params["node"]
    u, i, j = node[graph.user_nodes(batch[:, 0])], node[batch[:, 1]], node[batch[:, 2]]
  reg = 0.5 * jnp.mean(jnp.sum(u * u, -1) + jnp.sum(i * i, -1) + jnp.sum(j * j, -1))
  loss = jnp.mean(jax.nn.softplus(-diff)) + l2 * reg
  if m.get("graph_l2", 0.0) > 0:
    loss = loss + m.graph_l2 * 0.5 * graph_row_sq_norm(params["node"], graph)
  if m.get("fusion_l2", 0.0) > 0 and "W_f" in params:
    loss = loss + m.fusion_l2 * 0.5 * fusion_sq_distance(params["W_f"], m)
  if m.get("attention_l2", 0.0) > 0:   # check_config: only with attention="triple"
    loss = loss + m.attention_l2 * 0.5 * attention_sq_distance(params["layers"], m)
  return loss


def fusion_sq_distance(w_f: jax.Array, m) -> jax.Array:
  """|W_f - W_identity|^2 (squared Frobenius norm): the fusion's distance from e_v' = e_v."""
  return jnp.sum((w_f - neutral_fusion(w_f, m)) ** 2)


def attention_sq_distance(layers: list[dict], m) -> jax.Array:
  """Sum over layers of |W1 - W1_start|^2 + |w2|^2: the triple attention's distance from its
  `neutral_attention` start. The paper puts no penalty on W1, w2."""
  return sum(jnp.sum((layer[name] - start) ** 2)
             for layer in layers for name, start in neutral_attention(layer, m).items())


def graph_row_sq_norm(node: jax.Array, graph: Graph) -> jax.Array:
  """Mean |row|^2 over the KG-entity and aux rows of the node table (not users, items, sink)."""
  blocks = (node[graph.n_items:graph.user_start], node[graph.aux_start:graph.sink])
  n_rows = sum(b.shape[0] for b in blocks)
  return sum(jnp.sum(b * b) for b in blocks) / max(n_rows, 1)


def kg_loss(params, graph: Graph, m, batch: jax.Array, l2: float) -> jax.Array:
  """TransR loss (eq. 1-2) on a batch [B, 4] of (h, r, t, t') node/relation ids."""
  h, r, t, tn = (batch[:, c] for c in range(4))
  e, w = params["node"], params["W_r"][r]
  rel = params["relation"][r]
  proj = lambda v: jnp.einsum("bd,bdk->bk", e[v], w)
  ph, pt, pn = proj(h), proj(t), proj(tn)
  g_pos = jnp.sum((ph + rel - pt) ** 2, -1)
  g_neg = jnp.sum((ph + rel - pn) ** 2, -1)
  reg = 0.5 * jnp.mean(jnp.sum(ph ** 2 + rel ** 2 + pt ** 2 + pn ** 2, -1))
  return jnp.mean(jax.nn.softplus(g_pos - g_neg)) + l2 * reg
