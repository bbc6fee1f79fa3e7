"""CKE (Zhang et al. KDD 2016; "NeuralKG" in the KGAT-AX paper's table), structural part.

    item vector   x_i = e_i + v_i                (v_i: item i's TransR entity embedding)
    score(u, i)   = e_u . x_i                    trained with BPR (cf_loss)
    kg_loss       TransR (docs/model.md §2.1) on (h, r, t, t') KG triples, in the loop's KG phase

The KG phase must draw item-KG triples only (KG relations and their inverses, negatives among
the entities): `config.model.kg_triples = "kg"`. Relations keep their CKG ids, so the relation
tables have a row per CKG relation of which only the KG ones train.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from kgax.graph import Graph
from kgax.models import kgat, mf
from kgax.options import positive

_glorot = jax.nn.initializers.glorot_uniform()


@dataclasses.dataclass(frozen=True)
class Options:
  """CKE's structural part (docs/model.md §3): BPR on e_u . (e_i + v_i), TransR on the KG."""
  name: str = "cke"
  embed_dim: int = 64
  relation_dim: int = 64
  use_kge = True        # TransR in the KG phase of every epoch (not fields)
  kg_triples = "kg"     # KG relations and inverses only, negatives among entities
  kge = "transr"        # kgat.kg_loss's projection
  aux_edges = False

  def __post_init__(self):
    positive("model", self, "embed_dim", "relation_dim")


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised tables: user [n_users, d], item [n_items, d] (CF part), node
  [n_entities, d] (TransR entities: CKG node ids below n_entities), relation [n_relations, k],
  W_r [n_relations, d, k]."""
  d, k = m.embed_dim, m.relation_dim
  keys = jax.random.split(key, 5)
  return {"user": _glorot(keys[0], (graph.n_users, d)),
          "item": _glorot(keys[1], (graph.n_items, d)),
          "node": _glorot(keys[2], (graph.n_entities, d)),
          "relation": _glorot(keys[3], (graph.n_relations, k)),
          "W_r": _glorot(keys[4], (graph.n_relations, d, k))}


def user_item_embeddings(params, graph: Graph, m) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, d], items [n_items, d]) with x_i = e_i + v_i; score = dot product."""
  return params["user"], params["item"] + params["node"][:graph.n_items]


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR on a batch [B, 3] of (user, pos item, neg item) + L2 of e_u, x_i, x_j."""
  users, items = user_item_embeddings(params, graph, m)
  u, i, j = users[batch[:, 0]], items[batch[:, 1]], items[batch[:, 2]]
  return mf.bpr_loss(jnp.sum(u * i, -1), jnp.sum(u * j, -1), l2, u, i, j)


def kg_loss(params, graph: Graph, m, batch: jax.Array, l2: float) -> jax.Array:
  """TransR on a batch [B, 4] of (h, r, t, t') entity/relation ids: KGAT-AX's KG loss
  (docs/model.md §2.1) over the entity table."""
  return kgat.kg_loss(params, graph, m, batch, l2)
