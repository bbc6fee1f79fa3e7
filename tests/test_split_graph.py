"""Splits (determinism, proportions) and the CKG layout (inverses, sorting, padding, aux)."""

import numpy as np
import pytest

from kgax.data import AuxFacts, DataError, Dataset, split
from kgax.data.split import holdout, split_dataset
from kgax.graph import GraphOptions, build_graph


def _pairs(n_users=50, n_items=40, seed=0):
  rng = np.random.default_rng(seed)
  pairs = np.stack([rng.integers(0, n_users, 3000), rng.integers(0, n_items, 3000)], 1)
  return np.unique(pairs, axis=0)


@pytest.mark.parametrize("n, users, items",
                         [(5000, 300, 40), (5000, 40, 2000), (30, 3, 4), (0, 1, 1)])
def test_holdout_orderings_match_lexsort(n, users, items):
  """The split's two orderings are np.lexsort's (its first definition), duplicates and tied keys
  included, so the same seed still gives the same bytes."""
  rng = np.random.default_rng(n + users)
  pairs = np.c_[rng.integers(0, users, n), rng.integers(0, items, n)]
  np.testing.assert_array_equal(split._by_user_item(pairs),
                                np.lexsort((pairs[:, 1], pairs[:, 0])))
  for keys in (rng.random(n), rng.integers(0, 3, n).astype(float)):   # distinct / tied keys
    np.testing.assert_array_equal(split._by_user_then(pairs[:, 0], keys),
                                  np.lexsort((keys, pairs[:, 0])))


def test_holdout_is_deterministic_and_per_user():
  pairs = _pairs()
  kept1, held1 = holdout(pairs, 0.2, seed=7)
  kept2, held2 = holdout(pairs[::-1].copy(), 0.2, seed=7)   # input order does not matter
  assert kept1.tobytes() == kept2.tobytes() and held1.tobytes() == held2.tobytes()
  kept3, _ = holdout(pairs, 0.2, seed=8)
  assert kept3.tobytes() != kept1.tobytes()
  # Disjoint, complete, and round(20%) per user.
  both = np.concatenate([kept1, held1])
  assert len(np.unique(both, axis=0)) == len(pairs)
  for u in np.unique(pairs[:, 0]):
    n = (pairs[:, 0] == u).sum()
    assert (held1[:, 0] == u).sum() == max(int(np.floor(0.2 * n + 0.5)), int(n >= 2))


def test_holdout_keeps_one_item_for_tiny_users():
  pairs = np.array([[0, 1], [1, 2], [1, 3]])
  kept, held = holdout(pairs, 0.5, seed=0)
  assert set(map(tuple, kept[:, :1].tolist())) == {(0,), (1,)}
  assert len(held) == 1 and held[0, 0] == 1


def _dataset(presplit=False):
  pairs = _pairs(10, 6)
  kg = np.array([[0, 0, 6], [1, 0, 6], [2, 1, 7], [6, 1, 7]])
  aux = AuxFacts(owner=np.array([0, 0, 3, 1]), owner_is_user=np.array([False, False, False, True]),
                 node=np.array([0, 1, 1, 2]), weight=np.array([3.0, 1.0, 2.0, 1.0], np.float32),
                 node_attr=np.array([0, 0, 1]),
                 node_names=np.array(["g=a", "g=b", "age=1"], object),
                 attr_names=("genome", "age"))
  test = pairs[::5] if presplit else None
  inter = np.delete(pairs, np.s_[::5], 0) if presplit else pairs
  return Dataset(name="toy", n_users=10, n_items=6, n_entities=8, interactions=inter, kg=kg,
                 relation_names=("r0", "r1"), aux=aux, test=test).validate()


def test_split_dataset_raw_and_presplit():
  ds = _dataset()
  s = split_dataset(ds, seed=1)
  total = np.concatenate([s.train, s.valid, s.test])
  assert len(np.unique(total, axis=0)) == len(ds.interactions) == len(total)
  s2 = split_dataset(ds, seed=1)
  assert all(a.tobytes() == b.tobytes() for a, b in zip((s.train, s.valid, s.test),
                                                        (s2.train, s2.valid, s2.test)))
  pre = _dataset(presplit=True)
  sp = split_dataset(pre, seed=1)
  np.testing.assert_array_equal(sp.test, pre.test)
  assert len(sp.train) + len(sp.valid) == len(pre.interactions)


def test_split_rejects_empty():
  ds = _dataset()
  empty = Dataset(name="empty", n_users=1, n_items=1, n_entities=1,
                  interactions=np.zeros((0, 2), np.int64), kg=np.zeros((0, 3), np.int64),
                  relation_names=())
  with pytest.raises(DataError, match="empty: no interactions"):
    split_dataset(empty)
  with pytest.raises(DataError, match="fraction"):
    holdout(ds.interactions, 1.5, 0)


def test_graph_layout():
  ds = _dataset()
  train = ds.interactions[:30]
  g = build_graph(ds, train, GraphOptions(pad_to=64))
  assert (g.user_start, g.aux_start, g.n_nodes, g.sink) == (8, 18, 22, 21)
  assert g.n_fwd_relations == 1 + 2 + 2 and g.n_relations == 10
  h, r, t, w = (np.asarray(a) for a in (g.heads, g.relations, g.tails, g.weights))
  assert len(h) % 64 == 0 and np.all(np.diff(h) >= 0)
  real = w > 0
  assert real.sum() == g.n_real_edges
  assert np.all(h[~real] == g.sink) and np.all(t[~real] == g.sink)
  edges = set(zip(h[real].tolist(), r[real].tolist(), t[real].tolist()))
  expected = set()
  for u, i in np.unique(train, axis=0):
    expected |= {(u + 8, 0, i), (i, 5, u + 8)}
  for a, rel, b in ds.kg:
    expected |= {(a, rel + 1, b), (b, rel + 1 + 5, a)}
  for o, is_user, n in zip(ds.aux.owner, ds.aux.owner_is_user, ds.aux.node):
    owner = o + 8 if is_user else o
    rel = 3 + ds.aux.node_attr[n]
    expected |= {(owner, rel, n + 18), (n + 18, rel + 5, owner)}
  assert edges == expected
  # Fusion weights normalised per owner; padding facts point at the sink with weight 0.
  owners = np.asarray(g.aux_owners)
  own, fw = owners[np.asarray(g.aux_owner_index)], np.asarray(g.aux_weight)
  sums = np.bincount(own, weights=fw, minlength=g.n_nodes)
  np.testing.assert_allclose(sums[[0, 3, 9]], 1.0, rtol=1e-6)
  np.testing.assert_allclose(fw[(own == 0)], [0.75, 0.25], rtol=1e-6)
  assert np.all(fw[own == g.sink] == 0)
  # The fusion's rows: each distinct owner once, ascending (the sink for the padding facts), and
  # the facts sorted by owner.
  assert np.all(np.diff(owners) > 0) and set(owners) == {0, 3, 9, g.sink}
  assert np.all(np.diff(np.asarray(g.aux_owner_index)) >= 0)
  # Edges grouped by relation: the permutation lists each relation's edges contiguously.
  perm = np.asarray(g.relation_order)
  assert np.all(np.diff(r[perm]) >= 0)
  assert np.all(np.diff(perm)[np.diff(r[perm]) == 0] > 0)   # stable: edge order within each
  assert list(np.bincount(r, minlength=g.n_relations)) == list(g.relation_sizes)
  tails = np.asarray(g.tails)[np.asarray(g.tail_order)]
  assert np.all(np.diff(tails) >= 0)


def test_graph_without_aux_edges_or_inverses():
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(aux_edges=False, inverse=False, pad_to=8))
  r = np.asarray(g.relations)[: g.n_real_edges]
  assert r.max() < 3   # interact and the two KG relations only
  assert g.n_real_edges == len(ds.interactions) + len(ds.kg)


def test_graph_projection_pairs():
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=64))
  h, r, t = (np.asarray(a) for a in (g.heads, g.relations, g.tails))
  for side, nodes, index, sizes in (("head", h, g.head_pair_index, g.head_pair_sizes),):
    pair_nodes = np.asarray(getattr(g, f"{side}_pair_nodes"))
    pair_rel = np.repeat(np.arange(g.n_relations), sizes)
    idx = np.asarray(index)
    np.testing.assert_array_equal(pair_nodes[idx], nodes)   # each edge points at its own pair
    np.testing.assert_array_equal(pair_rel[idx], r)
    assert len(set(zip(pair_nodes, pair_rel))) == len(pair_nodes)   # pairs are distinct
    keys = list(zip(pair_rel, pair_nodes))
    assert keys == sorted(keys)                                      # by relation, then node


@pytest.mark.parametrize("n_blocks", [1, 3, 4])
def test_partition_by_head(n_blocks):
  """The edges cut at a sharded node table's row boundaries: block b holds exactly the real edges
  whose head is one of its rows, in the graph's order, then padding edges (weight 0) whose head
  lies past the block; pair indices, relation and tail orders follow the edges."""
  import types
  from kgax.graph import partition_by_head, real_edges
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=64))
  mesh = types.SimpleNamespace(shape={"model": n_blocks})
  p = partition_by_head(g, mesh, multiple=8)
  rows = -(-g.n_nodes // n_blocks)
  assert p.blocks.rows == rows and p.blocks.n == n_blocks and p.n_edges % n_blocks == 0
  size = p.n_edges // n_blocks
  h, r, t, w = (np.asarray(a) for a in (p.heads, p.relations, p.tails, p.weights))
  H, R, T = real_edges(g)
  pair_nodes, pair = np.asarray(g.head_pair_nodes), np.asarray(p.head_pair_index)
  got = []
  for b in range(n_blocks):
    blk = slice(b * size, (b + 1) * size)
    real = w[blk] > 0
    assert np.all(real[:real.sum()]) and not np.any(real[real.sum():])   # padding at the end
    assert np.all((h[blk][real] >= b * rows) & (h[blk][real] < (b + 1) * rows))
    assert np.all(h[blk][~real] == (b + 1) * rows)   # out of the block: every reduction drops it
    np.testing.assert_array_equal(pair_nodes[pair[blk][real]], h[blk][real])
    got += list(zip(h[blk][real], r[blk][real], t[blk][real]))
  assert got == list(zip(H, R, T))   # the same edges in the same order
  np.testing.assert_array_equal(np.sort(np.asarray(p.tail_order)), np.arange(p.n_edges))
  assert np.all(np.diff(t[np.asarray(p.tail_order)]) >= 0)
  assert sum(p.relation_sizes) == p.n_edges and np.all(np.diff(r[np.asarray(p.relation_order)]) >= 0)
  with pytest.raises(ValueError, match="head blocks"):
    real_edges(p)


@pytest.mark.parametrize("n_blocks", [1, 3])
def test_relation_mean_logits_survive_the_partition(n_blocks):
  """model.attention=relation_mean counts each (head, relation)'s edges: cut into head blocks,
  padding edges included, every real edge keeps the plain graph's logit (the softmax then runs
  per head, and a padding edge's head lies outside every block: test_partition_by_head)."""
  import types
  from kgax.graph import partition_by_head
  from kgax.models.kgat import relation_mean_logits
  ds = _dataset()
  g = build_graph(ds, ds.interactions, GraphOptions(pad_to=64))
  p = partition_by_head(g, types.SimpleNamespace(shape={"model": n_blocks}), multiple=8)
  real = np.asarray(p.weights) > 0
  for power in (1.0, 0.5):
    plain = np.asarray(relation_mean_logits(g, power))[:g.n_real_edges]
    np.testing.assert_allclose(np.asarray(relation_mean_logits(p, power))[real], plain, rtol=1e-6)
    assert len(np.unique(plain)) > 1   # counts differ between pairs
