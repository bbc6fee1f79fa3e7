"""Mesh and shardings: batches split along a "data" axis, parameters and graph replicated."""

from __future__ import annotations

import jax
from jax.sharding import NamedSharding, PartitionSpec as P


def make_mesh(n_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh over all (or the first n) devices, axis "data"."""
  n = n_devices or jax.device_count()
  return jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n])


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh, axis: int = 0) -> NamedSharding:
  """Shards dimension `axis` of an array along "data"."""
  return NamedSharding(mesh, P(*([None] * axis), "data"))


def peak_memory() -> int | None:
  """Peak bytes in use on the first device, where the backend reports it (GPU/TPU)."""
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")
