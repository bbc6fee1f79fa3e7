"""Resolves a dataset name or folder to a `Dataset` and its split.

Names: `synthetic` / `synthetic-PRESET` (generated), any name in `fetch.REGISTRY` (downloaded once
into the cache), or a folder in any supported format, detected from its files.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from kgax.data import controls, fetch, io, kgat, movielens, recbole, split, synthetic
from kgax.data.types import DataError, Dataset, Split


def detect_format(path: pathlib.Path) -> str:
  """'kgat', 'recbole' or 'movielens', from the files in `path`."""
  if (path / "train.txt").exists():
    return "kgat"
  if any(path.glob("*.inter")):
    return "recbole"
  if any((path / f).exists() for f in ("ratings.csv", "u.data", "ratings.dat")):
    return "movielens"
  raise DataError(f"{path}: no supported dataset found (expected train.txt, *.inter, ratings.csv, "
                  "u.data or ratings.dat)")


def read_folder(path: str | pathlib.Path, *, min_rating: float | None = None) -> Dataset:
  path = pathlib.Path(path)
  if not path.is_dir():
    raise DataError(f"{path}: dataset folder not found")
  fmt = detect_format(path)
  if fmt == "kgat":
    return kgat.read_kgat(path)
  if fmt == "recbole":
    return recbole.read_recbole(path)
  return movielens.read_movielens(path, min_rating=min_rating)


def load_dataset(name: str, *, min_rating: float | None = None, seed: int = 0) -> Dataset:
  """A dataset by registered name or folder path."""
  if name == "synthetic" or name.startswith("synthetic-"):
    preset = name.partition("-")[2] or "small"
    return synthetic.load_preset(preset, seed=seed)
  if name in fetch.REGISTRY:
    return read_folder(fetch.fetch(name), min_rating=min_rating)
  if pathlib.Path(name).is_dir():
    return read_folder(name, min_rating=min_rating)
  raise DataError(f"dataset {name!r}: not a folder, and not a registered name "
                  f"(known: synthetic, synthetic-PRESET, {', '.join(sorted(fetch.REGISTRY))})")


def with_aux_from(ds: Dataset, source: str | pathlib.Path) -> Dataset:
  """`ds` with the aux facts of another dataset over the same user and item ids.

  E.g. the ml-100k-kg benchmark split (KGAT format, no side information) with the genres, years
  and demographics of the RecBole ml-100k files it was derived from.
  """
  other = load_dataset(str(source))
  if (other.n_users, other.n_items) != (ds.n_users, ds.n_items):
    raise DataError(f"{source}: aux source has {other.n_users} users / {other.n_items} items, "
                    f"dataset {ds.name} has {ds.n_users} / {ds.n_items}")
  if ds.user_ids is not None and other.user_ids is not None and not np.array_equal(
      np.asarray(ds.user_ids).astype(str), np.asarray(other.user_ids).astype(str)):
    raise DataError(f"{source}: user ids differ from those of {ds.name}")
  return dataclasses.replace(
      ds, aux=other.aux, item_titles=ds.item_titles if ds.item_titles is not None
      else other.item_titles,
      notes=ds.notes + (f"aux facts from {source}: {len(other.aux)} facts, "
                        f"{other.aux.n_nodes} aux nodes",))


def cold_item_ids(n_items: int, fraction: float, seed: int) -> np.ndarray:
  """The round(fraction * n_items) items (sorted) that a cold-start split keeps out of training."""
  if not 0.0 <= fraction < 1.0:
    raise DataError(f"data.cold_items must be in [0, 1), got {fraction}")
  rng = np.random.default_rng(seed + 2)   # seed and seed + 1 draw the test and validation parts
  return np.sort(rng.choice(n_items, round(fraction * n_items), replace=False))


def with_cold_items(s: Split, cold: np.ndarray) -> Split:
  """`s` with every train and validation pair of the `cold` items moved to test."""
  in_train, in_valid = np.isin(s.train[:, 1], cold), np.isin(s.valid[:, 1], cold)
  test = np.concatenate([s.test, s.train[in_train], s.valid[in_valid]])
  return Split(train=s.train[~in_train], valid=s.valid[~in_valid],
               test=test[np.lexsort((test[:, 1], test[:, 0]))])


def with_train_fraction(s: Split, fraction: float, seed: int) -> Split:
  """`s` with each user's training pairs thinned to `fraction`: round((1 - fraction) * n_u) of
  them (halves up; a user keeps at least one), drawn with `seed`, are dropped: neither trained
  on nor evaluated. Validation and test, and so the metrics, are those of the full split (the
  sparsity study)."""
  if not 0.0 < fraction <= 1.0:
    raise DataError(f"data.train_fraction must be in (0, 1], got {fraction}")
  if fraction == 1.0:
    return s
  kept, _ = split.holdout(s.train, 1.0 - fraction, seed)
  return Split(train=kept, valid=s.valid, test=s.test)


def with_train_aux(ds: Dataset, s: Split) -> Dataset:
  """`ds` whose aux facts derived from interactions come from the training pairs of `s` only.

  A source (one application, e.g. a user's tag on a movie) is kept when its (user, item) pair is
  in `s.train`: not when it is a validation or test pair, nor when it is no interaction at all
  (or a training pair that `with_train_fraction` dropped). A derived fact then weighs its kept
  applications and goes when none is left; aux nodes left without facts are dropped
  (`AuxFacts.select`). Facts without sources stay as they are.
  """
  a = ds.aux
  if not len(a.source_fact):
    return ds
  known = (a.source_user >= 0) & (a.source_item >= 0)
  key = a.source_user[known] * ds.n_items + a.source_item[known]

  def among(pairs):
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    found = np.zeros(len(known), bool)
    found[known] = io.lookup(np.unique(pairs[:, 0] * ds.n_items + pairs[:, 1]), key) >= 0
    return found

  in_train, held_out = among(s.train), among(np.r_[s.valid, s.test])
  aux = a.select(np.ones(len(a), bool), in_train)
  notes = []
  attr, new_attr = a.node_attr[a.node], aux.node_attr[aux.node]
  for k in np.unique(attr[a.source_fact]):
    src = attr[a.source_fact] == k
    notes.append(f"{a.attr_names[k]}: from training pairs only, kept {int(in_train[src].sum())} "
                 f"of {int(src.sum())} applications (dropped {int(held_out[src].sum())} of "
                 f"validation or test pairs, {int((src & ~in_train & ~held_out).sum())} of "
                 f"other pairs), {int((new_attr == k).sum())} of {int((attr == k).sum())} facts")
  notes.append(f"aux nodes left with facts: {aux.n_nodes} of {a.n_nodes}")
  return dataclasses.replace(ds, aux=aux, notes=ds.notes + tuple(notes)).validate()


def load_split(data_config) -> tuple[Dataset, Split]:
  """The dataset named by `data_config.name`, its controls applied, and its deterministic split.

  `data_config` has every field of the data options (read as attributes). Its `kg` ("full",
  "none", "shuffled", seeded by `control_seed`) and `aux` (False: no aux facts) are the controls
  of `controls.apply`. With `cold_items` > 0, that fraction of the
  items (seeded by `split_seed`) only appears in test: they keep their KG edges and the aux facts
  not derived from interactions, but no interaction of theirs is trained on. With
  `train_fraction` < 1 each user keeps that fraction of its training pairs (`with_train_fraction`,
  seeded by `split_seed`): validation and test are unchanged. Last, aux facts
  derived from interactions keep only the applications of training pairs (`with_train_aux`), so
  no validation or test pair is reachable through a fact made from it.
  """
  ds = load_dataset(data_config.name, min_rating=data_config.min_rating)
  if data_config.aux_from:
    ds = with_aux_from(ds, data_config.aux_from)
  ds = controls.apply(ds, kg=data_config.kg, aux=data_config.aux,
                      seed=int(data_config.control_seed))
  s = split.split_dataset(ds, seed=data_config.split_seed, test_fraction=data_config.test_fraction,
                          valid_fraction=data_config.valid_fraction)
  if data_config.cold_items:
    s = with_cold_items(s, cold_item_ids(ds.n_items, data_config.cold_items,
                                         data_config.split_seed))
  # seed + 3: seed, + 1 and + 2 draw the test part, the validation part and the cold items
  s = with_train_fraction(s, data_config.train_fraction, data_config.split_seed + 3)
  return with_train_aux(ds, s), s
