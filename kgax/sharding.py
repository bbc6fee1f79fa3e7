"""Mesh and shardings on a 2-D device mesh ("data", "model").

Batches are split along "data". The model's row tables (its `ROW_TABLES`: the node table of
KGAT/KGAT-AX, the user and item tables of MF and LightGCN), and their optimizer state, are
row-sharded along "model"; every other array is replicated. GSPMD (jit with these shardings)
inserts the collectives, e.g. the gather of the tail rows an edge aggregation reads from other
devices. A mesh of shape (n, 1) is plain data parallelism: nothing is padded or sharded by row. On a
"model" axis, the KGAT family's and LightGCN's edges are cut at their tables' shard boundaries
(`step_graph`), so that each device aggregates the edges of its own rows.

A sharded dimension must divide evenly, so `Layout` pads each table with zero rows to a multiple
of the "model" size and `trim`s them off before the model sees its parameters: a padded row
receives no gradient and stays zero under Adam. Checkpoints hold the padded arrays; restoring
onto another mesh pads or truncates those zero rows (kgax/checkpoint.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from kgax import graph as graph_lib

AXES = ("data", "model")


def mesh_shape(shape: Sequence[int], n_devices: int) -> tuple[int, int]:
  """(data, model) for `shape` with one -1 (all the devices the other axis leaves) filled in;
  ValueError naming config.train.mesh when it does not fit `n_devices`."""
  shape = tuple(int(s) for s in shape)
  data, model = shape
  if data == -1 and model > 0 and n_devices % model == 0:
    data = n_devices // model
  elif model == -1 and data > 0 and n_devices % data == 0:
    model = n_devices // data
  if data < 1 or model < 1 or data * model > n_devices or n_devices % (data * model):
    raise ValueError(f"config.train.mesh={shape}: does not fit the {n_devices} devices (give "
                     "(data, model) with data * model dividing the device count; -1 for one axis "
                     "takes the rest)")
  return data, model


def make_mesh(shape: Sequence[int] | int | None = None) -> Mesh:
  """The ("data", "model") mesh of `shape` over the first data * model devices (all processes');
  an int n is (n, 1), None is every device on "data"."""
  n = jax.device_count()
  if shape is None:
    shape = (-1, 1)
  elif isinstance(shape, int):
    shape = (shape, 1)
  data, model = mesh_shape(shape, n)
  return jax.make_mesh((data, model), AXES, axis_types=(AxisType.Auto,) * 2,
                       devices=jax.devices()[:data * model])


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh, axis: int = 0) -> NamedSharding:
  """Shards dimension `axis` of an array along "data" (replicated along "model")."""
  return NamedSharding(mesh, P(*([None] * axis), "data"))


def all_devices(mesh) -> NamedSharding:
  """Shards dimension 0 along every device of the mesh (evaluation's users)."""
  return NamedSharding(mesh, P(mesh.axis_names))


def global_array(x, sharding: NamedSharding):
  """A host array that every process holds whole, as one array over the mesh of `sharding`
  (each process fills its own devices' shards); a jax.Array is returned as it is."""
  if isinstance(x, jax.Array):
    return x
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def graph_shardings(mesh, graph, shard_edges: bool = False):
  """Shardings for a Graph: replicated, or with `shard_edges` its edge arrays ([E]: heads,
  relations, tails, weights and the edge permutations) split over every device of the mesh.
  GSPMD then partitions the per-edge work (gathers, attention logits, messages) and places the
  exchanges; the node-size arrays stay replicated. ValueError naming config.train.shard_edges
  when the device count does not divide the padded edge count."""
  rep = replicated(mesh)
  if graph.blocks is not None:   # head blocks (graph.partition_by_head): one per device of its axis
    edges = NamedSharding(mesh, P(graph.blocks.axis))
    return jax.tree.map(lambda x: edges if x.shape and x.shape[0] == graph.n_edges else rep, graph)
  if not shard_edges:
    return jax.tree.map(lambda _: rep, graph)
  if graph.n_edges % mesh.size:
    raise ValueError(f"config.train.shard_edges=True: the {mesh.size} devices of the mesh do not "
                     f"divide the {graph.n_edges} padded edges; use a power-of-two device count "
                     "(edges are padded to a multiple of 1024)")
  edges = NamedSharding(mesh, P(mesh.axis_names))
  return jax.tree.map(lambda x: edges if x.shape and x.shape[0] == graph.n_edges else rep, graph)


def step_graph(mesh, graph, lib, shard_edges: bool = False):
  """(the graph a training step on `mesh` reads, its shardings). With a "model" axis of more
  than one device, a model family with a `partition_edges(graph, mesh, axis)` gets its edges
  cut at its row tables' shard boundaries (KGAT: kgax/graph.py `partition_by_head`; LightGCN:
  its interactions), so each device sums the edges of its own rows; otherwise
  `graph_shardings`."""
  partition = getattr(lib, "partition_edges", None)
  if mesh.shape["model"] > 1 and partition is not None:
    graph = partition(graph, mesh, "model")
    if not isinstance(graph, graph_lib.Graph):   # every array an edge block
      return graph, jax.tree.map(lambda _: NamedSharding(mesh, P("model")), graph)
  return graph, graph_shardings(mesh, graph, shard_edges)


def place(tree, shardings):
  """Host arrays `tree` put on the mesh of `shardings` (of every process: each puts its own
  shards)."""
  if jax.process_count() == 1:
    return jax.device_put(tree, shardings)
  return jax.tree.map(global_array, jax.tree.map(np.asarray, tree), shardings)


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where each array of a training state lives: `tables` (top-level parameter names) with
  `rows` natural rows each, padded to a multiple of the mesh's "model" size and row-sharded
  along it; everything else replicated."""
  mesh: Mesh
  rows: dict[str, int]

  @classmethod
  def for_model(cls, mesh: Mesh, lib, params: dict) -> Layout:
    """The layout of a model family's `ROW_TABLES` (none: everything replicated)."""
    tables = getattr(lib, "ROW_TABLES", ())
    if mesh.shape["model"] == 1:
      tables = ()
    return cls(mesh, {name: int(params[name].shape[0]) for name in tables if name in params})

  @property
  def model_size(self) -> int:
    return self.mesh.shape["model"]

  def padded_rows(self, name: str) -> int:
    return math.ceil(self.rows[name] / self.model_size) * self.model_size

  def _table(self, path) -> str | None:
    for key in path:
      name = getattr(key, "key", None)
      if name in self.rows:
        return name
    return None

  def _map(self, fn, tree):
    def leaf(path, x):
      name = self._table(path)
      if name is None or getattr(x, "ndim", 0) < 1:
        return fn(None, x)
      return fn(name, x)
    return jax.tree_util.tree_map_with_path(leaf, tree)

  def pad(self, tree):
    """Zero rows appended to every table leaf (parameters and their optimizer moments)."""
    def pad(name, x):
      if name is None or x.shape[0] != self.rows[name]:
        return x
      extra = self.padded_rows(name) - x.shape[0]
      if not extra:
        return x
      return jax.numpy.concatenate([x, jax.numpy.zeros((extra, *x.shape[1:]), x.dtype)])
    return self._map(pad, tree)

  def trim(self, tree):
    """The tree with each table cut back to its natural rows (inside jit: a slice)."""
    return self._map(lambda name, x: x if name is None else x[:self.rows[name]], tree)

  def shardings(self, tree):
    """NamedShardings for `tree` (padded): tables row-sharded along "model", the rest
    replicated."""
    rep = replicated(self.mesh)
    def spec(name, x):
      if name is None:
        return rep
      return NamedSharding(self.mesh, P("model", *([None] * (x.ndim - 1))))
    return self._map(spec, tree)

  def place(self, tree):
    """`tree` padded and put on the mesh (of every process: each puts its own shards)."""
    tree = self.pad(tree)
    return place(tree, self.shardings(tree))

  def abstract(self, tree):
    """ShapeDtypeStructs of the placed `tree`, with their shardings (a restore target)."""
    padded = jax.eval_shape(self.pad, tree)
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        padded, self.shardings(padded))


def bytes_per_device(tree, shardings) -> int:
  """Bytes of `tree` (arrays or ShapeDtypeStructs) held by one device under `shardings`."""
  total = 0
  for x, sh in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
    shape = sh.shard_shape(x.shape) if x.ndim else ()
    total += int(np.prod(shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize
  return total


def peak_memory() -> int | None:
  """Peak bytes in use on this process's first device, where the backend reports it (GPU/TPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


__all__ = ["AXES", "mesh_shape", "make_mesh", "replicated", "batch_sharded", "all_devices",
           "global_array", "graph_shardings", "step_graph", "place", "Layout", "bytes_per_device",
           "peak_memory"]
