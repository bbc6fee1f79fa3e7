"""Items without a training pair, scored through their KG and aux neighbours (docs/model.md §5.1).

An item that no training pair names has an embedding row that BPR only ever pushed down (it is
drawn as a negative), so it never reaches a top 20. With `eval.cold_items="kg"` such an item is
scored, wherever a model's item embeddings are used (validation, test, `kgax recommend`), as

    n(v)  = mean of e_j over the trained items j linked to node v
    e_i   = c * u_i / |u_i|,   u_i = mean of n(v) over the nodes v linked to item i with an n(v)

where the links are the item's KG triples (either direction) and its aux facts, and c is the
`eval.cold_norm` quantile of the trained items' embedding norms. `eval.cold_items="kg_centered"`
does the same around m, the trained items' mean: every e_j above is e_j - m, and m is added back.
BPR scores do not change when one vector is added to every item (it adds a constant to each
user's scores), so a trained model's items can share an arbitrary offset; the centered rule is
the one that ignores it (impute(E + c) = impute(E) + c), the plain one takes that offset's
direction for every cold item. Every input comes from the
training side: the trained items are those with a training pair, the KG is external, and aux
facts derived from interactions are built from training pairs only (kgax/data/load.py). Items
with a training pair, and cold items with no linked node that a trained item shares, keep their
own rows.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from kgax import ops
from kgax.data.types import Dataset


# eval.cold_items values: "" keeps every item's own row; the others name the rule (centered or
# not). "auto" picks one of RULES on validation at the end of a run (kgax/train.py).
RULES = {"": None, "kg": False, "kg_centered": True}


@flax.struct.dataclass
class ColdItems:
  """The links of `impute` (a pytree: arrays are leaves).

  link_item, link_node: int32 [L] the (item, node) links, node a KG entity id or n_entities +
  an aux node id; warm: bool [n_items] items with a training pair."""
  link_item: jax.Array
  link_node: jax.Array
  warm: jax.Array
  n_nodes: int = flax.struct.field(pytree_node=False)
  norm_quantile: float = flax.struct.field(pytree_node=False)
  centered: bool = flax.struct.field(pytree_node=False, default=False)


def item_links(ds: Dataset) -> np.ndarray:
  """int64 [L, 2] distinct (item, node) links: KG triples with an item at either end, and the
  aux facts that items own (aux node n as node n_entities + n)."""
  h, t = ds.kg[:, 0], ds.kg[:, 2]
  links = [np.stack([h, t], 1), np.stack([t, h], 1)]
  aux = ds.aux
  if len(aux):
    own = ~aux.owner_is_user
    links.append(np.stack([aux.owner[own], ds.n_entities + aux.node[own]], 1))
  links = np.concatenate(links).astype(np.int64).reshape(-1, 2)
  links = links[(links[:, 0] < ds.n_items) & (links[:, 0] != links[:, 1])]
  return np.unique(links, axis=0)


def build(ds: Dataset, train: np.ndarray, norm_quantile: float, centered: bool = False
          ) -> ColdItems:
  """The links of `ds` and the items that `train` (int [P, 2] training pairs) names."""
  links = item_links(ds)
  warm = np.zeros(ds.n_items, bool)
  warm[np.asarray(train)[:, 1]] = True
  return ColdItems(link_item=jnp.asarray(links[:, 0], jnp.int32),
                   link_node=jnp.asarray(links[:, 1], jnp.int32), warm=jnp.asarray(warm),
                   n_nodes=ds.n_entities + ds.aux.n_nodes, norm_quantile=float(norm_quantile),
                   centered=bool(centered))


def shuffled(cold: ColdItems, seed: int) -> ColdItems:
  """The control: the same links with their nodes permuted (every item keeps its number of
  links and every node its number of links; what a link says is lost)."""
  order = np.random.default_rng(seed).permutation(cold.link_node.shape[0])
  return cold.replace(link_node=cold.link_node[order])


def impute(item_emb: jax.Array, cold: ColdItems) -> jax.Array:
  """item_emb [n_items, d] with the rows of cold items that have a usable link replaced."""
  n_items = item_emb.shape[0]
  base = 0.0
  if cold.centered:
    base = jnp.sum(jnp.where(cold.warm[:, None], item_emb, 0), 0) / jnp.sum(cold.warm)
  x = item_emb - base
  from_warm = cold.warm[cold.link_item]
  msg = jnp.where(from_warm[:, None], x[cold.link_item], 0)
  node_mean = ops.segment_mean(msg, jnp.where(from_warm, cold.link_node, cold.n_nodes),
                               cold.n_nodes)
  node_has = ops.segment_sum(from_warm.astype(jnp.int32), cold.link_node, cold.n_nodes) > 0
  usable = ~from_warm & node_has[cold.link_node]
  total = ops.segment_sum(jnp.where(usable[:, None], node_mean[cold.link_node], 0),
                          cold.link_item, n_items)   # zero for an item without a usable link
  norms = jnp.linalg.norm(x, axis=-1)
  target = jnp.nanquantile(jnp.where(cold.warm, norms, jnp.nan), cold.norm_quantile)
  length = jnp.linalg.norm(total, axis=-1, keepdims=True)
  replaced = base + total / jnp.where(length > 0, length, 1) * target
  return jnp.where(length > 0, replaced.astype(item_emb.dtype), item_emb)


__all__ = ["RULES", "ColdItems", "item_links", "build", "shuffled", "impute"]
