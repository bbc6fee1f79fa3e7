"""KGAT-AX and KGAT as pure functions over a parameter pytree (docs/model.md §2).

One code path serves every variant of docs/model.md §2.5; a variant is a set of `Options` values,
and each choice (attention, aggregator, fusion) is one entry of a small table of functions:
`ATTENTIONS`, `AGGREGATORS`, `FUSIONS`.

Shapes: N nodes (graph.n_nodes), R relations, E edges, d = embed_dim, k = relation_dim,
layer l maps d_l -> d_{l+1} with d_0 = d.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from kgax import ops
from kgax.graph import Graph, partition_by_head
from kgax.options import fraction, non_negative, one_of, positive

_glorot = jax.nn.initializers.glorot_uniform()


ROW_TABLES = ("node", "relation", "W_r")   # row-sharded along a mesh's "model" axis
partition_edges = partition_by_head   # on such a mesh, each device sums its own rows' edges


@dataclasses.dataclass(frozen=True)
class Options:
  """KGAT-AX and KGAT (docs/model.md §2); the defaults are KGAT-AX with the paper's layer."""
  name: str = "kgat"
  embed_dim: int = 64
  relation_dim: int = 64
  layers: tuple[int, ...] = (64, 32, 16)
  attention: str = "triple"     # triple (KGAT-AX, eq. 3-6) | triple_tail (its weights, message
                                # C e_t only) | kgat (KGAT's) | mean (uniform) | relation_mean
                                # (pi proportional to c(h, r)^-relation_power, c(h, r) the head's
                                # edges of the edge's relation: 1 gives each relation an equal
                                # share, 0 is mean)
  relation_power: float = 1.0
  aggregator: str = "bi"        # bi | gcn | graphsage | linear (LightGCN's: e(l+1) = e_agg)
  combine: str = "concat"       # concat (KGAT: e* = e(0) || ... || e(L)) | mean (LightGCN)
  normalize_layers: bool = True  # L2-normalise each layer's output (KGAT)
  fusion: str = "holographic"   # holographic (§2.2) | hadamard | concat | none
  aux_edges: bool = True        # aux facts as CKG edges (owner -> aux node)
  use_kge: bool = True          # KG-embedding phase (eq. 1-2)
  kge: str = "transr"           # transr (eq. 1-2) | transe (W_r = identity: the triples bind
                                # the node rows themselves; relation_dim = embed_dim)
  attend_users: bool = True     # False: uniform weights on users' edges (no_att_eu)
  attend_items: bool = True     # False: uniform weights on items' edges (no_att_ei)
  message_dropout: float = 0.1
  node_dropout: float = 0.0     # each CKG edge dropped with this probability per training pass
  leaky_slope: float = 0.2
  fusion_l2: float = 0.0        # CF-phase penalty 0.5 * |W_f - W_identity|^2 times this
  kg_triples = "ckg"            # TransR trains on every CKG edge (not a field)

  def __post_init__(self):
    for field, table in (("attention", ATTENTIONS), ("aggregator", AGGREGATORS),
                         ("fusion", FUSIONS)):
      one_of("model", self, field, tuple(table))
    one_of("model", self, "combine", ("concat", "mean"))
    one_of("model", self, "kge", tuple(KG_EMBEDDINGS))
    if self.kge == "transe" and self.relation_dim != self.embed_dim:
      raise ValueError(f"config.model.relation_dim={self.relation_dim}: kge=transe needs it "
                       f"equal to embed_dim={self.embed_dim}")
    positive("model", self, "embed_dim", "relation_dim")
    if not self.layers or any(s <= 0 for s in self.layers):
      raise ValueError(f"config.model.layers={self.layers!r}: expected positive layer sizes")
    if (self.aggregator == "linear" or self.combine == "mean") and \
        any(s != self.embed_dim for s in self.layers):
      raise ValueError(f"config.model.layers={self.layers!r}: the linear aggregator and the "
                       f"mean combination need every layer of size embed_dim={self.embed_dim}")
    non_negative("model", self, "fusion_l2", "leaky_slope")
    fraction("model", self, "message_dropout", "node_dropout")
    fraction("model", self, "relation_power", upper_open=False)


# Attention (docs/model.md §2.3): per layer, logits [E] and the aggregation of pi-weighted messages.

def _triple_init(keys, d_in: int, k: int) -> dict:
  """W1 = [A | B | C] acting on [e_h || e_r || e_t] and w2 (eq. 4-5)."""
  return dict(A=_glorot(next(keys), (d_in, d_in)), B=_glorot(next(keys), (k, d_in)),
              C=_glorot(next(keys), (d_in, d_in)), w2=_glorot(next(keys), (d_in, 1))[:, 0])


def _triple_logits(layer, params, graph: Graph, x0, x, m):
  """pi-logits LeakyReLU(w2 . m(h, r, t)) with m = A e_h + B e_r + C e_t (eq. 4-5): A e_h and
  C e_t once per node, B e_r per relation, so no [E, 3d] tensor is formed."""
  ah, ct, br = x @ layer["A"], x @ layer["C"], params["relation"] @ layer["B"]
  w2 = layer["w2"]
  logit = jax.nn.leaky_relu((ah @ w2)[graph.heads] + ops.take_few(br @ w2, graph.relations)
                            + (ct @ w2)[graph.tails], m.leaky_slope)
  return logit, (ah, ct, br)


def _triple_aggregate(pi, parts, graph: Graph, x):
  """e_agg(h) = sum_e pi_e (A e_h + B e_r + C e_t) (eq. 3)."""
  ah, ct, br = parts
  mass = graph.head_sum(pi)
  per_rel = graph.head_sum(pi, graph.relations, graph.n_relations).reshape(graph.n_nodes, -1)
  return ah * mass[:, None] + per_rel @ br + graph.head_spmm(pi, ct)


def _triple_tail_aggregate(pi, parts, graph: Graph, x):
  """e_agg(h) = sum_e pi_e C e_t: the triple attention's weights over the tails' content only
  (docs/model.md §2.3): an edge cannot carry its head's own row (A e_h) or a per-relation
  offset (B e_r), so a KG edge only helps through what its tail holds."""
  return graph.head_spmm(pi, parts[1])


def _tail_sum(pi, parts, graph: Graph, x):
  """e_agg(h) = sum_e pi_e e_t (KGAT's message)."""
  return graph.head_spmm(pi, x)


def relation_mean_logits(graph: Graph, power: float = 1.0, dtype=jnp.float32) -> jax.Array:
  """-power * log c(h, r) per edge [E], c(h, r) the number of h's edges of relation r: their
  softmax over a head's edges is pi proportional to c(h, r)^-power, so relation r's share of h's
  message is proportional to c(h, r)^(1 - power) (docs/model.md §2.3). power=1: every relation
  the same share whatever its count, pi = 1 / (c(h, r) R_h), R_h the relations at h (an item's
  genre and year edges weigh as much as all its users together); power=0: the plain mean."""
  n_pairs = graph.head_pair_nodes.shape[0]
  count = ops.segment_sum(graph.weights.astype(dtype), graph.head_pair_index, n_pairs)
  return -power * jnp.log(jnp.maximum(count, 1.0))[graph.head_pair_index]


@dataclasses.dataclass(frozen=True)
class Attention:
  init: Callable       # (keys, d_in, k) -> layer parameters
  logits: Callable     # (layer, params, graph, x0, x, m) -> (logits [E], parts)
  aggregate: Callable  # (pi [E], parts, graph, x) -> e_agg [N, d_in]
  weighted: bool = False   # has W1 = [A | B | C] and w2, which config.start.neutral sets


ATTENTIONS = {
    "triple": Attention(_triple_init, _triple_logits, _triple_aggregate, weighted=True),
    "triple_tail": Attention(_triple_init, _triple_logits, _triple_tail_aggregate, weighted=True),
    "kgat": Attention(lambda keys, d_in, k: {},
                      lambda layer, params, graph, x0, x, m: (kgat_logits(params, graph, x0), None),
                      _tail_sum),
    "mean": Attention(lambda keys, d_in, k: {},
                      lambda layer, params, graph, x0, x, m: (jnp.zeros(graph.heads.shape,
                                                                        x.dtype), None),
                      _tail_sum),
    "relation_mean": Attention(lambda keys, d_in, k: {},
                               lambda layer, params, graph, x0, x, m: (
                                   relation_mean_logits(graph, m.relation_power, x.dtype), None),
                               _tail_sum),
}


# Aggregators (docs/model.md §2.4): e(l+1) from e(l) and e_agg.

def _act(m, v):
  return jax.nn.leaky_relu(v, m.leaky_slope)


@dataclasses.dataclass(frozen=True)
class Aggregator:
  init: Callable   # (keys, d_in, d_out) -> layer parameters
  apply: Callable  # (layer, m, x, agg) -> e(l+1)


def _dense(keys, d_in, d_out, name="a"):
  return {f"W{name}": _glorot(next(keys), (d_in, d_out)), f"b{name}": jnp.zeros(d_out)}


AGGREGATORS = {
    # Bi-Interaction: LeakyReLU(W1 (e_h + e_agg)) + LeakyReLU(W2 (e_h * e_agg))
    "bi": Aggregator(lambda keys, d_in, d_out: {**_dense(keys, d_in, d_out, "a"),
                                                **_dense(keys, d_in, d_out, "b")},
                     lambda layer, m, x, agg: _act(m, (x + agg) @ layer["Wa"] + layer["ba"])
                     + _act(m, (x * agg) @ layer["Wb"] + layer["bb"])),
    "gcn": Aggregator(lambda keys, d_in, d_out: _dense(keys, d_in, d_out),
                      lambda layer, m, x, agg: _act(m, (x + agg) @ layer["Wa"] + layer["ba"])),
    "graphsage": Aggregator(lambda keys, d_in, d_out: _dense(keys, 2 * d_in, d_out),
                            lambda layer, m, x, agg: _act(
                                m, jnp.concatenate([x, agg], -1) @ layer["Wa"] + layer["ba"])),
    # LightGCN's: the next layer is the attentive neighbour sum
    "linear": Aggregator(lambda keys, d_in, d_out: {}, lambda layer, m, x, agg: agg),
}


# Fusions (docs/model.md §2.2): the change delta of an owner's row e from its aux summary s.

@dataclasses.dataclass(frozen=True)
class Fusion:
  w_rows: int | None   # W_f has w_rows * d rows (None: no W_f)
  delta: Callable      # (W_f, e [O, d], s [O, d]) -> [O, d]


FUSIONS = {
    "holographic": Fusion(1, lambda w, e, s: ops.circular_correlation(e, s) @ w),   # §2.2
    "hadamard": Fusion(1, lambda w, e, s: (e * s) @ w),
    "concat": Fusion(2, lambda w, e, s: jnp.concatenate([e, s], -1) @ w - e),   # W [e || s]
    "none": Fusion(None, None),
}


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised parameters."""
  d, k = m.embed_dim, m.relation_dim
  keys = iter(jax.random.split(key, 8 + 8 * len(m.layers)))
  params = {
      "node": _glorot(next(keys), (graph.n_nodes, d)),
      "relation": _glorot(next(keys), (graph.n_relations, k)),
      "W_r": _glorot(next(keys), (graph.n_relations, d, k)),
  }
  rows = FUSIONS[m.fusion].w_rows
  if rows:
    params["W_f"] = _glorot(next(keys), (rows * d, d))
  layers = []
  sizes = (d, *m.layers)
  for d_in, d_out in zip(sizes[:-1], sizes[1:]):
    layers.append({**ATTENTIONS[m.attention].init(keys, d_in, k),
                   **AGGREGATORS[m.aggregator].init(keys, d_in, d_out)})
  params["layers"] = layers
  return params


def neutral_fusion(w_f: jax.Array, m: Options) -> jax.Array:
  """W_f of the identity fusion e_v' = e_v: 0, or [I; 0] for the concat fusion."""
  d = w_f.shape[1]
  return jnp.eye(2 * d, d, dtype=w_f.dtype) if m.fusion == "concat" else jnp.zeros_like(w_f)


def neutral_attention(layer: dict, kind: str) -> dict:
  """The triple attention's neutral start for `layer`: "mean", the mean aggregator (W1 =
  [0 | 0 | I], w2 = 0: message e_t, uniform pi), or "zero", no message at all (W1 = 0, w2 = 0)."""
  start = {name: jnp.zeros_like(layer[name]) for name in ("A", "B", "C", "w2")}
  if kind == "mean":
    start["C"] = jnp.eye(*layer["C"].shape, dtype=layer["C"].dtype)
  return start


def neutral_start(params: dict, m: Options, kind: str) -> dict:
  """`params` with the modules KGAT-AX adds to a plain embedding model started neutral (for a
  fine-tune from pretrained rows, config.start.neutral): the fusion as the identity and the
  triple attention as `neutral_attention(kind)`. KGAT's attention has no weights to start."""
  params = dict(params)
  if "W_f" in params:
    params["W_f"] = neutral_fusion(params["W_f"], m)
  if ATTENTIONS[m.attention].weighted:
    params["layers"] = [dict(layer, **neutral_attention(layer, kind))
                        for layer in params["layers"]]
  return params


def fuse(params: dict, graph: Graph, m: Options, x: jax.Array) -> jax.Array:
  """Fusion of aux facts into layer-0 embeddings (docs/model.md §2.2; paper section 3.4).

  s_v = sum_a w~_{v,a} x_a;  e_v' = e_v + delta(e_v, s_v) for nodes with aux facts, where delta
  is the FUSIONS entry: holographic W_f (e_v * s_v) (circular correlation), hadamard, or concat
  (W_f [e_v || s_v] replaces e_v).
  Computed on the rows of the facts' owners only (graph.aux_owners), which are few next to all
  nodes (2,626 of 35,778 on ml-100k-kg with its aux facts); the other rows pass through.
  """
  fusion = FUSIONS[m.fusion]
  if fusion.w_rows is None or graph.n_aux == 0:
    return x
  owners, index = graph.aux_owners, graph.aux_owner_index
  n = owners.shape[0]
  s = ops.segment_sum(graph.aux_weight[:, None] * x[graph.aux_node], index, n,
                      indices_are_sorted=True)
  has_aux = ops.segment_sum(graph.aux_weight, index, n, indices_are_sorted=True) > 0
  delta = fusion.delta(params["W_f"], x[owners], s)
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


def _uniform_mask(graph: Graph, m: Options) -> jax.Array | None:
  """Edges whose attention is replaced by uniform weights (no_Att_eu / no_Att_ei)."""
  mask = None
  if not m.attend_users:
    mask = (graph.heads >= graph.user_start) & (graph.heads < graph.user_start + graph.n_users)
  if not m.attend_items:
    items = graph.heads < graph.n_items
    mask = items if mask is None else mask | items
  return mask


def propagate(params: dict, graph: Graph, m: Options, *, rng: jax.Array | None = None,
              return_attention: bool = False):
  """All node representations e* = e(0) || ... || e(L): [N, d + sum(layers)] (KGAT's
  concatenation, paper eq. 7, docs/model.md §2.4; with m.combine == "mean", LightGCN's mean of
  the layers: [N, d]).

  `rng` enables message dropout and node dropout (training); None is the deterministic
  evaluation pass. With `return_attention`, also returns the attention weights pi of every
  layer: [L, E].

  Node dropout is KGAT's: each edge of the attentive adjacency is dropped with probability
  m.node_dropout for the whole forward pass (all layers) and the kept ones are scaled by
  1 / (1 - p), after the softmax, so a node's expected message is unchanged.
  """
  attention, aggregator = ATTENTIONS[m.attention], AGGREGATORS[m.aggregator]
  weights = graph.weights
  if rng is not None and m.node_dropout > 0:
    rng, edge_rng = jax.random.split(rng)
    keep = jax.random.bernoulli(edge_rng, 1.0 - m.node_dropout, graph.heads.shape)
    weights = jnp.where(keep, weights / (1.0 - m.node_dropout), 0.0)
  x0 = x = fuse(params, graph, m, params["node"])
  outs, pis = [x], []
  uniform = _uniform_mask(graph, m)
  for l, layer in enumerate(params["layers"]):
    logit, parts = attention.logits(layer, params, graph, x0, x, m)
    if uniform is not None:
      logit = jnp.where(uniform, 0.0, logit)
    pi = graph.head_softmax(logit) * weights   # eq. 6
    pis.append(pi)
    x = aggregator.apply(layer, m, x, attention.aggregate(pi, parts, graph, x))
    if rng is not None and m.message_dropout > 0:
      keep = jax.random.bernoulli(jax.random.fold_in(rng, l), 1.0 - m.message_dropout, x.shape)
      x = jnp.where(keep, x / (1.0 - m.message_dropout), 0.0)
    outs.append(ops.l2_normalize(x) if m.normalize_layers else x)
  z = jnp.concatenate(outs, -1) if m.combine == "concat" else sum(outs) / len(outs)
  return (z, jnp.stack(pis)) if return_attention else z


def user_item_embeddings(params, graph: Graph, m: Options, *, rng=None
                         ) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, D], items [n_items, D]) final representations; score = dot product."""
  z = propagate(params, graph, m, rng=rng)
  return z[graph.user_start:graph.user_start + graph.n_users], z[:graph.n_items]


def cf_loss(params, graph: Graph, m: Options, batch: jax.Array, rng: jax.Array,
            l2: float) -> jax.Array:
  """BPR loss (docs/model.md §2.4, eq. 8-9) on a batch [B, 3] of (user, pos item, neg item) + L2
  of the batch's final representations (its lambda term); m.fusion_l2 > 0 adds
  m.fusion_l2 * 0.5 * |W_f - W_identity|^2, which holds the fusion near e_v' = e_v."""
  users, items = user_item_embeddings(params, graph, m, rng=rng)
  u, i, j = users[batch[:, 0]], items[batch[:, 1]], items[batch[:, 2]]
  diff = jnp.sum(u * i, -1) - jnp.sum(u * j, -1)
  reg = 0.5 * jnp.mean(jnp.sum(u * u, -1) + jnp.sum(i * i, -1) + jnp.sum(j * j, -1))
  loss = jnp.mean(jax.nn.softplus(-diff)) + l2 * reg
  if m.fusion_l2 > 0 and "W_f" in params:
    loss = loss + m.fusion_l2 * 0.5 * fusion_sq_distance(params["W_f"], m)
  return loss


def fusion_sq_distance(w_f: jax.Array, m: Options) -> jax.Array:
  """|W_f - W_identity|^2 (squared Frobenius norm): the fusion's distance from e_v' = e_v."""
  return jnp.sum((w_f - neutral_fusion(w_f, m)) ** 2)


# KG embeddings (docs/model.md §2.1): a node row [B, d] in relation r's space, given W_r [B, d, k].
KG_EMBEDDINGS = {
    "transr": lambda e, w: jnp.einsum("bd,bdk->bk", e, w),   # W_r e (eq. 1)
    "transe": lambda e, w: e,   # the row itself: the triples act in the space the CF score uses
}


def kg_loss(params, graph: Graph, m: Options, batch: jax.Array, l2: float) -> jax.Array:
  """TransR loss (eq. 1-2; TransE with m.kge == "transe") on a batch [B, 4] of (h, r, t, t')
  node/relation ids."""
  h, r, t, tn = (batch[:, c] for c in range(4))
  e, w = params["node"], params["W_r"][r]
  rel = params["relation"][r]
  project = KG_EMBEDDINGS[m.kge]
  proj = lambda v: project(e[v], w)
  ph, pt, pn = proj(h), proj(t), proj(tn)
  g_pos = jnp.sum((ph + rel - pt) ** 2, -1)
  g_neg = jnp.sum((ph + rel - pn) ** 2, -1)
  reg = 0.5 * jnp.mean(jnp.sum(ph ** 2 + rel ** 2 + pt ** 2 + pn ** 2, -1))
  return jnp.mean(jax.nn.softplus(g_pos - g_neg)) + l2 * reg
