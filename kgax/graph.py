"""The collaborative knowledge graph (CKG) as static-shape arrays (docs/model.md §1).

Node-id layout, fixed here and nowhere else:

    [0, n_items)                      items (= the first KG entities)
    [n_items, n_entities)             the other KG entities
    [user_start, user_start+n_users)  users            (user_start = n_entities)
    [aux_start, aux_start+n_aux)      aux nodes        (aux_start = n_entities + n_users)
    sink = n_nodes - 1                one padding node: padding edges and facts point here

Relation-id layout (KGAT's, extended with one relation per aux attribute):

    0                 interact (user -> item)
    1 .. R            KG relations
    R+1 .. R+A        aux attributes (owner -> aux node, "has_attr")
    n_fwd + r         the inverse of relation r, with n_fwd = 1 + R + A

Edges are sorted by head (then tail) and padded to a multiple of `pad_to` with (sink, 0, sink)
edges of weight 0, so every array has a static shape and the whole model jits once.

On a mesh whose "model" axis row-shards the node table, `partition_by_head` cuts the edge list
at the table's shard boundaries (`HeadBlocks`): device b holds the edges whose heads are its own
rows, and the reductions over each head's edges (`Graph.head_sum`, `head_softmax`, `head_spmm`)
run on each device's block alone (a shard_map); the tail rows they read from other devices are
gathered by XLA's collectives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from kgax import ops
from kgax.data.types import Dataset
from kgax.sampling import distinct


@dataclasses.dataclass(frozen=True)
class HeadBlocks:
  """The edge arrays cut into `mesh.shape[axis]` equal blocks: block b holds the edges whose head
  is one of the rows [b * rows, (b + 1) * rows), in the graph's (head, relation, tail) order,
  then padding edges whose head is (b + 1) * rows, one past the block (weight 0; every head
  reduction drops them)."""
  mesh: Any   # jax.sharding.Mesh
  axis: str
  rows: int

  @property
  def n(self) -> int:
    return self.mesh.shape[self.axis]


def per_block(fn, blocks: HeadBlocks, heads, *edge_arrays):
  """fn(local head ids [Eb], *blocks of edge_arrays) on each device's block of edges (a
  shard_map over `blocks.axis`; `heads` are global row ids, block b's in [b * rows, (b + 1) *
  rows)), the outputs concatenated over the blocks. A padding edge's local id is the block's
  row count, outside [0, rows): the segment ops drop it."""
  def local(heads, *arrays):
    return fn(heads - jax.lax.axis_index(blocks.axis) * blocks.rows, *arrays)
  spec = P(blocks.axis)
  return jax.shard_map(local, mesh=blocks.mesh, in_specs=(spec,) * (1 + len(edge_arrays)),
                       out_specs=spec)(heads, *edge_arrays)


def cut_blocks(heads: np.ndarray, n: int, rows: int, multiple: int = 128
               ) -> tuple[np.ndarray, np.ndarray]:
  """(index [M], padded heads [n * size]) for `heads` [M] sorted ascending: edge m goes to
  position index[m] of n equal blocks, block b holding the heads of rows [b * rows, (b + 1) *
  rows) in their order and then padding, whose head is (b + 1) * rows."""
  block = heads // rows
  counts = np.bincount(block, minlength=n)
  size = _pad(int(counts.max()) if len(heads) else 0, multiple)
  index = block * size + np.arange(len(heads)) - np.r_[0, np.cumsum(counts)][block]
  padded = np.repeat((np.arange(n, dtype=np.int64) + 1) * rows, size)
  padded[index] = heads
  return index, padded


@flax.struct.dataclass
class Graph:
  """CKG arrays (a pytree: arrays are leaves, sizes are static)."""

  heads: jnp.ndarray      # int32 [E] sorted
  relations: jnp.ndarray  # int32 [E]
  tails: jnp.ndarray      # int32 [E]
  weights: jnp.ndarray    # float32 [E] 1 for real edges, 0 for padding
  # Aux facts [F], sorted by owner: the distinct owners [O] (node ids, ascending; the sink too
  # when facts are padded), each fact's position among them, its aux node and its weight
  # (normalised to sum 1 per owner, 0 for padding). The fusion runs on the O owner rows only.
  aux_owners: jnp.ndarray       # int32 [O]
  aux_owner_index: jnp.ndarray  # int32 [F]
  aux_node: jnp.ndarray         # int32 [F] node id of the aux node
  aux_weight: jnp.ndarray       # float32 [F]
  relation_order: jnp.ndarray  # int32 [E] edge permutation that groups edges by relation
  tail_order: jnp.ndarray  # int32 [E] edge permutation that sorts edges by tail
  # Distinct (head, relation) pairs of the edges, grouped by relation, for per-relation
  # projections W_r e (KGAT's attention): nodes [P], each edge's pair index [E], sizes per relation.
  head_pair_nodes: jnp.ndarray
  head_pair_index: jnp.ndarray
  head_pair_sizes: tuple[int, ...] = flax.struct.field(pytree_node=False)
  relation_sizes: tuple[int, ...] = flax.struct.field(pytree_node=False)  # edges per relation
  n_items: int = flax.struct.field(pytree_node=False)
  n_entities: int = flax.struct.field(pytree_node=False)
  n_users: int = flax.struct.field(pytree_node=False)
  n_aux: int = flax.struct.field(pytree_node=False)
  n_kg_relations: int = flax.struct.field(pytree_node=False)
  n_aux_relations: int = flax.struct.field(pytree_node=False)
  n_real_edges: int = flax.struct.field(pytree_node=False)
  blocks: HeadBlocks | None = flax.struct.field(pytree_node=False, default=None)

  @property
  def user_start(self) -> int:
    return self.n_entities

  @property
  def aux_start(self) -> int:
    return self.n_entities + self.n_users

  @property
  def n_nodes(self) -> int:
    return self.n_entities + self.n_users + self.n_aux + 1

  @property
  def sink(self) -> int:
    return self.n_nodes - 1

  @property
  def n_fwd_relations(self) -> int:
    return 1 + self.n_kg_relations + self.n_aux_relations

  @property
  def n_relations(self) -> int:
    return 2 * self.n_fwd_relations

  @property
  def n_edges(self) -> int:
    return self.heads.shape[0]

  def user_nodes(self, users):
    return users + self.user_start

  # Queries: the only places outside build_graph that decode the layout --------------------

  def is_kg_relation(self, relations):
    """Whether each relation id is a KG relation or the inverse of one (not interact, not aux)."""
    base = relations % self.n_fwd_relations
    return (base >= 1) & (base <= self.n_kg_relations)

  # Reductions over each head's edges: plain sorted segment ops, or with `blocks` one per device.

  def head_sum(self, data, sub=None, n_sub: int = 1):
    """out[h * n_sub + s] = sum of data[e] over the edges e of head h (and sub[e] == s):
    [E, ...] -> [N * n_sub, ...]."""
    extra = () if sub is None else (sub,)
    rows = self.n_nodes if self.blocks is None else self.blocks.rows
    def local(heads, data, *sub):
      ids = heads * n_sub + sub[0] if sub else heads
      return ops.segment_sum(data, ids, rows * n_sub, indices_are_sorted=True)
    if self.blocks is None:
      return local(self.heads, data, *extra)
    return per_block(local, self.blocks, self.heads, data, *extra)[:self.n_nodes * n_sub]

  def head_softmax(self, logits):
    """Softmax of the edge logits [E] over each head's edges (padding edges: 0)."""
    if self.blocks is None:
      return ops.segment_softmax(logits, self.heads, self.n_nodes, indices_are_sorted=True)
    rows = self.blocks.rows
    return per_block(lambda h, x: ops.segment_softmax(x, h, rows, indices_are_sorted=True),
                     self.blocks, self.heads, logits)

  def head_spmm(self, weights, x):
    """out[h] = sum over the edges e of head h of weights[e] * x[tails[e]]: [N, d]
    (ops.weighted_spmm on one block; the gathered product on blocks)."""
    if self.blocks is None:
      return ops.weighted_spmm(weights, x, self.heads, self.tails, self.tail_order)
    return self.head_sum(weights[:, None] * x[self.tails])

  def pretrained_rows(self) -> np.ndarray:
    """bool [N]: the rows a pretrained user-item model has a vector for: users, and items with a
    training pair (an interact edge)."""
    heads, rels, tails = real_edges(self)
    known = np.zeros(self.n_nodes, bool)
    known[self.user_start:self.aux_start] = True
    known[tails[(rels == 0)]] = True
    return known


@dataclasses.dataclass(frozen=True)
class GraphOptions:
  aux_edges: bool = True   # add the augmented triplets (v, has_attr, a) and (a, attr_of, v)
  inverse: bool = True     # add the inverse of every relation
  pad_to: int = 1024       # pad edges and aux facts to a multiple of this


def _pad(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def build_graph(ds: Dataset, train: np.ndarray, options: GraphOptions = GraphOptions()) -> Graph:
  """Builds the CKG from training interactions, KG triples and aux facts.

  Only training interactions enter the graph: validation and test pairs never do.
  """
  n_e, n_u, aux = ds.n_entities, ds.n_users, ds.aux
  user_start, aux_start = n_e, n_e + n_u
  n_nodes = n_e + n_u + aux.n_nodes + 1
  sink = n_nodes - 1
  r_kg0, r_aux0 = 1, 1 + ds.n_relations
  n_fwd = 1 + ds.n_relations + aux.n_attrs

  train = np.asarray(train, np.int64)
  parts = [
      (train[:, 0] + user_start, np.zeros(len(train), np.int64), train[:, 1]),
      (ds.kg[:, 0], ds.kg[:, 1] + r_kg0, ds.kg[:, 2]),
  ]
  owner = np.where(aux.owner_is_user, aux.owner + user_start, aux.owner)
  if options.aux_edges and len(aux):
    parts.append((owner, aux.node_attr[aux.node] + r_aux0, aux.node + aux_start))
  h, r, t = (np.concatenate(x) for x in zip(*parts))
  if options.inverse:
    h, r, t = np.r_[h, t], np.r_[r, r + n_fwd], np.r_[t, h]
  # One edge per (h, r, t): duplicates would double a message's weight.
  # The keys grow with (h, r, t), so the unique keys are the edges in (h, r, t) order.
  key = distinct((h * (2 * n_fwd) + r) * n_nodes + t)
  t, hr = key % n_nodes, key // n_nodes
  h, r = hr // (2 * n_fwd), hr % (2 * n_fwd)
  n_real = len(h)
  n_pad = _pad(n_real, options.pad_to) - n_real
  weights = np.r_[np.ones(n_real, np.float32), np.zeros(n_pad, np.float32)]
  h, r, t = (np.r_[x, np.full(n_pad, v, np.int64)] for x, v in ((h, sink), (r, 0), (t, sink)))

  # Holographic fusion inputs: weights normalised to sum 1 per owner (docs/model.md §2.2).
  w = aux.weight.astype(np.float64)
  if len(aux):
    totals = np.bincount(owner, weights=w, minlength=n_nodes)
    w = w / totals[owner]
  n_fpad = _pad(len(aux), options.pad_to) - len(aux)
  f_owner = np.r_[owner, np.full(n_fpad, sink, np.int64)]
  f_node = np.r_[aux.node + aux_start, np.full(n_fpad, sink, np.int64)]
  f_w = np.r_[w, np.zeros(n_fpad)].astype(np.float32)
  f_order = np.argsort(f_owner, kind="stable")
  f_owners, f_owner_index = np.unique(f_owner[f_order], return_inverse=True)
  # Stable argsorts; relation ids fit int16, for which numpy's stable sort is a radix sort.
  relation_order = np.argsort(r.astype(np.int16 if 2 * n_fwd < 2**15 else np.int64),
                              kind="stable")
  tail_order = np.argsort(t, kind="stable")

  # Distinct (head, relation) pairs, sorted by (relation, head), and each edge's pair: the edges
  # are in (h, r) order, so a pair is a run of edges; only the runs are sorted.
  run = np.r_[True, (h[1:] != h[:-1]) | (r[1:] != r[:-1])]
  run_id = np.cumsum(run) - 1
  pair_key = r[run] * n_nodes + h[run]
  by_relation = np.argsort(pair_key)
  rank = np.empty_like(by_relation)
  rank[by_relation] = np.arange(len(by_relation))
  hp_nodes, hp_index = pair_key[by_relation] % n_nodes, rank[run_id]
  hp_sizes = tuple(int(c) for c in np.bincount(pair_key[by_relation] // n_nodes,
                                                minlength=2 * n_fwd))
  relation_sizes = tuple(int(c) for c in np.bincount(r, minlength=2 * n_fwd))

  i32 = lambda x: jnp.asarray(x, jnp.int32)
  return Graph(
      heads=i32(h), relations=i32(r), tails=i32(t), weights=jnp.asarray(weights),
      aux_owners=i32(f_owners), aux_owner_index=i32(f_owner_index),
      aux_node=i32(f_node[f_order]), aux_weight=jnp.asarray(f_w[f_order]),
      relation_order=i32(relation_order), relation_sizes=relation_sizes,
      tail_order=i32(tail_order),
      head_pair_nodes=i32(hp_nodes), head_pair_index=i32(hp_index), head_pair_sizes=hp_sizes,
      n_items=ds.n_items, n_entities=n_e, n_users=n_u, n_aux=aux.n_nodes,
      n_kg_relations=ds.n_relations, n_aux_relations=aux.n_attrs, n_real_edges=n_real)


def partition_by_head(graph: Graph, mesh, axis: str = "model", multiple: int = 128) -> Graph:
  """`graph` with its edges cut into HeadBlocks at the row boundaries of a node table sharded
  over `axis` of `mesh` (ceil(N / n) rows per device), each block padded to the largest one's
  length (a multiple of `multiple`). The node-size and fact arrays are unchanged."""
  n = mesh.shape[axis]
  rows = -(-graph.n_nodes // n)
  h, r, t = real_edges(graph)
  pair = np.asarray(graph.head_pair_index)[:graph.n_real_edges]
  index, heads = cut_blocks(h, n, rows, multiple)
  size = len(heads)
  rels, pairs = np.zeros(size, np.int64), np.zeros(size, np.int64)
  tails, weights = np.full(size, graph.sink, np.int64), np.zeros(size, np.float32)
  rels[index], tails[index], pairs[index], weights[index] = r, t, pair, 1
  i32 = lambda x: jnp.asarray(x, jnp.int32)
  return graph.replace(
      heads=i32(heads), relations=i32(rels), tails=i32(tails), weights=jnp.asarray(weights),
      head_pair_index=i32(pairs),
      relation_order=i32(np.argsort(rels, kind="stable")),
      tail_order=i32(np.argsort(tails, kind="stable")),
      relation_sizes=tuple(int(c) for c in np.bincount(rels, minlength=graph.n_relations)),
      blocks=HeadBlocks(mesh, axis, rows))


def real_edges(graph: Graph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(heads, relations, tails) of the real (unpadded) edges, as host arrays (of a graph not cut
  into blocks)."""
  if graph.blocks is not None:
    raise ValueError("real_edges: the graph's edges are cut into head blocks; use the "
                     "graph they were cut from")
  return tuple(np.asarray(a)[:graph.n_real_edges]
               for a in (graph.heads, graph.relations, graph.tails))


def find_edges(graph: Graph, heads: jnp.ndarray, relations: jnp.ndarray,
               tails: jnp.ndarray) -> jnp.ndarray:
  """Indices [M] of the edges (heads, relations, tails) [M], which must be in the graph.

  A vectorised binary search over the edges' (head, relation, tail) order (jit-friendly: a fixed
  number of steps, three gathers each).
  """
  n = graph.n_edges
  lo = jnp.zeros(heads.shape, jnp.int32)
  hi = jnp.full(heads.shape, n, jnp.int32)
  for _ in range(max(int(n).bit_length(), 1)):
    mid = (lo + hi) // 2
    h, r, t = graph.heads[mid], graph.relations[mid], graph.tails[mid]
    below = (h < heads) | ((h == heads) & ((r < relations) | ((r == relations) & (t < tails))))
    lo, hi = jnp.where(below, mid + 1, lo), jnp.where(below, hi, mid)
  return lo
