"""Aux facts derived from interactions (MovieLens tags) come from training pairs only: no
validation or test pair is reachable through a fact made from it."""

import dataclasses

import numpy as np
import pytest

from kgax.data import load
from kgax.data.movielens import read_movielens
from kgax.data.types import AuxFacts, Dataset
from kgax.options import DataOptions


def pair_set(pairs) -> set:
  return set(map(tuple, np.asarray(pairs).tolist()))


def sources_in(ds, pairs) -> bool:
  a = ds.aux
  return pair_set(np.c_[a.source_user, a.source_item]) <= pair_set(pairs)


@pytest.fixture
def tagged(tmp_path):
  """A MovieLens folder where every rated (user, movie) is tagged "t<user>_<movie>" and "common",
  and each user tags one movie they did not rate "unrated<user>"."""
  rng = np.random.default_rng(0)
  rated = sorted({(int(u), int(m)) for u, m in zip(rng.integers(1, 9, 120),
                                                   rng.integers(1, 13, 120))})
  ratings = "".join(f"{u},{m},4.0,1\n" for u, m in rated)
  tags = "".join(f"{u},{m},t{u}_{m},1\n{u},{m},common,2\n" for u, m in rated)
  tags += "".join(f"{u},{m},unrated{u},3\n" for u in range(1, 9)
                  for m in [next(m for m in range(1, 14) if (u, m) not in rated)])
  movies = "".join(f"{m},Movie {m} (2000),Drama\n" for m in range(1, 14))
  (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + ratings)
  (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n" + tags)
  (tmp_path / "movies.csv").write_text("movieId,title,genres\n" + movies)
  return tmp_path


def tag_facts(ds, attr) -> dict:
  """{(owner, tag): weight} of one tag attribute."""
  a = ds.aux
  k = a.attr_names.index(attr)
  on = a.node_attr[a.node] == k
  return {(int(o), a.node_names[n].split("=", 1)[1]): float(w)
          for o, n, w in zip(a.owner[on], a.node[on], a.weight[on])}


def test_reader_lists_each_tag_application_as_a_source(tagged):
  ds = read_movielens(tagged)
  a = ds.aux
  assert len(a.source_fact) == 2 * (2 * len(ds.interactions) + 8)   # user_tag and tag facts
  user_side = a.owner_is_user[a.source_fact]
  np.testing.assert_array_equal(a.owner[a.source_fact][user_side], a.source_user[user_side])
  np.testing.assert_array_equal(a.owner[a.source_fact][~user_side], a.source_item[~user_side])
  assert tag_facts(ds, "user_tag")[(0, "common")] == (ds.interactions[:, 0] == 0).sum()


@pytest.mark.parametrize("cold, fraction", [(0.0, 1.0), (0.25, 1.0), (0.0, 0.5)])
def test_a_tag_on_a_held_out_pair_makes_no_fact(tagged, cold, fraction):
  """Held out: validation and test pairs, and the training pairs data.train_fraction drops."""
  ds, s = load.load_split(DataOptions(name=str(tagged), cold_items=cold, train_fraction=fraction))
  assert len(s.test) and len(s.valid)
  assert sources_in(ds, s.train)   # every kept application is a training pair
  _, whole = load.load_split(DataOptions(name=str(tagged), cold_items=cold))
  dropped = pair_set(whole.train) - pair_set(s.train)
  assert bool(dropped) == (fraction < 1)
  train, held = pair_set(s.train), pair_set(np.r_[s.valid, s.test]) | dropped
  names = lambda pairs: {f"t{ds.user_ids[u]}_{ds.item_ids[i]}" for u, i in pairs}
  for attr, side in (("user_tag", 0), ("tag", 1)):
    facts = tag_facts(ds, attr)
    tags = {t for _, t in facts}
    assert names(train) <= tags and not names(held) & tags
    assert not any(t.startswith("unrated") for t in tags)   # no interaction, no fact
    for owner in {p[side] for p in train}:
      assert facts[(owner, "common")] == sum(p[side] == owner for p in train)
  # No aux node of a held-out pair is left, not even an isolated one.
  assert not names(held) & {n.split("=", 1)[1] for n in ds.aux.node_names}


def test_select_recounts_and_drops_empty_facts_and_nodes():
  a = AuxFacts(owner=np.array([0, 1, 0, 2]), owner_is_user=np.array([True, True, False, False]),
               node=np.array([0, 1, 2, 2]), weight=np.array([2, 1, 1, 0.5], np.float32),
               node_attr=np.array([0, 0, 1]), node_names=np.array(["u=a", "u=b", "g=x"], object),
               attr_names=("u", "g"), source_fact=np.array([0, 0, 1]),
               source_user=np.array([0, 0, 1]), source_item=np.array([3, 4, 5]))
  out = a.select(np.ones(4, bool), np.array([True, False, False]))
  np.testing.assert_array_equal(out.owner, [0, 0, 2])       # fact 1 lost its only source
  np.testing.assert_array_equal(out.weight, [1, 1, 0.5])    # fact 0 weighs its one kept source
  np.testing.assert_array_equal(out.node, [0, 1, 1])        # node "u=b" went, "g=x" renumbered
  assert list(out.node_names) == ["u=a", "g=x"] and out.attr_names == ("u", "g")
  np.testing.assert_array_equal(np.c_[out.source_fact, out.source_user, out.source_item],
                                [[0, 0, 3]])
  ds = Dataset(name="toy", n_users=2, n_items=6, n_entities=6,
               interactions=np.array([[0, 3], [0, 4], [1, 5]]), kg=np.zeros((0, 3), np.int64),
               relation_names=(), aux=a).validate()
  with pytest.raises(ValueError, match="number of sources"):
    dataclasses.replace(ds, aux=dataclasses.replace(a, weight=np.ones(4, np.float32))).validate()


def test_facts_without_sources_are_untouched():
  ds, s = load.load_split(DataOptions(name="synthetic-tiny"))
  raw = load.load_dataset("synthetic-tiny")
  assert len(ds.aux) == len(raw.aux) and not ds.aux.derived.any()


@pytest.mark.realdata
def test_ml_latest_small_tags_from_training_pairs_only(raw_dir):
  path = raw_dir("ml-latest-small")
  raw = load.load_dataset(str(path))
  ds, s = load.load_split(DataOptions(name=str(path)))
  assert sources_in(ds, s.train)
  a0, a = raw.aux, ds.aux
  assert len(a0.source_fact) == 3_683 + 3_662   # tag applications of rated users / movies
  assert len(a) < len(a0) and a.weight.sum() < a0.weight.sum()
  assert set(a.node_attr[a.node]) == {0, 1} and a.attr_names == a0.attr_names
  notes = [n for n in ds.notes if "from training pairs only" in n]
  assert len(notes) == 2 and notes[0].startswith("user_tag:")
