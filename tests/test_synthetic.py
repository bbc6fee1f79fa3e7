"""The synthetic generator: determinism, sizes, power laws and the planted structure, measured."""

import numpy as np
import pytest

from kgax.data import synthetic
from kgax.data.types import DataError

MID = dict(n_users=2_000, n_items=3_000, n_interactions=100_000, n_clusters=15,
           n_extra_entities=3_000, n_triples=15_000, n_relations=5, aux_per_item=5, n_tags=120)


@pytest.fixture(scope="module")
def mid():
  return synthetic.simulate(**MID, seed=7)


def _arrays(ds):
  a = ds.aux
  return [ds.interactions, ds.kg, a.owner, a.owner_is_user, a.node, a.weight, a.node_attr]


def test_same_seed_same_arrays_other_seed_differs():
  a, b = synthetic.load_preset("tiny", seed=3), synthetic.load_preset("tiny", seed=3)
  c = synthetic.load_preset("tiny", seed=4)
  assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))
  assert list(a.item_titles) == list(b.item_titles)
  assert not np.array_equal(a.interactions, c.interactions)
  assert not np.array_equal(a.kg, c.kg)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_presets_have_requested_sizes(preset):
  p = synthetic.PRESETS[preset]
  ds = synthetic.load_preset(preset).validate()
  assert ds.name == f"synthetic-{preset}" and ds.test is None
  assert (ds.n_users, ds.n_items) == (p["n_users"], p["n_items"])
  assert ds.n_entities == p["n_items"] + p["n_extra_entities"]
  assert len(ds.interactions) == p["n_interactions"] and len(ds.kg) == p["n_triples"]
  assert ds.n_relations == p["n_relations"] and ds.relation_names[0] == "belongs_to_attr_0"
  key = ds.interactions[:, 0] * ds.n_items + ds.interactions[:, 1]
  assert len(np.unique(key)) == len(key)                      # de-duplicated
  assert len(np.unique(ds.kg, axis=0)) == len(ds.kg)
  assert np.bincount(ds.interactions[:, 0], minlength=ds.n_users).min() >= 1
  assert set(ds.aux.attr_names) == {"tag", "age"} and ds.aux.weight.min() > 0


def test_last_fm_preset_is_sized_like_kgat_last_fm():
  ds = synthetic.load_preset("last-fm")
  assert (ds.n_users, ds.n_items, ds.n_entities, ds.n_relations) == (23_566, 48_123, 106_389, 9)
  assert len(ds.interactions) == 1_289_003 and len(ds.kg) == 464_567


def test_degrees_are_heavy_tailed(mid):
  ds, _ = mid
  users, items = ds.interactions.T
  item_deg = np.sort(np.bincount(items, minlength=ds.n_items))[::-1]
  user_deg = np.sort(np.bincount(users, minlength=ds.n_users))[::-1]
  # Uniform sampling would give the top 10% about 10% (plus noise) of the interactions.
  assert item_deg[: ds.n_items // 10].sum() / item_deg.sum() > 0.4
  assert user_deg[: ds.n_users // 10].sum() / user_deg.sum() > 0.25
  assert user_deg[0] > 10 * np.median(user_deg)


def test_users_concentrate_on_their_preferred_clusters(mid):
  ds, lat = mid
  users, items = ds.interactions.T
  inside = lambda prefs: (prefs[users] == lat.item_cluster[items][:, None]).any(1).mean()
  chance = inside(np.random.default_rng(0).permutation(lat.user_clusters))
  assert inside(lat.user_clusters) > 0.7 and inside(lat.user_clusters) > 2.5 * chance


def test_kg_and_aux_reveal_the_clusters(mid):
  ds, lat = mid
  shuffled = np.random.default_rng(0).permutation(lat.item_cluster)
  same = lambda c: (lat.entity_cluster[ds.kg[:, 2]] == c[ds.kg[:, 0]]).mean()
  assert same(lat.item_cluster) > 0.8 and same(lat.item_cluster) > 5 * same(shuffled)
  a = ds.aux
  tags = ~a.owner_is_user
  agree = lambda c: (lat.tag_cluster[a.node[tags]] == c[a.owner[tags]]).mean()
  assert agree(lat.item_cluster) > 0.8 and agree(lat.item_cluster) > 5 * agree(shuffled)
  own = lat.tag_cluster[a.node[tags]] == lat.item_cluster[a.owner[tags]]
  assert a.weight[tags][own].mean() > a.weight[tags][~own].mean() + 0.3   # relevance
  main = lat.user_clusters[np.arange(ds.n_users), lat.user_weights.argmax(1)]
  age = a.node[a.owner_is_user] - lat.tag_cluster.size
  fits = lambda m: np.mean([np.bincount(age[m == c]).max() / (m == c).sum()
                            for c in np.unique(m)])
  assert fits(main) > fits(np.random.default_rng(0).permutation(main)) + 0.2


def test_items_sharing_an_attribute_share_users(mid):
  """What a KG-aware model can exploit: co-linked items have overlapping audiences."""
  ds, _ = mid
  m = np.zeros((ds.n_items, ds.n_users), bool)
  m[ds.interactions[:, 1], ds.interactions[:, 0]] = True
  kg = ds.kg[np.argsort(ds.kg[:, 2], kind="stable")]
  pair = kg[1:, 2] == kg[:-1, 2]
  linked = np.stack([kg[:-1, 0][pair], kg[1:, 0][pair]], 1)
  random = np.random.default_rng(0).integers(ds.n_items, size=linked.shape)
  overlap = lambda p: (m[p[:, 0]] & m[p[:, 1]]).sum(1).mean()
  assert overlap(linked) > 1.5 * overlap(random)


def test_tail_items_have_few_interactions_but_kg_and_aux_links(mid):
  ds, lat = mid
  deg = np.bincount(ds.interactions[:, 1], minlength=ds.n_items)
  assert lat.tail.mean() == pytest.approx(0.2, abs=0.01)
  assert deg[lat.tail].mean() < 0.1 * deg[~lat.tail].mean()
  assert 0.1 < (deg[lat.tail] == 0).mean() < 0.9    # few or none
  linked = np.zeros(ds.n_items, bool)
  linked[ds.kg[:, 0]] = True
  assert linked[lat.tail].mean() > 0.95
  assert np.isin(np.flatnonzero(lat.tail), ds.aux.owner[~ds.aux.owner_is_user]).all()


def test_bad_arguments():
  with pytest.raises(DataError, match="synthetic preset 'huge': unknown .*last-fm"):
    synthetic.load_preset("huge")
  with pytest.raises(ValueError, match="too dense"):
    synthetic.generate(n_users=10, n_items=10, n_interactions=90)
  with pytest.raises(ValueError, match="every cluster owns attributes"):
    synthetic.generate(n_users=10, n_items=40, n_interactions=50, n_clusters=4,
                       n_extra_entities=5)
