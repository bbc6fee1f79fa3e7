"""The in-memory records every reader returns.

All ids are contiguous 0-based integers. Items are KG entities 0..n_items-1 (KGAT's convention), so
a KG triple's head or tail below n_items is an item. Original ids, where a format has them, are kept
in the `*_ids` maps (index = internal id, value = original id as a string).

Ids and sizes, for every reader: the training file (with a format's id lists) fixes the users and
items. A validation or test pair whose user or item the training file never saw (an id beyond
its range, an unknown original id) is dropped and counted in `Dataset.notes`, never a growth of
the catalogue, and a KG entity never becomes an item that way. Ids that index arrays directly are
refused (a DataError naming file, line and id) when they would make an absurd table
(`io.check_size`). Every other problem with a file is a one-line DataError naming the file and,
where known, the line.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class DataError(ValueError):
  """Malformed or inconsistent input; the message names the file, line and problem."""


@dataclasses.dataclass(frozen=True)
class AuxFacts:
  """Auxiliary facts (owner, attribute, value, weight) of docs/model.md §1.

  Each distinct (attribute, value) is an aux node; `node_attr[n]` is its attribute and
  `node_names[n]` a readable "attribute=value". An owner is an entity (`owner_is_user` False) or a
  user (True).

  Facts derived from interactions (MovieLens tags: a user tagged a movie) list their sources:
  source s is the (user, item) pair `(source_user[s], source_item[s])` behind one application of
  fact `source_fact[s]` (-1 for a user or movie outside the catalogue). Such a fact's weight is its
  number of sources, so that `select` can keep only the applications of training pairs. Facts
  without sources (genres, years, demographics, genome) are not tied to any pair.
  """

  owner: np.ndarray          # int64 [F] entity id or user id
  owner_is_user: np.ndarray  # bool  [F]
  node: np.ndarray           # int64 [F] aux node id in [0, n_nodes)
  weight: np.ndarray         # float32 [F] > 0 (relevance, count, 1)
  node_attr: np.ndarray      # int64 [n_nodes] attribute id in [0, len(attr_names))
  node_names: np.ndarray     # object [n_nodes] "attribute=value"
  attr_names: tuple[str, ...]
  source_fact: np.ndarray | None = None  # int64 [S] the fact of each source (None: no sources)
  source_user: np.ndarray | None = None  # int64 [S] user id of the source pair, or -1
  source_item: np.ndarray | None = None  # int64 [S] item id of the source pair, or -1

  def __post_init__(self):
    for name in ("source_fact", "source_user", "source_item"):
      if getattr(self, name) is None:
        object.__setattr__(self, name, np.zeros(0, np.int64))

  @property
  def derived(self) -> np.ndarray:
    """bool [F]: the facts derived from interactions (those with sources)."""
    return np.bincount(self.source_fact, minlength=len(self)) > 0

  @property
  def n_nodes(self) -> int:
    return len(self.node_attr)

  @property
  def n_attrs(self) -> int:
    return len(self.attr_names)

  def __len__(self) -> int:
    return len(self.owner)

  @classmethod
  def empty(cls, attr_names: tuple[str, ...] = ()) -> AuxFacts:
    i = np.zeros(0, np.int64)
    return cls(owner=i, owner_is_user=np.zeros(0, bool), node=i, weight=np.zeros(0, np.float32),
               node_attr=i, node_names=np.zeros(0, object), attr_names=tuple(attr_names))

  def select(self, facts: np.ndarray, sources: np.ndarray | None = None) -> AuxFacts:
    """The facts where `facts` [F] is True, with the sources where `sources` [S] is True.

    A derived fact's weight becomes the number of its kept sources, and a derived fact left
    without sources is dropped. Aux nodes left without facts are dropped (the others renumbered
    in order); the attributes stay, so relation ids do not move.
    """
    facts = np.asarray(facts, bool).copy()
    keep_src = facts[self.source_fact]
    if sources is not None:
      keep_src &= np.asarray(sources, bool)
    count = np.bincount(self.source_fact[keep_src], minlength=len(self))
    derived = self.derived
    facts &= ~derived | (count > 0)
    keep_src &= facts[self.source_fact]
    weight = np.where(derived, count, self.weight).astype(np.float32)
    used = np.zeros(self.n_nodes, bool)
    used[self.node[facts]] = True
    new_node = np.cumsum(used) - 1
    new_fact = np.cumsum(facts) - 1
    return AuxFacts(
        owner=self.owner[facts], owner_is_user=self.owner_is_user[facts],
        node=new_node[self.node[facts]], weight=weight[facts], node_attr=self.node_attr[used],
        node_names=self.node_names[used], attr_names=self.attr_names,
        source_fact=new_fact[self.source_fact[keep_src]],
        source_user=self.source_user[keep_src], source_item=self.source_item[keep_src])


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One dataset as read from disk, before splitting.

  `interactions` are all known (user, item) positives, de-duplicated. For pre-split formats (KGAT's
  train.txt/test.txt, RecBole benchmark files) `interactions` is the training part and `test` (and
  possibly `valid`) hold the given held-out parts.
  """

  name: str
  n_users: int
  n_items: int
  n_entities: int                  # >= n_items
  interactions: np.ndarray         # int64 [N, 2] (user, item)
  kg: np.ndarray                   # int64 [T, 3] (head, relation, tail) entity ids
  relation_names: tuple[str, ...]  # KG relations, ids 0..R-1
  aux: AuxFacts = dataclasses.field(default_factory=AuxFacts.empty)
  test: np.ndarray | None = None   # int64 [M, 2], pre-split test part
  valid: np.ndarray | None = None  # int64 [V, 2], pre-split validation part
  user_ids: np.ndarray | None = None    # [n_users] original ids
  item_ids: np.ndarray | None = None    # [n_items] original ids
  entity_ids: np.ndarray | None = None  # [n_entities] original ids
  item_titles: np.ndarray | None = None  # [n_items] readable names, where known
  notes: tuple[str, ...] = ()      # what the reader did (e.g. "dropped 12 duplicate pairs")

  @property
  def n_relations(self) -> int:
    return len(self.relation_names)

  @property
  def presplit(self) -> bool:
    return self.test is not None

  def validate(self) -> Dataset:
    """Checks id ranges and shapes; raises DataError naming the field."""
    def check(name, arr, cols, limits):
      if arr.ndim != 2 or arr.shape[1] != cols:
        raise DataError(f"{self.name}: {name} has shape {arr.shape}, expected [N, {cols}]")
      for c, (col, hi) in enumerate(zip(("first", "second", "third"), limits)):
        if len(arr) and (arr[:, c].min() < 0 or arr[:, c].max() >= hi):
          raise DataError(f"{self.name}: {name} {col} column has ids outside [0, {hi})")
    if self.n_items > self.n_entities:
      raise DataError(f"{self.name}: n_items={self.n_items} > n_entities={self.n_entities}")
    for name in ("interactions", "test", "valid"):
      arr = getattr(self, name)
      if arr is not None:
        check(name, arr, 2, (self.n_users, self.n_items))
    check("kg", self.kg, 3, (self.n_entities, max(self.n_relations, 1), self.n_entities))
    a = self.aux
    if len(a):
      ent = ~a.owner_is_user
      if ent.any() and a.owner[ent].max() >= self.n_entities:
        raise DataError(f"{self.name}: aux owner entity id out of range")
      if (~ent).any() and a.owner[~ent].max() >= self.n_users:
        raise DataError(f"{self.name}: aux owner user id out of range")
      if a.node.min() < 0 or a.node.max() >= a.n_nodes:
        raise DataError(f"{self.name}: aux node id out of range")
      if not np.all(a.weight > 0):
        raise DataError(f"{self.name}: aux weights must be > 0")
    if not len(a.source_fact) == len(a.source_user) == len(a.source_item):
      raise DataError(f"{self.name}: aux source arrays differ in length")
    if len(a.source_fact):
      for what, ids, hi in (("fact", a.source_fact, len(a)), ("user", a.source_user, self.n_users),
                            ("item", a.source_item, self.n_items)):
        if ids.min() < (0 if what == "fact" else -1) or ids.max() >= hi:
          raise DataError(f"{self.name}: aux source {what} id out of range")
      count = np.bincount(a.source_fact, minlength=len(a))
      if np.any(a.weight[count > 0] != count[count > 0]):
        raise DataError(f"{self.name}: an aux fact with sources must weigh its number of sources")
    return self


@dataclasses.dataclass(frozen=True)
class Split:
  """Train / validation / test interactions over one Dataset (int64 [N, 2] each)."""

  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
