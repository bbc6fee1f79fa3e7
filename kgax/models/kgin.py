"""KGIN (Wang et al. WWW 2021): user intents over KG relations, relational path aggregation.

Shapes: U users, N entities (items 0..I-1 first), R KG relations, R' relations read (R, or 2R
with `inverse_relations`), P = n_intents, d = embed_dim, L = n_layers (hops).

    e_p         = sum_r alpha(r, p) e_r,   alpha(., p) = softmax_r(w_rp)             (eq. 1-2)
    beta(u, p)  = softmax_p(e_p . e_u^(l))                                           (eq. 8)
    e_u^(l+1)   = 1/|N_u| sum_{i in N_u} sum_p beta(u, p) e_p * e_i^(l)              (eq. 7, 11)
    e_v^(l+1)   = 1/|N_v| sum_{(r, t) in N_v} e_r * e_t^(l)     for every entity v   (eq. 10, 11)
    e*          = e^(0) + e^(1) + ... + e^(L);   score(u, i) = e*_u . e*_i           (eq. 13-14)
    L_IND       = sum_{p < p'} dCor(e_p, e_p')                                       (eq. 4-5)
    cf_loss     = BPR (eq. 15) + l2 * L2 of the batch + independence_weight * L_IND  (eq. 16)

(* is the element-wise product; N_u are u's training items, N_v the (relation, tail) pairs of
v's KG edges.) Choices the paper leaves open follow the authors' code:

- each hop's output is L2-normalised (after message dropout) and the normalised vectors both
  feed the next hop and enter the sum e*; e^(0) is the raw table row;
- the KG is read with its inverse edges (the code's inverse_r): with `inverse_relations` the
  CKG's inverse KG edges (relation n_fwd + r) are relations R+1..2R, each with its own e_r and
  intent weights w_rp; the interact relation is not a KG relation, so items aggregate over the KG
  only and users over their training items only; aux facts are ignored;
- node dropout (training only, drawn once per forward pass and shared by the hops): each KG edge
  is dropped with probability `edge_dropout` and an entity averages over its kept edges; each
  interaction is dropped with probability `interaction_dropout` and the kept ones are scaled by
  1 / (1 - p) with |N_u| unchanged (the code's sparse dropout of the mean-normalised matrix).
  The code keeps a fixed-size random subset of the KG edges; here each edge is a Bernoulli draw,
  so every array keeps its static shape;
- L_IND sums each unordered pair once (the paper's sum over p != p' counts it twice); the
  pairwise distances are exact |x_j - x_k| (the code adds 1e-8 under a square root).

`formulation="code"` switches to three choices of the authors' code (and RecBole) that differ
from the paper: beta(u, p) = softmax_p(q_p . e_u^(l)) with a free query table q [P, d] instead
of e_p; e_u^(l+1) = m_u * (sum_p beta(u, p) e_p) + m_u with m_u = 1/|N_u| sum_{i in N_u} e_i^(l)
(an added mean term); and L_IND over the rows of the intent logits w [P, R'] instead of e_p.
`l2_on="output"` regularises the batch's final e* (as the code) instead of its table rows.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from kgax import ops
from kgax.graph import Graph
from kgax.models import mf

_glorot = jax.nn.initializers.glorot_uniform()
NEEDS_KG = True   # intents are combinations of KG relations (eq. 2)
INDEPENDENCE = ("distance", "cosine", "mutual_info")
FORMULATIONS = ("paper", "code")
L2_ON = ("layer0", "output")
_DCOV_EPS = 1e-8   # under the square roots of the distance covariances (finite gradients at 0)


def _is_int(x) -> bool:
  return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x) -> bool:
  return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class Options:
  """KGIN (Wang et al. WWW 2021): intents over KG relations, relational path aggregation."""
  name: str = "kgin"
  embed_dim: int = 64               # d
  n_layers: int = 3                 # hops L
  n_intents: int = 4                # intents P
  independence: str = "distance"    # distance (dCor, eq. 4-5) | cosine (squared cosines) |
                                    # mutual_info (eq. 3)
  independence_weight: float = 1e-4  # lambda_1 of eq. 16
  temperature: float = 0.2          # tau of mutual_info
  message_dropout: float = 0.1      # on each hop's output, training only
  edge_dropout: float = 0.5         # each KG edge dropped with this probability per training pass
  interaction_dropout: float = 0.5  # each training interaction likewise (kept ones scaled up)
  inverse_relations: bool = True    # read the inverse KG edges too, as relations R+1..2R
  formulation: str = "paper"        # paper | code (the authors' code; see the module docstring)
  l2_on: str = "layer0"             # layer0 (the batch's table rows) | output (its e*, the code's)
  aux_edges: bool = False           # the graph builder reads it; KGIN ignores aux facts
  use_kge: bool = False             # KGIN trains no KG-embedding loss

  def __post_init__(self):
    def check(ok: bool, field: str, expected: str):
      if not ok:
        raise ValueError(f"config.model.{field}={getattr(self, field)!r}: expected {expected}")

    check(self.name == "kgin", "name", "'kgin'")
    check(_is_int(self.embed_dim) and self.embed_dim > 0, "embed_dim", "a positive integer")
    check(_is_int(self.n_layers) and self.n_layers >= 0, "n_layers", "an integer >= 0")
    check(_is_int(self.n_intents) and self.n_intents > 0, "n_intents", "a positive integer")
    check(self.independence in INDEPENDENCE, "independence", f"one of {INDEPENDENCE}")
    check(_is_number(self.independence_weight) and self.independence_weight >= 0,
          "independence_weight", "a number >= 0")
    check(_is_number(self.temperature) and self.temperature > 0, "temperature",
          "a positive number")
    for field in ("message_dropout", "edge_dropout", "interaction_dropout"):
      value = getattr(self, field)
      check(_is_number(value) and 0 <= value < 1, field, "a probability in [0, 1)")
    check(self.formulation in FORMULATIONS, "formulation", f"one of {FORMULATIONS}")
    check(self.l2_on in L2_ON, "l2_on", f"one of {L2_ON}")
    for field in ("inverse_relations", "aux_edges"):
      check(isinstance(getattr(self, field), bool), field, "True or False")
    check(self.use_kge is False, "use_kge", "False (KGIN trains no KG-embedding loss)")


def check_config(m) -> Options:
  """`m` (Options, or a ConfigDict with every Options field) as checked Options; a one-line
  ValueError naming the first bad or missing field."""
  if isinstance(m, Options):
    return m
  names = [f.name for f in dataclasses.fields(Options)]
  missing = [n for n in names if not hasattr(m, n)]
  if missing:
    raise ValueError(f"config.model.{missing[0]}: missing (KGIN reads every Options field)")
  return Options(**{n: getattr(m, n) for n in names})


def n_relations_read(graph: Graph, inverse: bool) -> int:
  """R' = R KG relations, or 2R with their inverses."""
  return graph.n_kg_relations * (2 if inverse else 1)


def init(key: jax.Array, m, graph: Graph) -> dict:
  """Xavier-initialised user [U, d], entity [N, d] (items first) and relation [R', d] tables and
  intent logits w [P, R'] (eq. 2); with formulation="code" also the intent queries q [P, d]."""
  check_config(m)
  r_kg, n_fwd, sizes = graph.n_kg_relations, graph.n_fwd_relations, graph.relation_sizes
  if not sum(sizes[1:1 + r_kg]):
    raise ValueError("model kgin: the dataset has no KG triples to aggregate over")
  if m.inverse_relations and not sum(sizes[n_fwd + 1:n_fwd + 1 + r_kg]):
    raise ValueError("config.model.inverse_relations=True: the graph has no inverse KG edges "
                     "(build it with GraphOptions(inverse=True))")
  d, r = m.embed_dim, n_relations_read(graph, m.inverse_relations)
  keys = jax.random.split(key, 5)
  params = {"user": _glorot(keys[0], (graph.n_users, d)),
            "entity": _glorot(keys[1], (graph.n_entities, d)),
            "relation": _glorot(keys[2], (r, d)),
            "intent": _glorot(keys[3], (m.n_intents, r))}
  if m.formulation == "code":
    params["intent_query"] = _glorot(keys[4], (m.n_intents, d))
  return params


def kg_edges(graph: Graph, inverse: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(heads [K], relation rows [K] in 0..R'-1, tails [K]): the CKG's KG edges in edge order, so
  sorted by head. K (static) counts the forward KG edges, and with `inverse` the inverse ones,
  whose rows are R + r - 1 for the inverse of KG relation r."""
  r_kg, n_fwd, sizes, rel = (graph.n_kg_relations, graph.n_fwd_relations, graph.relation_sizes,
                             graph.relations)
  keep = (rel >= 1) & (rel <= r_kg)
  row = rel - 1
  count = sum(sizes[1:1 + r_kg])
  if inverse:
    inv = (rel >= n_fwd + 1) & (rel <= n_fwd + r_kg)
    keep = keep | inv
    row = jnp.where(inv, rel - n_fwd - 1 + r_kg, row)
    count += sum(sizes[n_fwd + 1:n_fwd + 1 + r_kg])
  (edges,) = jnp.nonzero(keep, size=count)   # ascending, hence head-sorted
  return graph.heads[edges], row[edges], graph.tails[edges]


def interaction_edges(graph: Graph, dtype=jnp.float32) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(users [M], items [M], real [M]): the interact edges (relation 0) sorted by user; padding
  edges (weight 0, at the end) get user U (out of range, dropped), item 0 and real = 0."""
  edges = graph.relation_order[:graph.relation_sizes[0]]
  real = graph.weights[edges] > 0
  users = jnp.where(real, graph.heads[edges] - graph.user_start, graph.n_users)
  items = jnp.where(real, graph.tails[edges], 0)
  return users, items, real.astype(dtype)


def intent_embeddings(params: dict) -> jax.Array:
  """e_p = sum_r softmax_r(w_rp) e_r (eq. 1-2): [P, d]."""
  return jax.nn.softmax(params["intent"], axis=-1) @ params["relation"]


def _keep_masks(rng: jax.Array, requests) -> dict:
  """{name: bool mask, True with probability 1 - rate} for `requests` [(name, rate, shape)] with
  rate > 0, cut from one uniform draw (one random-bits op to compile instead of one per mask)."""
  requests = [(name, rate, shape) for name, rate, shape in requests if rate > 0]
  if not requests:
    return {}
  sizes = [math.prod(shape) for _, _, shape in requests]
  blocks = jnp.split(jax.random.uniform(rng, (sum(sizes),)), np.cumsum(sizes)[:-1])
  return {name: block.reshape(shape) >= rate
          for (name, rate, shape), block in zip(requests, blocks)}


def _scaled(keep: jax.Array, x: jax.Array, rate: float) -> jax.Array:
  """Inverted dropout: the kept entries of x scaled by 1 / (1 - rate), the others 0."""
  return jnp.where(keep, x / (1.0 - rate), 0.0)


def propagate(params: dict, graph: Graph, m, *, rng: jax.Array | None = None
              ) -> tuple[jax.Array, jax.Array]:
  """(users [U, d], entities [N, d]): e* = sum of hops 0..L (eq. 7, 10, 13), see the module
  docstring. `rng` enables node and message dropout (training); None is the deterministic
  evaluation pass over the whole graph."""
  user, x = params["user"], params["entity"]
  dtype = x.dtype
  n_u, n_e = graph.n_users, graph.n_entities
  heads, rows, tails = kg_edges(graph, m.inverse_relations)
  users, items, real = interaction_edges(graph, dtype)
  keep = {} if rng is None else _keep_masks(rng, [
      ("kg", m.edge_dropout, heads.shape), ("ui", m.interaction_dropout, users.shape)] + [
      ((part, layer), m.message_dropout, shape) for layer in range(m.n_layers)
      for part, shape in (("user", user.shape), ("entity", x.shape))])
  w_kg = keep["kg"].astype(dtype) if "kg" in keep else jnp.ones(heads.shape, dtype)
  w_ui = _scaled(keep["ui"], real, m.interaction_dropout) if "ui" in keep else real
  seg = lambda v, ids, n: ops.segment_sum(v, ids, n, indices_are_sorted=True)
  inv_deg_u = 1.0 / jnp.maximum(seg(real, users, n_u), 1.0)    # 1 / |N_u| (all interactions)
  inv_deg_v = 1.0 / jnp.maximum(seg(w_kg, heads, n_e), 1.0)    # 1 / |N_v| (kept KG edges)
  e_r = params["relation"]
  e_p = intent_embeddings(params)
  code = m.formulation == "code"
  query = params["intent_query"] if code else e_p
  out_u, out_x = user, x
  for layer in range(m.n_layers):
    mean_i = seg(w_ui[:, None] * x[items], users, n_u) * inv_deg_u[:, None]   # [U, d]
    beta = jax.nn.softmax(user @ query.T, axis=-1)                            # [U, P] eq. 8
    new_user = mean_i * (beta @ e_p)                                          # eq. 7
    if code:
      new_user = new_user + mean_i
    msg = w_kg[:, None] * e_r[rows] * x[tails]                                # [K, d]
    new_x = seg(msg, heads, n_e) * inv_deg_v[:, None]                         # eq. 10
    if ("user", layer) in keep:                                               # message dropout
      new_user = _scaled(keep["user", layer], new_user, m.message_dropout)
      new_x = _scaled(keep["entity", layer], new_x, m.message_dropout)
    user, x = ops.l2_normalize(new_user), ops.l2_normalize(new_x)
    out_u, out_x = out_u + user, out_x + x
  return out_u, out_x


def user_item_embeddings(params, graph: Graph, m, *, rng=None) -> tuple[jax.Array, jax.Array]:
  """(users [U, d], items [I, d]) final representations e* (eq. 13); score = dot product
  (eq. 14). rng=None: no dropout, the whole graph."""
  users, entities = propagate(params, graph, m, rng=rng)
  return users, entities[:graph.n_items]


def distance_correlation(vectors: jax.Array) -> jax.Array:
  """dCor between every two rows of `vectors` [P, n], each row's n coordinates read as samples of
  one variable (eq. 5): [P, P].

  a_jk = |x_j - x_k|, A = a minus its row and column means plus its grand mean (likewise B for
  y); dCov(x, y) = sqrt(max(mean_jk A_jk B_jk, 0) + 1e-8) (the authors' code's guard: a finite
  gradient at 0); dCor(x, y) = dCov(x, y) / sqrt(dCov(x, x) dCov(y, y)).
  """
  a = jnp.abs(vectors[:, :, None] - vectors[:, None, :])                      # [P, n, n]
  a = a - a.mean(1, keepdims=True) - a.mean(2, keepdims=True) + a.mean((1, 2), keepdims=True)
  dcov = jnp.sqrt(jnp.maximum(jnp.einsum("pjk,qjk->pq", a, a) / a.shape[1] ** 2, 0.0)
                  + _DCOV_EPS)
  diag = jnp.diagonal(dcov)
  return dcov / jnp.sqrt(diag[:, None] * diag[None, :])


def independence(vectors: jax.Array, kind: str, temperature: float = 0.2) -> jax.Array:
  """Independence loss of P vectors [P, n]: a scalar.

  distance:    sum_{p < p'} dCor(v_p, v_p')                                   (eq. 4-5)
  cosine:      sum_{p < p'} cos(v_p, v_p')^2
  mutual_info: -sum_p log softmax_p'(cos(v_p, v_p') / tau) at p' = p           (eq. 3)
  """
  p = vectors.shape[0]
  upper = jnp.triu(jnp.ones((p, p), bool), 1)
  if kind == "distance":
    return jnp.sum(jnp.where(upper, distance_correlation(vectors), 0.0))
  unit = ops.l2_normalize(vectors)
  cos = unit @ unit.T
  if kind == "cosine":
    return jnp.sum(jnp.where(upper, cos * cos, 0.0))
  if kind == "mutual_info":
    logits = cos / temperature
    return -jnp.sum(jnp.diagonal(logits) - jax.nn.logsumexp(logits, axis=1))
  raise ValueError(f"config.model.independence={kind!r}: expected one of {INDEPENDENCE}")


def independence_loss(params: dict, m) -> jax.Array:
  """L_IND over the intent embeddings e_p [P, d] (formulation="code": over the logits w [P, R'])."""
  vectors = params["intent"] if m.formulation == "code" else intent_embeddings(params)
  return independence(vectors, m.independence, m.temperature)


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR (eq. 15) on a batch [B, 3] of (user, pos item, neg item) over the e* of a dropout pass
  drawn from `rng`, + l2 * mean_b 0.5 |rows_b|^2 (the batch's table rows, or with l2_on="output"
  its e*) + independence_weight * L_IND (eq. 16)."""
  users, items = user_item_embeddings(params, graph, m, rng=rng)
  u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
  eu, ei, ej = users[u], items[i], items[j]
  reg = ((eu, ei, ej) if m.l2_on == "output"
         else (params["user"][u], params["entity"][i], params["entity"][j]))
  loss = mf.bpr_loss(jnp.sum(eu * ei, -1), jnp.sum(eu * ej, -1), l2, *reg)
  if m.independence_weight:
    loss = loss + m.independence_weight * independence_loss(params, m)
  return loss
