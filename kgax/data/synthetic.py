"""Synthetic datasets with a planted structure that a KG-aware model can use and plain MF cannot.

Items belong to latent clusters. Each user prefers a few clusters and draws most interactions from
them (a fraction `explore` from the whole catalogue); users are drawn by a Zipf-like activity and
items by a Zipf-like popularity within their cluster. The clusters show in the KG (per relation,
an item links to an attribute entity owned by its cluster, or with probability `noise` to one of
any cluster) and, as noisily, in the aux facts: genome-like "tag" facts on items, whose relevance
(the weight) is high for the cluster's own tags, and, with `user_aux`, an "age" bucket tied to the
user's main cluster. The least popular `tail_fraction` of items expect about `tail_interactions`
interactions each (a little more once duplicates are redrawn), so their cluster is known almost
only through the KG and the aux facts.

Sampling is vectorised per interaction (user by activity, cluster by the user's preferences, item
by popularity within the cluster); duplicate pairs are dropped and the shortfall drawn again. The
full ML-20M size (20M interactions) takes about 15 s and 1 GB, Last-FM about 1 s. Same seed,
same arrays.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kgax.data.types import AuxFacts, DataError, Dataset
from kgax.sampling import distinct

_MIN_PER_USER = 5      # interactions of the least active users (when the total allows)
_MAX_USER_SHARE = 0.25  # the most active user sees at most this share of the items
_ROUNDS = 8            # draws to make up for dropped duplicates
_AGES = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_AGE_FIT = 0.7         # probability that a user's age bucket is that of the main cluster

PRESETS = {
    "tiny": dict(n_users=60, n_items=150, n_interactions=1_800, n_clusters=4,
                 n_extra_entities=48, n_triples=900, n_relations=3, aux_per_item=3, n_tags=16),
    "small": dict(n_users=1_000, n_items=2_000, n_interactions=60_000, n_clusters=12,
                  n_extra_entities=2_400, n_triples=16_000, n_relations=4, aux_per_item=4,
                  n_tags=96),
    # KGAT's released Last-FM: users, items, training interactions, KG entities and triples.
    "last-fm": dict(n_users=23_566, n_items=48_123, n_interactions=1_289_003, n_clusters=64,
                    n_extra_entities=58_266, n_triples=464_567, n_relations=9, aux_per_item=6,
                    n_tags=1_128),
    # MovieLens-20M: users, movies, ratings and genome tags; KG sized like genre/year/Freebase.
    "ml-20m": dict(n_users=138_493, n_items=27_278, n_interactions=20_000_263, n_clusters=48,
                   n_extra_entities=60_000, n_triples=600_000, n_relations=12, aux_per_item=10,
                   n_tags=1_128),
}


@dataclasses.dataclass(frozen=True)
class Latent:
  """The planted structure behind a synthetic dataset (for tests and diagnostics)."""

  item_cluster: np.ndarray    # int64 [n_items]
  user_clusters: np.ndarray   # int64 [n_users, prefs_per_user] preferred clusters
  user_weights: np.ndarray    # float64 [n_users, prefs_per_user] their weights, rows sum to 1
  entity_cluster: np.ndarray  # int64 [n_entities] owning cluster (-1 for items)
  tag_cluster: np.ndarray     # int64 [n_tags]
  tail: np.ndarray            # bool [n_items]


def generate(**kwargs) -> Dataset:
  """A synthetic `Dataset` (interactions, KG, aux facts; no split); arguments as `simulate`."""
  return simulate(**kwargs)[0]


def load_preset(name: str, seed: int = 0) -> Dataset:
  """The named preset of `PRESETS`, as dataset "synthetic-NAME"."""
  if name not in PRESETS:
    raise DataError(f"synthetic preset {name!r}: unknown (known: {', '.join(PRESETS)})")
  return generate(**PRESETS[name], seed=seed, name=f"synthetic-{name}")


def simulate(*, n_users: int, n_items: int, n_interactions: int, n_clusters: int | None = None,
             n_extra_entities: int | None = None, n_triples: int | None = None,
             n_relations: int = 4, aux_per_item: int = 4, n_tags: int | None = None,
             user_aux: bool = True, prefs_per_user: int = 3, explore: float = 0.15,
             noise: float = 0.1, tail_fraction: float = 0.2,
             tail_interactions: float = 1.0, item_exponent: float = 0.9,
             user_exponent: float = 0.8, seed: int = 0,
             name: str = "synthetic") -> tuple[Dataset, Latent]:
  """A synthetic dataset and its planted structure.

  Defaults: n_clusters ~ sqrt(n_items) / 4, as many attribute entities as items, 4 triples and
  `aux_per_item` tag facts per item, 8 tags per cluster. Exactly `n_interactions` distinct pairs
  and `n_triples` distinct triples unless the structure cannot hold that many (then slightly fewer).
  """
  n_clusters = n_clusters or max(2, round(np.sqrt(n_items) / 4))
  n_extra = n_items if n_extra_entities is None else n_extra_entities
  n_triples = n_triples or 4 * n_items
  n_tags = n_tags or 8 * n_clusters
  if min(n_users, n_items, n_interactions, n_relations) < 1 or n_items < n_clusters:
    raise ValueError(f"synthetic: need positive sizes and n_items >= n_clusters={n_clusters}")
  if n_interactions > _MAX_USER_SHARE * n_users * n_items:
    raise ValueError(f"synthetic: {n_interactions} interactions is too dense for "
                     f"{n_users} users x {n_items} items (at most {_MAX_USER_SHARE:.0%})")
  if n_extra < n_relations * n_clusters or n_tags < n_clusters:
    raise ValueError("synthetic: need n_extra_entities >= n_relations * n_clusters and "
                     "n_tags >= n_clusters (every cluster owns attributes)")
  rng = np.random.default_rng(seed)
  item_cluster = rng.permutation(np.arange(n_items) % n_clusters)
  rank = rng.permutation(n_items)
  tail = rank >= n_items - round(tail_fraction * n_items)
  pop = (rank + 1.0) ** -item_exponent
  if tail.any():   # scale the tail's popularity so that it expects k pairs in all
    k = min(tail_interactions * tail.sum(), n_interactions / 2)
    pop[tail] *= k * pop[~tail].sum() / (pop[tail].sum() * (n_interactions - k))
  mass = np.bincount(item_cluster, pop, n_clusters) / pop.sum()
  user_clusters = rng.choice(n_clusters, size=(n_users, prefs_per_user), p=mass)
  user_weights = rng.dirichlet(np.ones(prefs_per_user), size=n_users)
  activity = _activity(rng, n_users, n_interactions, _MAX_USER_SHARE * n_items, user_exponent)
  pick_item = _cluster_sampler(item_cluster, pop, n_clusters)

  def draw_pairs(m):
    users = np.repeat(np.arange(n_users, dtype=np.int32), _allocate(rng, activity, m))
    cluster = _preferred(rng, users, user_clusters, user_weights)
    wander = rng.random(m) < explore
    cluster[wander] = rng.choice(n_clusters, int(wander.sum()), p=mass)
    return users.astype(np.int64) * n_items + pick_item(rng, cluster)

  pairs = _unique_draws(rng, draw_pairs, n_interactions)
  interactions = np.stack(np.divmod(pairs, n_items), 1)

  n_entities = n_items + n_extra
  extra = np.arange(n_extra)
  entity_cluster = np.concatenate([np.full(n_items, -1), (extra // n_relations) % n_clusters])
  kg = _kg(rng, item_cluster, n_extra, n_relations, n_clusters, n_triples, noise)
  aux = _aux(rng, item_cluster, n_clusters, user_clusters, user_weights, n_tags, aux_per_item,
             user_aux, noise)
  ds = Dataset(
      name=name, n_users=n_users, n_items=n_items, n_entities=n_entities,
      interactions=interactions, kg=kg,
      relation_names=tuple(f"belongs_to_attr_{k}" for k in range(n_relations)), aux=aux,
      item_titles=np.array([f"item {i} (cluster {c})" for i, c in enumerate(item_cluster)],
                           dtype=object),
      notes=(f"synthetic: seed {seed}, {n_clusters} clusters, {int(tail.sum())} tail items, "
             f"{len(interactions)} pairs, {len(kg)} triples, {len(aux)} aux facts",))
  latent = Latent(item_cluster=item_cluster, user_clusters=user_clusters,
                  user_weights=user_weights, entity_cluster=entity_cluster,
                  tag_cluster=np.arange(n_tags) % n_clusters, tail=tail)
  return ds.validate(), latent


def _activity(rng, n_users: int, total: int, cap: float, exponent: float) -> np.ndarray:
  """Expected interactions per user: Zipf-like over a random user order, clipped to
  [min(_MIN_PER_USER, mean), cap] and scaled (by bisection) to sum to `total`."""
  w = (rng.permutation(n_users) + 1.0) ** -exponent
  floor = min(_MIN_PER_USER, total / n_users)
  lo, hi = 0.0, cap / w.min()
  for _ in range(100):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if np.clip(mid * w, floor, cap).sum() < total else (lo, mid)
  return np.clip(hi * w, floor, cap)


def _allocate(rng, expected: np.ndarray, m: int) -> np.ndarray:
  """Integer counts summing to `m`, proportional to `expected`: the floor of each share plus a
  multinomial draw of the remainder (so every user gets at least the floor of its share)."""
  share = expected * (m / expected.sum())
  counts = np.floor(share).astype(np.int64)
  rest = share - counts
  left = m - int(counts.sum())
  return counts + (rng.multinomial(left, rest / rest.sum()) if left else 0)


def _preferred(rng, users: np.ndarray, clusters: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """For each interaction of `users`, one of the user's preferred clusters, by its weight."""
  cum = np.cumsum(weights, 1)
  r = rng.random(len(users))
  slot = np.zeros(len(users), np.int64)
  for k in range(weights.shape[1] - 1):
    slot += r >= cum[users, k]
  return clusters[users, slot]


def _cluster_sampler(item_cluster: np.ndarray, pop: np.ndarray, n_clusters: int):
  """A function (rng, cluster[N]) -> item[N], each item drawn by popularity within its cluster.

  Items sorted by cluster carry the key cluster + (cumulative popularity share within the
  cluster), so one searchsorted of cluster + U[0, 1) draws them all.
  """
  order = np.argsort(item_cluster, kind="stable")
  c = item_cluster[order]
  cs = np.cumsum(pop[order])
  last = np.cumsum(np.bincount(item_cluster, minlength=n_clusters)) - 1
  before = np.concatenate([[0.0], cs[last[:-1]]])
  key = c + (cs - before[c]) / (cs[last] - before)[c]
  return lambda rng, cluster: order[np.searchsorted(key, cluster + rng.random(len(cluster)),
                                                    side="right")]


def _unique_draws(rng, draw, n: int) -> np.ndarray:
  """`n` distinct sorted int64 keys from repeated `draw(m)` calls (fewer if draws stop adding
  new keys); a surplus is removed uniformly at random."""
  keys, m = np.zeros(0, np.int64), n
  for _ in range(_ROUNDS):
    merged = distinct(np.concatenate([keys, draw(m)]))
    gained, keys = len(merged) - len(keys), merged
    if len(keys) >= n or gained == 0:
      break
    m = int(min(4 * n, 1.25 * (n - len(keys)) * m / gained)) + 1
  if len(keys) > n:
    keys = np.delete(keys, rng.choice(len(keys), len(keys) - n, replace=False))
  return keys


def _pools(n: int, n_groups: int, group: np.ndarray) -> np.ndarray:
  """Sizes of the pools {k < n : k % n_groups == g} for each g in `group`."""
  return (n - 1 - group) // n_groups + 1


def _kg(rng, item_cluster, n_extra, n_relations, n_clusters, n_triples, noise) -> np.ndarray:
  """Item -> attribute triples. Attribute entity n_items + e has relation e % R and belongs to
  cluster (e // R) % C; an item links (round robin, so every item has links) through a random
  relation to an entity of its own cluster, or with probability `noise` of a random cluster,
  skewed towards a few common entities per pool."""
  n_items = len(item_cluster)
  n_entities = n_items + n_extra
  groups = n_relations * n_clusters
  start = [0]

  def draw(m):
    heads = (start[0] + np.arange(m)) % n_items
    start[0] += m
    rel = rng.integers(n_relations, size=m)
    cluster = np.where(rng.random(m) < noise, rng.integers(n_clusters, size=m),
                       item_cluster[heads])
    group = rel + n_relations * cluster
    j = np.floor(_pools(n_extra, groups, group) * rng.random(m) ** 2).astype(np.int64)
    tails = n_items + group + groups * j
    return (heads * n_relations + rel) * n_entities + tails

  keys = _unique_draws(rng, draw, n_triples)
  head_rel, tails = np.divmod(keys, n_entities)
  return np.stack([head_rel // n_relations, head_rel % n_relations, tails], 1)


def _aux(rng, item_cluster, n_clusters, user_clusters, user_weights, n_tags, per_item, user_aux,
         noise) -> AuxFacts:
  """Tag facts on items (tag t belongs to cluster t % C; an item's tag is one of its cluster's,
  relevance 0.6-1, or with probability `noise` any tag, relevance 0.05-0.5) and, with `user_aux`,
  one age bucket per user (that of the user's main cluster with probability _AGE_FIT)."""
  items = np.repeat(np.arange(len(item_cluster)), per_item)
  own = rng.random(len(items)) >= noise
  c = item_cluster[items]
  picked = c + n_clusters * np.floor(_pools(n_tags, n_clusters, c) * rng.random(len(items)))
  tag = np.where(own, picked.astype(np.int64), rng.integers(n_tags, size=len(items)))
  weight = np.where(own, 0.6 + 0.4 * rng.random(len(items)), 0.05 + 0.45 * rng.random(len(items)))
  key = items * n_tags + tag
  order = np.argsort(key, kind="stable")
  first = order[np.concatenate([[True], np.diff(key[order]) != 0])]   # one fact per (item, tag)
  owner, node, weight = items[first], tag[first], weight[first]
  names = [f"tag=tag_{t}" for t in range(n_tags)]
  node_attr = np.zeros(n_tags, np.int64)
  is_user = np.zeros(len(owner), bool)
  if user_aux:
    n_users = len(user_clusters)
    cluster_age = rng.integers(len(_AGES), size=n_clusters)
    main = user_clusters[np.arange(n_users), np.argmax(user_weights, 1)]
    age = np.where(rng.random(n_users) < _AGE_FIT, cluster_age[main],
                   rng.integers(len(_AGES), size=n_users))
    owner = np.concatenate([owner, np.arange(n_users)])
    node = np.concatenate([node, n_tags + age])
    weight = np.concatenate([weight, np.ones(n_users)])
    is_user = np.concatenate([is_user, np.ones(n_users, bool)])
    names += [f"age={a}" for a in _AGES]
    node_attr = np.concatenate([node_attr, np.ones(len(_AGES), np.int64)])
  return AuxFacts(owner=owner.astype(np.int64), owner_is_user=is_user,
                  node=node.astype(np.int64), weight=weight.astype(np.float32),
                  node_attr=node_attr, node_names=np.array(names, dtype=object),
                  attr_names=("tag", "age") if user_aux else ("tag",))
