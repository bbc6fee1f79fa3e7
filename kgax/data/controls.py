"""Data-side controls (KG4RecEval style): what a model gains from the KG and the aux facts.

Pure functions `Dataset -> Dataset` that leave the users, items and interactions alone, so any
model trains on the same split with the side information removed or scrambled:

  `without_kg`   no KG triples: the entities beyond the items and the relations are dropped, with
                 the aux facts owned by such entities (interactions and aux facts only).
  `shuffled_kg`  per relation, the tails permuted among that relation's triples: each relation
                 keeps its multiset of heads and of tails (so its degrees), its links are random.
  `without_aux`  no aux facts (and no aux nodes or attributes).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from kgax.data.types import AuxFacts, DataError, Dataset

KG_CONTROLS = ("full", "none", "shuffled")
_REPAIR_ROUNDS = 100   # rounds of tail swaps that undo triples the shuffle duplicated
_CANDIDATES = 16       # partners tried per duplicate and round


def apply(ds: Dataset, *, kg: str = "full", aux: bool = True, seed: int = 0) -> Dataset:
  """`ds` with the KG control `kg` ("full", "none", "shuffled", seeded by `seed`) and, with
  `aux` False, without aux facts."""
  if kg not in KG_CONTROLS:
    raise DataError(f"data.kg must be one of {', '.join(KG_CONTROLS)}, got {kg!r}")
  if kg == "none":
    ds = without_kg(ds)
  elif kg == "shuffled":
    ds = shuffled_kg(ds, seed)
  return ds if aux else without_aux(ds)


def without_kg(ds: Dataset) -> Dataset:
  """`ds` with no KG triples, entities beyond the items or relations."""
  a = ds.aux
  owned = a.owner_is_user | (a.owner < ds.n_items)
  return dataclasses.replace(
      ds, kg=np.zeros((0, 3), np.int64), relation_names=(), n_entities=ds.n_items,
      aux=a.select(owned), entity_ids=None if ds.entity_ids is None else ds.entity_ids[:ds.n_items],
      notes=ds.notes + (f"kg=none: dropped {len(ds.kg)} triples, {ds.n_entities - ds.n_items} "
                        f"entities beyond the items and {int((~owned).sum())} aux facts they "
                        "owned",)).validate()


def shuffled_kg(ds: Dataset, seed: int) -> Dataset:
  """`ds` with the tails of each relation's triples randomly permuted among them.

  Triples the permutation duplicates are undone by swapping tails with random triples of the same
  relation, each swap making two new triples (the original KG shows that an arrangement without
  duplicates exists; a note counts any left). Same seed, same triples.
  """
  kg = ds.kg
  if not len(kg):
    return ds
  rng = np.random.default_rng(seed)
  rel = kg[:, 1]
  by_rel = np.argsort(rel, kind="stable")            # each relation's triples, in order
  shuffled = np.lexsort((rng.random(len(kg)), rel))  # the same groups, randomly ordered
  tail = kg[:, 2].copy()
  tail[by_rel] = kg[shuffled, 2]
  sizes = np.bincount(rel, minlength=ds.n_relations)
  starts = np.r_[0, np.cumsum(sizes)[:-1]]
  head_rel = kg[:, 0] * max(ds.n_relations, 1) + rel
  for _ in range(_REPAIR_ROUNDS):
    keys = head_rel * ds.n_entities + tail
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    dup = order[1:][sorted_keys[1:] == sorted_keys[:-1]]   # later copies of a triple
    if not len(dup):
      break
    # Per duplicate, _CANDIDATES random partners of its relation; the first whose swap makes two
    # new triples is taken, unless it shares a row or a new triple with another swap.
    r = rel[dup][:, None]
    partner = by_rel[starts[r] + np.floor(rng.random((len(dup), _CANDIDATES)) * sizes[r])
                     .astype(np.int64)]
    new_dup = head_rel[dup][:, None] * ds.n_entities + tail[partner]
    new_partner = head_rel[partner] * ds.n_entities + tail[dup][:, None]
    exists = lambda k: sorted_keys[np.searchsorted(sorted_keys, k).clip(0, len(keys) - 1)] == k
    fresh = ~exists(new_dup) & ~exists(new_partner) & (new_dup != new_partner)
    pick = np.argmax(fresh, 1)
    ok = fresh[np.arange(len(dup)), pick]
    d, p = dup[ok], partner[ok, pick[ok]]
    new = np.r_[new_dup[ok, pick[ok]], new_partner[ok, pick[ok]]]
    take = (_single(np.r_[d, p]) & _single(new)).reshape(2, -1).all(0)
    tail[d[take]], tail[p[take]] = tail[p[take]], tail[d[take]]
  out = np.stack([kg[:, 0], rel, tail], 1)
  left = int(pd.DataFrame(out).duplicated().sum())
  moved = int((tail != kg[:, 2]).sum())
  return dataclasses.replace(
      ds, kg=out, notes=ds.notes + (f"kg=shuffled (seed {seed}): tails permuted within each "
                                    f"relation, {moved} of {len(kg)} triples changed, {left} "
                                    "duplicates left",)).validate()


def _single(x: np.ndarray) -> np.ndarray:
  """bool [N]: the entries of x [N] that occur once in it."""
  _, at, counts = np.unique(x, return_inverse=True, return_counts=True)
  return counts[at] == 1


def without_aux(ds: Dataset) -> Dataset:
  """`ds` with no aux facts."""
  return dataclasses.replace(ds, aux=AuxFacts.empty(), notes=ds.notes + (
      f"aux=False: dropped {len(ds.aux)} aux facts and {ds.aux.n_nodes} aux nodes",))
