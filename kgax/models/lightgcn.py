"""LightGCN (He et al. SIGIR 2020): linear propagation over the user-item graph, no KG.

    e(0)     = the user and item tables
    e(k+1)_u = sum over training items i of u:  e(k)_i / sqrt(|N_u| |N_i|)     (and symmetrically
    e(k+1)_i = sum over training users u of i:  e(k)_u / sqrt(|N_u| |N_i|)      for items)
    e*       = mean over k = 0..K of e(k);   score(u, i) = e*_u . e*_i
    cf_loss  = BPR + L2 of the batch's layer-0 rows (as the reference code)

The propagation reads only the CKG's interact edges (relation 0, user -> item); the KG and aux
facts are ignored. It is a linear map of the tables, so the whole graph is propagated at every
training step and for evaluation alike. On a mesh with a "model" axis, the interactions are cut
at the two tables' shard boundaries (`partition_edges`), so each device sums the messages of its
own user and item rows.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from kgax import ops
from kgax.graph import Graph, HeadBlocks, cut_blocks, per_block, real_edges
from kgax.models import mf
from kgax.options import non_negative


ROW_TABLES = ("user", "item")   # row-sharded along a mesh's "model" axis


@dataclasses.dataclass(frozen=True)
class Options(mf.Options):
  """LightGCN (docs/model.md §3): linear propagation over the interact edges only."""
  name: str = "lightgcn"
  n_layers: int = 3     # K propagation layers; the score uses the mean of layers 0..K

  def __post_init__(self):
    super().__post_init__()
    non_negative("model", self, "n_layers")


def init(key: jax.Array, m: Options, graph: Graph) -> dict:
  """Xavier-initialised user [n_users, d] and item [n_items, d] tables (layer 0)."""
  return mf.init(key, m, graph)


def interactions(graph: Graph, dtype=jnp.float32) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(users [M], items [M], norm [M]): the interact edges, sorted by user, with their symmetric
  normalisation 1 / sqrt(|N_u| |N_i|); M (static) counts the graph's relation-0 edges, padding
  edges (weight 0) included, which point at the sink and get norm 0."""
  edges = graph.relation_order[:graph.relation_sizes[0]]   # relation 0, in (head, tail) order
  real = graph.weights[edges] > 0
  users = jnp.where(real, graph.heads[edges] - graph.user_start, graph.n_users)
  items = jnp.where(real, graph.tails[edges], graph.n_items)
  w = real.astype(dtype)
  deg_u = ops.segment_sum(w, users, graph.n_users, indices_are_sorted=True)
  deg_i = ops.segment_sum(w, items, graph.n_items)
  inv = lambda deg, ids: jax.lax.rsqrt(jnp.maximum(deg, 1.0))[jnp.minimum(ids, deg.shape[0] - 1)]
  return users, items, w * inv(deg_u, users) * inv(deg_i, items)


@flax.struct.dataclass
class Blocks:
  """The interactions cut at the shard boundaries of the user and the item table (a mesh's
  "model" axis): by user, in blocks of user rows, for the users' sums; by item, in blocks of
  item rows, for the items'. Padding entries (norm 0) have a head past their block."""
  users: jax.Array        # [n * Su] the user of each interaction, by user block
  user_items: jax.Array   # [n * Su] its item
  user_norm: jax.Array    # [n * Su] 1 / sqrt(|N_u| |N_i|)
  items: jax.Array        # [n * Si] the item of each interaction, by item block
  item_users: jax.Array   # [n * Si] its user
  item_norm: jax.Array    # [n * Si]
  by_user: HeadBlocks = flax.struct.field(pytree_node=False)
  by_item: HeadBlocks = flax.struct.field(pytree_node=False)
  n_users: int = flax.struct.field(pytree_node=False)
  n_items: int = flax.struct.field(pytree_node=False)


def partition_edges(graph: Graph, mesh, axis: str = "model") -> Blocks:
  """`graph`'s interactions as Blocks for tables row-sharded over `axis` of `mesh`."""
  h, r, t = real_edges(graph)
  inter = r == 0
  u, i = h[inter] - graph.user_start, t[inter]   # sorted by user, then item
  deg_u = np.bincount(u, minlength=graph.n_users).astype(np.float32)
  deg_i = np.bincount(i, minlength=graph.n_items).astype(np.float32)
  norm = (1 / np.sqrt(deg_u[u])) * (1 / np.sqrt(deg_i[i]))
  n = mesh.shape[axis]
  by_user = HeadBlocks(mesh, axis, -(-graph.n_users // n))
  by_item = HeadBlocks(mesh, axis, -(-graph.n_items // n))
  order = np.argsort(i, kind="stable")
  out = {}
  for name, heads, tails, w, blocks in (("user", u, i, norm, by_user),
                                        ("item", i[order], u[order], norm[order], by_item)):
    index, padded = cut_blocks(heads, n, blocks.rows)
    other, weight = np.zeros(len(padded), np.int32), np.zeros(len(padded), np.float32)
    other[index], weight[index] = tails, w
    out[name] = (jnp.asarray(padded, jnp.int32), jnp.asarray(other), jnp.asarray(weight))
  (us, ui, un), (it, iu, inn) = out["user"], out["item"]
  return Blocks(us, ui, un, it, iu, inn, by_user, by_item, graph.n_users, graph.n_items)


def propagate(user: jax.Array, item: jax.Array, graph: Graph | Blocks, n_layers: int):
  """(users [n_users, d], items [n_items, d]): the mean of layers 0..n_layers."""
  if isinstance(graph, Blocks):
    def sums(blocks, heads, other, norm, table, n):
      data = norm[:, None] * table[other]
      return per_block(lambda h, d: ops.segment_sum(d, h, blocks.rows, indices_are_sorted=True),
                       blocks, heads, data)[:n]
    g = graph
    step = lambda user, item: (
        sums(g.by_user, g.users, g.user_items, g.user_norm, item, g.n_users),
        sums(g.by_item, g.items, g.item_users, g.item_norm, user, g.n_items))
  else:
    users, items, norm = interactions(graph, user.dtype)
    norm = norm[:, None]
    step = lambda user, item: (
        ops.segment_sum(norm * item[jnp.minimum(items, graph.n_items - 1)], users,
                        graph.n_users, indices_are_sorted=True),
        ops.segment_sum(norm * user[jnp.minimum(users, graph.n_users - 1)], items,
                        graph.n_items))
  out_u, out_i = user, item
  for _ in range(n_layers):
    user, item = step(user, item)
    out_u, out_i = out_u + user, out_i + item
  return out_u / (n_layers + 1), out_i / (n_layers + 1)


def user_item_embeddings(params, graph: Graph | Blocks, m) -> tuple[jax.Array, jax.Array]:
  """(users [n_users, d], items [n_items, d]) after propagation; score = dot product."""
  return propagate(params["user"], params["item"], graph, m.n_layers)


def cf_loss(params, graph: Graph, m, batch: jax.Array, rng: jax.Array, l2: float) -> jax.Array:
  """BPR on a batch [B, 3] of (user, pos item, neg item) over the propagated embeddings + L2 of
  the batch's layer-0 rows."""
  users, items = user_item_embeddings(params, graph, m)
  u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
  pos = jnp.sum(users[u] * items[i], -1)
  neg = jnp.sum(users[u] * items[j], -1)
  return mf.bpr_loss(pos, neg, l2, params["user"][u], params["item"][i], params["item"][j])
