"""CFKG (Ai et al. 2018): TransE over the unified graph of users, items and KG entities.

One embedding per CKG node (users included) and per CKG relation; the "interact" relation is
relation 0. With d(h, r, t) = ||e_h + e_r - e_t||^2:

    score(u, i) = -d(u, interact, i)
                = [2 (e_u + e_0), -||e_u + e_0||^2, -1] . [e_i, 1, ||e_i||^2]  (exact dot product)
    cf_loss     softplus(d(u, 0, i) - d(u, 0, j)) on (u, i, j): BPR on the interact relation
    kg_loss     softplus(d(h, r, t) - d(h, r, t')) on the KG phase's (h, r, t, t') quadruples

Which triples the KG phase draws is `config.model.kg_triples`: "kg" (KG relations and their
inverses) or "ckg" (every CKG edge, aux facts included).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from kgax.graph import Graph
from kgax.models import mf
from kgax.options import one_of, positive

_glorot = jax.nn.initializers.glorot_uniform()
KG_TRIPLES = ("kg", "ckg")


@dataclasses.dataclass(frozen=True)
class Options:
  """CFKG (docs/model.md §3): TransE over users, items and entities."""
  name: str = "cfkg"
  embed_dim: int = 64
  kg_triples: str = "kg"   # kg (KG relations and inverses) | ckg (every CKG edge)
  use_kge = True           # TransE on KG triples in the KG phase of every epoch (not a field)
  aux_edges = False

  def __post_init__(self):
    positive("model", self, "embed_dim")
    one_of("model", self, "kg_triples", KG_TRIPLES)


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised node [n_nodes, d] and relation [n_relations, d] tables."""
  kn, kr = jax.random.split(key)
  return {"node": _glorot(kn, (graph.n_nodes, m.embed_dim)),
          "relation": _glorot(kr, (graph.n_relations, m.embed_dim))}


def user_item_embeddings(params, graph: Graph, m) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, d + 2], items [n_items, d + 2]) whose dot product is -d(u, interact, i)."""
  e = params["node"]
  h = e[graph.user_start:graph.user_start + graph.n_users] + params["relation"][0]
  t = e[:graph.n_items]
  ones_u, ones_i = jnp.ones((h.shape[0], 1), h.dtype), jnp.ones((t.shape[0], 1), t.dtype)
  hh, tt = jnp.sum(h * h, -1, keepdims=True), jnp.sum(t * t, -1, keepdims=True)
  return (jnp.concatenate([2 * h, -hh, -ones_u], -1),
          jnp.concatenate([t, ones_i, tt], -1))


def _transe_loss(params, h, r, t, tn, l2: float) -> jax.Array:
  """mean softplus(d(h, r, t) - d(h, r, t')) + l2/2 * mean of the batch's squared norms."""
  e, rel = params["node"], params["relation"][r]
  eh, et, en = e[h], e[t], e[tn]
  d_pos = jnp.sum((eh + rel - et) ** 2, -1)
  d_neg = jnp.sum((eh + rel - en) ** 2, -1)
  return mf.bpr_loss(-d_pos, -d_neg, l2, eh, rel, et, en)


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """The TransE ranking loss on (user node, interact, pos item, neg item) for a batch [B, 3]."""
  users = graph.user_nodes(batch[:, 0])
  return _transe_loss(params, users, jnp.zeros_like(users), batch[:, 1], batch[:, 2], l2)


def kg_loss(params, graph: Graph, m, batch: jax.Array, l2: float) -> jax.Array:
  """The TransE loss on a batch [B, 4] of (h, r, t, t') CKG node/relation ids."""
  return _transe_loss(params, *(batch[:, c] for c in range(4)), l2)
