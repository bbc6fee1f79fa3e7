"""Factorization machine (Rendle 2010) over user id, item id and the item's KG neighbours.

KGAT's FM baseline setup: the features of a pair (u, i) are the user id (value 1), the item id
(value 1) and the item's KG neighbour entities: one feature per KG edge (i, r, e) with r in 1..R,
value 1/n_i for the n_i such edges (an entity reached by two relations is two features that share
its embedding). Item i is entity i, so item and neighbour features share the entity table v.
With w the linear weights and s_i = v_i + (1/n_i) sum_e v_e, the second-order FM is

    y(u, i) = w_i + (1/n_i) sum_e w_e + v_u . s_i + q_i,
    q_i = 0.5 * (||s_i||^2 - ||v_i||^2 - (1/n_i^2) sum_e ||v_e||^2)   (the O(kd) FM identity
                                                                       within the item's features)

The global bias and the user's linear weight are the same for all of a user's items: they cancel
in BPR and in ranking and are left out. y is the exact dot product [v_u, 1] . [s_i, lin_i + q_i].
"""

from __future__ import annotations

import jax
import dataclasses

import jax.numpy as jnp

from kgax import ops
from kgax.graph import Graph
from kgax.models import mf

_glorot = jax.nn.initializers.glorot_uniform()


@dataclasses.dataclass(frozen=True)
class Options(mf.Options):
  """FM over user id, item id and the item's KG neighbour entities (docs/model.md §3)."""
  name: str = "fm"


def relation_edges(graph: Graph, first: int, last: int) -> jax.Array:
  """Edge ids [T] of the relations first..last (inclusive), T static; real edges only.

  Sliced from `graph.relation_order` (edges grouped by relation; padding edges have relation 0).
  """
  sizes = graph.relation_sizes
  return graph.relation_order[sum(sizes[:first]):sum(sizes[:last + 1])]


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised factors for users [n_users, d] and entities [n_entities, d]; zero
  linear weights for entities [n_entities]."""
  ku, ke = jax.random.split(key)
  return {"user": _glorot(ku, (graph.n_users, m.embed_dim)),
          "entity": _glorot(ke, (graph.n_entities, m.embed_dim)),
          "entity_bias": jnp.zeros(graph.n_entities)}


def _item_terms(params, graph: Graph) -> tuple[jax.Array, jax.Array]:
  """(s [n_items, d], lin + q [n_items]) from segment sums over the item-headed KG edges."""
  n = graph.n_items
  v, w = params["entity"], params["entity_bias"]
  kg = relation_edges(graph, 1, graph.n_kg_relations)
  heads, tails = graph.heads[kg], graph.tails[kg]   # heads >= n_items are dropped by the sums
  count = ops.segment_sum(jnp.ones(heads.shape, v.dtype), heads, n)
  scale = 1.0 / jnp.maximum(count, 1.0)
  vt = v[tails]
  nb = ops.segment_sum(vt, heads, n) * scale[:, None]
  nb_sq = ops.segment_sum(jnp.sum(vt * vt, -1), heads, n) * scale ** 2
  nb_w = ops.segment_sum(w[tails], heads, n) * scale
  s = v[:n] + nb
  q = 0.5 * (jnp.sum(s * s, -1) - jnp.sum(v[:n] ** 2, -1) - nb_sq)
  return s, w[:n] + nb_w + q


def user_item_embeddings(params, graph: Graph, m) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, d + 1], items [n_items, d + 1]): [v_u, 1] . [s_i, lin_i + q_i] = y(u, i)."""
  s, c = _item_terms(params, graph)
  users = params["user"]
  return (jnp.concatenate([users, jnp.ones((users.shape[0], 1), users.dtype)], -1),
          jnp.concatenate([s, c[:, None]], -1))


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR on y(u, i) - y(u, j) for a batch [B, 3] + L2 of v_u, s_i, s_j."""
  s, c = _item_terms(params, graph)
  u = params["user"][batch[:, 0]]
  i, j = batch[:, 1], batch[:, 2]
  pos = jnp.sum(u * s[i], -1) + c[i]
  neg = jnp.sum(u * s[j], -1) + c[j]
  return mf.bpr_loss(pos, neg, l2, u, s[i], s[j])
