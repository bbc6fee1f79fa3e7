"""BPR-MF (Rendle et al. 2009): score(u, i) = e_u . e_i, trained with BPR.

Parameters exist for users and items only (the KG is not used). Also holds `bpr_loss`, the
ranking loss every baseline trains with.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from kgax.graph import Graph
from kgax.options import positive

_glorot = jax.nn.initializers.glorot_uniform()


ROW_TABLES = ("user", "item")   # row-sharded along a mesh's "model" axis


def bpr_loss(pos: jax.Array, neg: jax.Array, l2: float, *vectors: jax.Array) -> jax.Array:
  """mean_b softplus(-(pos_b - neg_b)) + l2 * mean_b sum_v ||v_b||^2 / 2.

  pos, neg: scores [B] of the positive and negative item; vectors: batch embeddings [B, d].
  """
  reg = 0.5 * jnp.mean(sum(jnp.sum(v * v, -1) for v in vectors))
  return jnp.mean(jax.nn.softplus(neg - pos)) + l2 * reg


@dataclasses.dataclass(frozen=True)
class Options:
  """BPR-MF (docs/model.md §3): a user and an item table."""
  name: str = "mf"
  embed_dim: int = 64
  use_kge = False     # no KG loss; the graph is not read (not fields)
  aux_edges = False

  def __post_init__(self):
    positive("model", self, "embed_dim")


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised user [n_users, d] and item [n_items, d] tables."""
  ku, ki = jax.random.split(key)
  return {"user": _glorot(ku, (graph.n_users, m.embed_dim)),
          "item": _glorot(ki, (graph.n_items, m.embed_dim))}


def user_item_embeddings(params, graph: Graph, m) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, d], items [n_items, d]); score = dot product."""
  return params["user"], params["item"]


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR on a batch [B, 3] of (user, pos item, neg item) + L2 of the batch embeddings."""
  u, i, j = params["user"][batch[:, 0]], params["item"][batch[:, 1]], params["item"][batch[:, 2]]
  return bpr_loss(jnp.sum(u * i, -1), jnp.sum(u * j, -1), l2, u, i, j)
