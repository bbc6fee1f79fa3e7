"""Seeded, vectorised, fixed-shape samplers for BPR triples and KG quadruples.

A whole epoch is drawn at once on the host with numpy (no Python loop over examples); negatives
are drawn uniformly and redrawn where they hit a known positive (membership by binary search
over sorted int64 keys).
"""

from __future__ import annotations

import numpy as np

_MAX_REDRAWS = 50
_SORT_QUERIES = 1 << 16


def distinct(keys: np.ndarray) -> np.ndarray:
  """The sorted distinct values of `keys`: a sort and a mask (np.unique hashes first in numpy 2.4,
  several times slower on millions of int64)."""
  keys = np.sort(keys)
  return keys[np.concatenate([keys[:1] == keys[:1], keys[1:] != keys[:-1]])]


class PairSet:
  """Membership test for (a, b) pairs with b < width, via sorted int64 keys."""

  def __init__(self, a: np.ndarray, b: np.ndarray, width: int):
    self.width = int(width)
    self.keys = distinct(np.asarray(a, np.int64) * self.width + np.asarray(b, np.int64))

  def __contains__(self, pair) -> bool:
    return bool(self.contains(np.asarray([pair[0]]), np.asarray([pair[1]]))[0])

  def contains(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.asarray(a, np.int64) * self.width + np.asarray(b, np.int64)
    if q.size > _SORT_QUERIES:   # binary searches in key order walk memory forwards: sorting
      order = np.argsort(q)      # the queries first is several times faster on large epochs
      pos = np.empty(q.shape, np.intp)
      pos[order] = np.searchsorted(self.keys, q[order])
    else:
      pos = np.searchsorted(self.keys, q)
    pos = np.minimum(pos, len(self.keys) - 1)
    return self.keys[pos] == q if len(self.keys) else np.zeros(q.shape, bool)


def _draw(rng, a, known: PairSet, n: int, values: np.ndarray | None = None) -> np.ndarray:
  """For each a[k], a uniform draw from [0, n) (or from `values`, n = len(values)), redrawn while
  (a[k], draw) is a known pair."""
  pick = (lambda i: i) if values is None else (lambda i: values[i])
  draw = rng.integers(0, n, len(a))
  todo = np.arange(len(a))          # only redrawn entries need checking again
  for _ in range(_MAX_REDRAWS):
    bad = todo[known.contains(a[todo], pick(draw[todo]))]
    if not len(bad):
      break
    draw[bad] = rng.integers(0, n, len(bad))
    todo = bad
  return pick(draw)


def steps_per_epoch(n: int, batch_size: int) -> int:
  return max(1, -(-n // batch_size))


def cf_epoch(rng: np.random.Generator, train: np.ndarray, n_items: int, batch_size: int,
             known: PairSet, candidates: np.ndarray | None = None) -> np.ndarray:
  """One epoch of BPR triples: int32 [steps, batch_size, 3] (user, positive item, negative item).

  Every training pair appears once per epoch in a random order; the last batch is filled with
  extra random pairs so that every step has the same shape. Negatives are uniform over
  [0, n_items), or over the item ids in `candidates` when given (e.g. the items that have a
  training pair, so that items kept out of training are never pushed down as negatives).
  """
  n_steps = steps_per_epoch(len(train), batch_size)
  order = rng.permutation(len(train))
  fill = rng.integers(0, len(train), n_steps * batch_size - len(train))
  pos = train[np.r_[order, fill]]
  values = None if candidates is None else np.asarray(candidates)
  if values is not None and not len(values):
    raise ValueError("cf_epoch: no candidate negative items")
  neg = _draw(rng, pos[:, 0], known, n_items if values is None else len(values), values)
  return np.stack([pos[:, 0], pos[:, 1], neg], 1).astype(np.int32).reshape(n_steps, batch_size, 3)


def kg_epoch(rng: np.random.Generator, heads: np.ndarray, relations: np.ndarray, tails: np.ndarray,
             n_nodes: int, n_relations: int, batch_size: int, known: PairSet) -> np.ndarray:
  """One epoch of TransR quadruples: int32 [steps, batch_size, 4] (h, r, t, t').

  Real CKG edges are visited once per epoch in a random order; t' is uniform over the nodes with
  (h, r, t') not in the graph. `known` holds keys (h * n_relations + r, t).
  """
  n = len(heads)
  n_steps = steps_per_epoch(n, batch_size)
  idx = np.r_[rng.permutation(n), rng.integers(0, n, n_steps * batch_size - n)]
  h, r, t = heads[idx], relations[idx], tails[idx]
  hr = h.astype(np.int64) * n_relations + r
  neg = _draw(rng, hr, known, n_nodes)
  return np.stack([h, r, t, neg], 1).astype(np.int32).reshape(n_steps, batch_size, 4)
