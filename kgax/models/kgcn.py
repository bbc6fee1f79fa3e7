"""KGCN (Wang et al. WWW 2019) with the sum aggregator, trained with BPR for ranking.

The KG is read undirected, as in KGCN: the neighbours of entity v are the tails of its CKG edges
with a KG relation r in 1..R or its inverse, both mapped to KG relation r (row r - 1 of the
relation table). Each entity gets K = neighbor_sample_size neighbours drawn uniformly with
replacement (`neighbour_table`); an entity without KG edges gets itself K times, masked out.

For user u and item v with H = n_iter hops, the receptive field is v, its K sampled neighbours,
their K neighbours each, ... (K^h entities at hop h). Iteration i = 0..H-1 updates every hop
h < H - i from hop h + 1:

    pi(u, r_n)  = softmax over the K sampled neighbours n of (e_u . e_{r_n})
    agg         = sum_n pi(u, r_n) x_n
    x_new       = act_i(W_i (x + agg) + b_i),  act = ReLU, tanh for the last iteration

and score(u, v) = e_u . x_v, the hop-0 vector after H iterations.

Sampling: `cf_loss` draws a fresh table from its `rng` at every step (the loop folds the epoch and
step into it, so every epoch sees new neighbourhoods: KGCN's per-epoch resampling, done more
often); `score_users` uses the fixed table of key `EVAL_SEED`, so evaluation is deterministic.

Scores are user-specific (attention depends on e_u), so the model exposes `score_users`. Its
memory per chunk of C items is about B x C x K^(H-1) x d floats for B users: items go through in
chunks of `score_chunk` (config); lower it or config.eval.batch_size when memory is short.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from kgax import ops
from kgax.graph import Graph
from kgax.models import mf
from kgax.options import positive

_glorot = jax.nn.initializers.glorot_uniform()
EVAL_SEED = 0


@dataclasses.dataclass(frozen=True)
class Options:
  """KGCN (docs/model.md §3): sampled KG neighbourhoods, user-relation attention, sum aggregator."""
  name: str = "kgcn"
  embed_dim: int = 64
  neighbor_sample_size: int = 8   # K neighbours per entity, redrawn every step
  n_iter: int = 1                 # H hops
  score_chunk: int = 64           # items per scoring chunk: memory ~ B x chunk x K^(H-1) x d
  use_kge = False                 # (not fields)
  aux_edges = False

  def __post_init__(self):
    positive("model", self, "embed_dim", "neighbor_sample_size", "n_iter", "score_chunk")


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised user [n_users, d], entity [n_entities, d] and relation [R, d] tables;
  per iteration an aggregator W [d, d], b [d]."""
  if not sum(graph.relation_sizes[1:1 + graph.n_kg_relations]):
    raise ValueError("model kgcn: the dataset has no KG triples to aggregate over")
  d = m.embed_dim
  keys = jax.random.split(key, 3 + m.n_iter)
  return {"user": _glorot(keys[0], (graph.n_users, d)),
          "entity": _glorot(keys[1], (graph.n_entities, d)),
          "relation": _glorot(keys[2], (graph.n_kg_relations, d)),
          "layers": [{"W": _glorot(k, (d, d)), "b": jnp.zeros(d)} for k in keys[3:]]}


def neighbour_table(graph: Graph, key: jax.Array, k: int):
  """K sampled KG neighbours per entity: (entity ids, KG relation ids 0..R-1) int32
  [n_entities, K] and has_neighbours bool [n_entities].

  The KG edges (forward and inverse), in edge-id order, are sorted by head, so each entity's
  edges are a segment; each of the K draws picks an edge uniformly within that segment.
  """
  n, r_kg, n_fwd = graph.n_entities, graph.n_kg_relations, graph.n_fwd_relations
  fwd = graph.relations % n_fwd                            # KG relations 1..R and inverses
  sizes = graph.relation_sizes
  n_kg = sum(sizes[1:1 + r_kg]) + sum(sizes[n_fwd + 1:n_fwd + 1 + r_kg])
  (edges,) = jnp.nonzero((fwd >= 1) & (fwd <= r_kg), size=n_kg)   # ascending: head-sorted
  heads = graph.heads[edges]
  count = ops.segment_sum(jnp.ones(heads.shape, jnp.int32), heads, n, indices_are_sorted=True)
  start = jnp.cumsum(count) - count
  draw = jnp.floor(jax.random.uniform(key, (n, k)) * count[:, None]).astype(jnp.int32)
  pick = edges[jnp.minimum(start[:, None] + draw, edges.shape[0] - 1)]
  has = count > 0
  ent = jnp.where(has[:, None], graph.tails[pick], jnp.arange(n)[:, None])
  rel = jnp.where(has[:, None], graph.relations[pick] % n_fwd - 1, 0)
  return ent, rel, has


def _represent(params, table, u: jax.Array, items: jax.Array) -> jax.Array:
  """x_v for one user: u [d], items [C] -> [C, d] (vmapped over users)."""
  ent, rel, has = table
  e = params["entity"]
  user_rel = params["relation"] @ u                        # e_u . e_r for every KG relation [R]
  n_iter = len(params["layers"])
  ids, scores, masks = [items[:, None]], [], []            # hop h: [C, K^h]
  for _ in range(n_iter):
    ids.append(ent[ids[-1]].reshape(items.shape[0], -1))
    scores.append(user_rel[rel[ids[-2]]])                  # [C, K^h, K]
    masks.append(has[ids[-2]])                             # [C, K^h]
  x = [e[i] for i in ids]                                  # hop h: [C, K^h, d]
  for it, layer in enumerate(params["layers"]):
    act = jnp.tanh if it == n_iter - 1 else jax.nn.relu
    new = []
    for h in range(n_iter - it):
      pi = jax.nn.softmax(scores[h], -1) * masks[h][..., None]
      nb = x[h + 1].reshape(*pi.shape, -1)                 # [C, K^h, K, d]
      agg = jnp.einsum("cnk,cnkd->cnd", pi, nb)
      new.append(act((x[h] + agg) @ layer["W"] + layer["b"]))
    x = new
  return x[0][:, 0]


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR on a batch [B, 3] of (user, pos item, neg item), neighbourhoods drawn from `rng`;
  L2 of e_u, x_i, x_j."""
  table = neighbour_table(graph, rng, m.neighbor_sample_size)
  u = params["user"][batch[:, 0]]
  x = jax.vmap(lambda u, v: _represent(params, table, u, v))(u, batch[:, 1:])   # [B, 2, d]
  xi, xj = x[:, 0], x[:, 1]
  return mf.bpr_loss(jnp.sum(u * xi, -1), jnp.sum(u * xj, -1), l2, u, xi, xj)


def score_users(params, graph: Graph, m, users: jax.Array) -> jax.Array:
  """score(u, v) = e_u . x_v(u) for users [B] and every item: [B, n_items], in item chunks."""
  table = neighbour_table(graph, jax.random.key(EVAL_SEED), m.neighbor_sample_size)
  u = params["user"][users]
  n = graph.n_items
  chunk = min(m.score_chunk, n)
  n_chunks = -(-n // chunk)
  items = jnp.minimum(jnp.arange(n_chunks * chunk), n - 1).reshape(n_chunks, chunk)
  if len(params["layers"]) == 1:
    scores = _one_hop_scorer(params, table, u, graph.n_kg_relations)
  else:
    def scores(ids):                                       # [B, chunk]
      x = jax.vmap(lambda u: _represent(params, table, u, ids))(u)
      return jnp.einsum("bd,bcd->bc", u, x)

  out = jax.lax.map(scores, items)                         # [n_chunks, B, chunk]
  return jnp.moveaxis(out, 0, 1).reshape(users.shape[0], -1)[:, :n]


def _one_hop_scorer(params, table, u: jax.Array, n_rel: int):
  """Scores of users u [B, d] against an item chunk [C] for H = 1, in dense products.

  With one hop, x_v(u) = tanh(e_v W + b + sum_k pi_k(u) e_{n_k} W), and pi_k(u) depends on u
  only through the relation r_k of the neighbour. Grouping the K neighbours of v by relation,

      sum_k pi_k(u) e_{n_k} W = sum_r w_r(u) S_{v,r} / sum_r w_r(u) c_{v,r},

  with w_r(u) = exp(e_u . e_r - shift), S_{v,r} the sum of e_{n_k} W over v's neighbours of
  relation r and c_{v,r} their count: matrix products with inner size R per chunk instead of a
  [B, C, K, d] gather and a d x d product per (user, item) pair. The shift is the user's largest
  logit over all relations, which keeps the products plain; a chunk where that makes some
  denominator underflow (logits far apart) is redone with the largest logit among each item's
  own relations as the shift, so the scores equal `_represent`'s up to rounding.
  """
  ent, rel, has = table
  e, layer = params["entity"], params["layers"][0]
  logits = u @ params["relation"].T                        # [B, R]
  w = jnp.exp(logits - logits.max(-1, keepdims=True))

  def scores(ids):                                         # [B, chunk]
    own = e[ids] @ layer["W"] + layer["b"]                 # [C, d]
    onehot = jax.nn.one_hot(rel[ids], n_rel) * has[ids][:, None, None]   # [C, K, R]
    by_rel = jnp.einsum("ckr,ckd->crd", onehot, e[ent[ids]] @ layer["W"])   # [C, R, d]
    count = onehot.sum(1)                                  # [C, R]
    den = w @ count.T                                      # [B, C]; 0 for items without edges
    tiny = jnp.finfo(den.dtype).tiny / jnp.finfo(den.dtype).eps
    underflow = jnp.any((den < tiny) & has[ids][None])

    def score(agg):                                        # [B, C, d] -> [B, C]
      return jnp.einsum("bd,bcd->bc", u, jnp.tanh(own + agg))

    def per_user_shift():
      return score(jnp.einsum("br,crd->bcd", w, by_rel) / jnp.maximum(den, tiny)[..., None])

    def per_item_shift():
      present = count > 0                                  # [C, R]
      top = jnp.max(jnp.where(present, logits[:, None], -jnp.inf), -1, keepdims=True)
      a = jnp.where(present, jnp.exp(logits[:, None] - jnp.where(present.any(-1)[:, None], top,
                                                                   0)), 0)   # [B, C, R]
      den_item = jnp.einsum("bcr,cr->bc", a, count)
      return score(jnp.einsum("bcr,crd->bcd", a, by_rel)
                   / jnp.maximum(den_item, tiny)[..., None])

    return jax.lax.cond(underflow, per_item_shift, per_user_shift)
  return scores
