"""Data-side controls: no KG, a shuffled KG (degrees kept), no aux facts; through load_split."""

import collections
import dataclasses

import numpy as np
import pytest

from kgax.data import controls, load, synthetic
from kgax.data.types import AuxFacts, DataError, Dataset
from kgax.graph import build_graph
from kgax.options import DataOptions


def Options(**fields) -> DataOptions:
  """The data options `load.load_split` reads, on the tiny synthetic data by default."""
  return DataOptions(**{"name": "synthetic-tiny", **fields})


@pytest.fixture(scope="module")
def ds():
  return synthetic.load_preset("tiny")


def per_relation(kg, col) -> dict:
  return {r: collections.Counter(kg[kg[:, 1] == r, col].tolist()) for r in np.unique(kg[:, 1])}


def test_none_keeps_interactions_and_drops_the_kg(ds):
  out = controls.apply(ds, kg="none")
  assert len(out.kg) == 0 and out.relation_names == () and out.n_entities == ds.n_items
  np.testing.assert_array_equal(out.interactions, ds.interactions)
  assert (out.n_users, out.n_items, len(out.aux)) == (ds.n_users, ds.n_items, len(ds.aux))
  assert out.notes[-1].startswith(f"kg=none: dropped {len(ds.kg)} triples")
  g = build_graph(out, out.interactions)
  assert g.n_kg_relations == 0 and g.n_entities == ds.n_items


def test_none_drops_the_aux_facts_of_dropped_entities():
  aux = AuxFacts(owner=np.array([0, 3, 1]), owner_is_user=np.array([False, False, True]),
                 node=np.array([0, 1, 1]), weight=np.ones(3, np.float32),
                 node_attr=np.array([0, 0]), node_names=np.array(["g=a", "g=b"], object),
                 attr_names=("g",))
  toy = Dataset(name="toy", n_users=2, n_items=2, n_entities=4,
                interactions=np.array([[0, 0], [1, 1]]), kg=np.array([[0, 0, 3], [1, 0, 2]]),
                relation_names=("r",), aux=aux,
                entity_ids=np.array(["i0", "i1", "e2", "e3"], object)).validate()
  out = controls.without_kg(toy)
  np.testing.assert_array_equal(out.aux.owner, [0, 1])
  assert list(out.entity_ids) == ["i0", "i1"] and "1 aux facts they owned" in out.notes[-1]


def test_shuffled_keeps_degrees_and_changes_the_links(ds):
  out = controls.shuffled_kg(ds, seed=1)
  assert len(out.kg) == len(ds.kg) and out.n_entities == ds.n_entities
  for col in (0, 2):   # per relation, the multiset of heads and of tails
    assert per_relation(out.kg, col) == per_relation(ds.kg, col)
  np.testing.assert_array_equal(out.kg[:, :2], ds.kg[:, :2])
  changed = (out.kg[:, 2] != ds.kg[:, 2]).mean()
  assert changed > 0.5
  assert len(np.unique(out.kg, axis=0)) == len(out.kg)   # no triple duplicated
  assert "0 duplicates left" in out.notes[-1]
  # Items stay entities 0..n_items-1: ids in range, and the same entities are items.
  assert out.kg[:, [0, 2]].max() < out.n_entities and out.n_items == ds.n_items
  np.testing.assert_array_equal(out.interactions, ds.interactions)
  # The planted structure is gone: tails no longer follow the heads' clusters.
  _, latent = synthetic.simulate(**synthetic.PRESETS["tiny"], seed=0)
  fits = lambda kg: (latent.entity_cluster[kg[:, 2]] == latent.item_cluster[kg[:, 0]]).mean()
  assert fits(ds.kg) > 0.8 and fits(out.kg) < 0.5


def test_shuffled_is_deterministic_per_seed(ds):
  a, b, c = (controls.shuffled_kg(ds, s) for s in (3, 3, 4))
  assert a.kg.tobytes() == b.kg.tobytes() and a.kg.tobytes() != c.kg.tobytes()


def test_shuffled_undoes_duplicates():
  """Relation 0 has two arrangements without a duplicate triple (head 0 needs tails 5 and 6) and
  one with; relation 1's tails are one entity. Every seed ends without duplicates."""
  kg = np.array([[0, 0, 5], [0, 0, 6], [1, 0, 5], [2, 1, 7], [3, 1, 7]])
  toy = Dataset(name="toy", n_users=1, n_items=4, n_entities=8, interactions=np.array([[0, 0]]),
                kg=kg, relation_names=("r", "s")).validate()
  for seed in range(5):
    out = controls.shuffled_kg(toy, seed)
    assert per_relation(out.kg, 2) == per_relation(kg, 2)
    assert len(np.unique(out.kg, axis=0)) == len(kg)
  empty = dataclasses.replace(toy, kg=np.zeros((0, 3), np.int64))
  assert controls.shuffled_kg(empty, 0) is empty


def test_no_aux_and_bad_control(ds):
  out = controls.apply(ds, aux=False)
  assert len(out.aux) == 0 and out.aux.n_nodes == 0 and out.aux.attr_names == ()
  assert build_graph(out, out.interactions).n_aux == 0
  with pytest.raises(DataError, match="data.kg must be one of full, none, shuffled"):
    controls.apply(ds, kg="random")


def test_load_split_applies_the_controls_and_keeps_the_split():
  base, s = load.load_split(Options())
  for opts in (Options(kg="none"), Options(kg="shuffled", control_seed=5), Options(aux=False)):
    ds, s2 = load.load_split(opts)
    for part in ("train", "valid", "test"):
      np.testing.assert_array_equal(getattr(s2, part), getattr(s, part))
    assert (len(ds.kg) == 0) == (opts.kg == "none") and (len(ds.aux) == 0) == (not opts.aux)
  a, _ = load.load_split(Options(kg="shuffled", control_seed=5))
  b, _ = load.load_split(Options(kg="shuffled", control_seed=6))
  assert not np.array_equal(a.kg, b.kg) and not np.array_equal(a.kg, base.kg)


@pytest.mark.realdata
def test_shuffled_bench_kg(bench_dir):
  ds = load.load_dataset(str(bench_dir("ml-100k-kg")))
  out = controls.shuffled_kg(ds, 0)
  for col in (0, 2):
    assert per_relation(out.kg, col) == per_relation(ds.kg, col)
  assert (out.kg[:, 2] != ds.kg[:, 2]).mean() > 0.5
