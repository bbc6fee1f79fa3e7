"""The input pipeline: seeded epochs of fixed-shape CF and KG batches, drawn on the host a step
ahead of the device, cut into equal chunks of jitted steps."""

from __future__ import annotations

import concurrent.futures

import numpy as np

from kgax import sampling
from kgax.data.types import Dataset, Split
from kgax.graph import Graph, real_edges
from kgax.options import RunOptions


def make_sampler(opts: RunOptions, ds: Dataset, split: Split, graph: Graph):
  """sample(epoch) -> (CF batches [S, B, 3], KG batches [S', B', 4] or None), seeded per epoch.

  KG batches come when the model trains a KG loss: for the KG phase, or one per CF step with the
  joint schedule. Known positives are kept as sorted keys for negative rejection. BPR negatives
  are uniform over all items, or with config.train.train_item_negatives over the items with a
  training pair (a cold-start split's held-out items are then not in the catalogue at all).
  """
  train = split.train
  known_cf = sampling.PairSet(train[:, 0], train[:, 1], ds.n_items)
  heads, rels, tails = real_edges(graph)
  n_neg = graph.n_nodes - 1   # KG negatives t' are drawn from [0, n_neg)
  m, t = opts.model, opts.train
  if opts.kg_phase and m.kg_triples == "kg":   # KG relations and inverses; entity negatives
    keep = graph.is_kg_relation(rels)
    heads, rels, tails, n_neg = heads[keep], rels[keep], tails[keep], graph.n_entities
  known_kg = sampling.PairSet(heads.astype(np.int64) * graph.n_relations + rels, tails,
                              graph.n_nodes)
  joint = opts.optim.schedule == "joint"
  candidates = sampling.distinct(train[:, 1]) if t.train_item_negatives else None

  def sample(epoch):
    rng = np.random.default_rng([opts.seed, epoch])
    cf = sampling.cf_epoch(rng, train, ds.n_items, t.batch_size, known_cf, candidates)
    if not opts.kg_phase:
      return cf, None
    kg = sampling.kg_epoch(rng, heads, rels, tails, n_neg, graph.n_relations,
                           t.kg_batch_size, known_kg)
    if joint:   # one KG batch per CF step
      kg = kg[np.arange(cf.shape[0]) % kg.shape[0]]
    return cf, kg

  spc = t.steps_per_call
  cf_steps = chunked_steps(sampling.steps_per_epoch(len(train), t.batch_size), spc)
  kg_steps = chunked_steps(sampling.steps_per_epoch(len(heads), t.kg_batch_size), spc)
  sample.steps = (cf_steps, cf_steps if joint else kg_steps)   # optimizer steps per epoch
  return sample


class Prefetch:
  """`sample(epoch)` with the next epoch (up to `stop`) drawn on a background thread while the
  device trains on this one; numpy releases the GIL in the sorting and searching that dominate
  sampling, so on an accelerator the host's sampling hides behind the device's steps. Epochs
  are seeded independently: the batches are the same as calling `sample` in order."""

  def __init__(self, sample, start: int, stop: int):
    self._sample, self._stop = sample, stop
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kgax-sample")
    self._next = None
    self._submit(start)

  def _submit(self, epoch: int):
    self._next = (epoch, self._pool.submit(self._sample, epoch)) if epoch < self._stop else None

  def __call__(self, epoch: int):
    if self._next is not None and self._next[0] == epoch:
      batches = self._next[1].result()
    else:
      batches = self._sample(epoch)
    self._submit(epoch + 1)
    return batches

  def close(self):
    """Returns at once: an epoch being drawn (after an early stop) finishes in the background
    while the caller restores the best checkpoint and evaluates."""
    self._pool.shutdown(wait=False, cancel_futures=True)


def chunked_steps(n: int, size: int) -> int:
  """Steps run for n batches in equal chunks of at most `size` (see chunks)."""
  calls = -(-n // size)
  return calls * -(-n // calls)


def chunks(batches: np.ndarray, size: int):
  """Splits [S, B, c] into ceil(S / size) equal chunks of at most `size` steps.

  The chunk length is chosen so that at most (calls - 1) steps are repeated to even out the last
  chunk (18 steps in chunks of up to 16 run as 2 x 9, not 2 x 16 with 14 repeated steps).
  """
  n = batches.shape[0]
  total = chunked_steps(n, size)
  if total > n:   # a few steps seen twice, so that every call has the same shape
    batches = batches[np.arange(total) % n]
  return batches.reshape(-(-n // size), -1, *batches.shape[1:])
