"""BPR and TransR samplers: coverage of the training pairs, negatives that avoid known positives,
negatives restricted to candidate items, and the cold-start catalogue option of the loop."""

import pathlib

import numpy as np
import pytest

from kgax import config as config_lib, experiment, pipeline, sampling
from kgax.data import load

REPO = pathlib.Path(__file__).resolve().parents[1]


def _pairs(rng, n_users=30, n_items=40, n=300):
  keys = np.unique(rng.integers(0, n_users * n_items, n))
  return np.stack([keys // n_items, keys % n_items], 1)


def test_cf_epoch_covers_every_pair_and_avoids_positives():
  rng = np.random.default_rng(0)
  pairs = _pairs(rng)
  known = sampling.PairSet(pairs[:, 0], pairs[:, 1], 40)
  batches = sampling.cf_epoch(np.random.default_rng(1), pairs, 40, 64, known)
  assert batches.shape == (-(-len(pairs) // 64), 64, 3) and batches.dtype == np.int32
  flat = batches.reshape(-1, 3)
  first = flat[:len(pairs)]   # a permutation of the pairs, then random fill
  assert {tuple(p) for p in first[:, :2].tolist()} == {tuple(p) for p in pairs.tolist()}
  assert not known.contains(flat[:, 0], flat[:, 2]).any()
  assert flat[:, 2].min() >= 0 and flat[:, 2].max() < 40
  again = sampling.cf_epoch(np.random.default_rng(1), pairs, 40, 64, known)
  assert np.array_equal(batches, again)


def test_cf_epoch_draws_negatives_from_the_candidates_only():
  rng = np.random.default_rng(0)
  pairs = _pairs(rng)
  known = sampling.PairSet(pairs[:, 0], pairs[:, 1], 40)
  candidates = np.arange(0, 40, 3)
  flat = sampling.cf_epoch(np.random.default_rng(1), pairs, 40, 64, known, candidates)
  neg = flat.reshape(-1, 3)[:, 2]
  assert set(neg.tolist()) <= set(candidates.tolist())
  assert len(set(neg.tolist())) > len(candidates) // 2   # uniform, not one item
  assert not known.contains(flat.reshape(-1, 3)[:, 0], neg).any()
  with pytest.raises(ValueError, match="no candidate"):
    sampling.cf_epoch(np.random.default_rng(1), pairs, 40, 64, known, np.array([], int))


@pytest.mark.parametrize("keys", [[], [7], [3, 1, 3, 3, 0, 9, 1], list(range(50, 0, -2)) * 3])
def test_distinct_is_numpy_unique(keys):
  keys = np.asarray(keys, np.int64)
  got = sampling.distinct(keys)
  assert got.dtype == np.int64
  np.testing.assert_array_equal(got, np.unique(keys))


def test_empty_pair_set_contains_nothing():
  known = sampling.PairSet(np.zeros(0, np.int64), np.zeros(0, np.int64), 5)
  assert not known.contains(np.array([0, 1]), np.array([2, 3])).any()


@pytest.mark.parametrize("n_queries", [500, 200_000])   # plain and sorted-query searches
def test_pair_set_membership_matches_a_python_set(n_queries):
  rng = np.random.default_rng(1)
  a, b = rng.integers(0, 300, 30_000), rng.integers(0, 70, 30_000)
  known = sampling.PairSet(a, b, 70)
  qa, qb = rng.integers(0, 301, n_queries), rng.integers(0, 70, n_queries)
  want = set(zip(a.tolist(), b.tolist()))
  got = known.contains(qa, qb)
  np.testing.assert_array_equal(got, [p in want for p in zip(qa.tolist(), qb.tolist())])
  assert got.any() and not got.all()


def test_redraws_match_redrawing_every_rejected_draw():
  """_draw re-checks only the entries it redrew; the draws are the same as a loop that re-checks
  every entry each round (the rejected ones, in the same order, get the same fresh numbers)."""
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 200, 3000), rng.integers(0, 50, 3000)   # ~1/4 of the pairs known
  known = sampling.PairSet(a, b, 50)

  def reference(gen):
    draw = gen.integers(0, 50, len(a))
    for _ in range(sampling._MAX_REDRAWS):
      bad = known.contains(a, draw)
      if not bad.any():
        break
      draw[bad] = gen.integers(0, 50, bad.sum())
    return draw

  got = sampling._draw(np.random.default_rng(5), a, known, 50)
  np.testing.assert_array_equal(got, reference(np.random.default_rng(5)))
  assert not known.contains(a, got).any()


def test_kg_epoch_negatives_are_not_graph_triples():
  rng = np.random.default_rng(0)
  h, r, t = rng.integers(0, 50, 400), rng.integers(0, 3, 400), rng.integers(0, 50, 400)
  known = sampling.PairSet(h.astype(np.int64) * 3 + r, t, 50)
  quads = sampling.kg_epoch(np.random.default_rng(2), h, r, t, 50, 3, 128, known).reshape(-1, 4)
  assert not known.contains(quads[:, 0].astype(np.int64) * 3 + quads[:, 1], quads[:, 3]).any()
  assert known.contains(quads[:, 0].astype(np.int64) * 3 + quads[:, 1], quads[:, 2]).all()


@pytest.mark.parametrize("train_items", [False, True])
def test_cold_items_are_negatives_only_when_asked(train_items):
  cfg = config_lib.load_file(str(REPO / "configs" / "test.py"))
  cfg.data.cold_items = 0.2
  cfg.train.train_item_negatives = train_items
  exp = experiment.build(cfg)
  ds = exp.ds
  cold = load.cold_item_ids(ds.n_items, 0.2, cfg.data.split_seed)
  cf, _ = pipeline.make_sampler(exp.opts, ds, exp.split, exp.graph)(0)
  drawn_cold = np.isin(cf[..., 2], cold).any()
  assert drawn_cold != train_items
  assert not np.isin(cf[..., 1], cold).any()   # never a positive either way
