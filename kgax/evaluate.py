"""Full-ranking evaluation (SPEC section 5): Recall, Precision, Hit and NDCG at K, and AUC.

Every user with at least one truth (test or validation) item is scored against all items, with
the excluded items (train, and validation when testing) removed. Users go through the device in
fixed-size batches (one compile); only per-user metric vectors come back to the host.

Ties in the top-K are broken by item index: `jax.lax.top_k` puts the lower index first, which is
the order of a stable argsort of -score. In AUC a tie between a truth item and a negative counts
1/2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

RANKING_METRICS = ("recall", "ndcg", "precision", "hit")
METRICS = RANKING_METRICS + ("auc",)


def metric_names(ks: Sequence[int], metrics: Sequence[str] = METRICS) -> list[str]:
  """Result keys in order: "recall@20", "recall@40", ..., "auc"."""
  return [name for m in metrics
          for name in ([f"{m}@{k}" for k in ks] if m in RANKING_METRICS else [m])]


def rank_metrics(scores: jax.Array, truth: jax.Array, exclude: jax.Array, *, ks: Sequence[int],
                 metrics: Sequence[str] = RANKING_METRICS) -> dict[str, jax.Array]:
  """Per-user ranking metrics [B] from scores [B, N] and disjoint boolean masks truth, exclude.

  With hits@K the truth items among the K best non-excluded items and T = |truth|:
    recall@K = hits / T,  precision@K = hits / K,  hit@K = [hits > 0],
    ndcg@K = sum_{hit ranks p} 1/log2(p + 1) / sum_{p <= min(T, K)} 1/log2(p + 1).
  When K exceeds the number of candidates the remaining ranks hold no hits. Scores are finite.
  Keys "recall@20", ...; AUC comes from `auc_from_entries`.
  """
  unknown = set(metrics) - set(RANKING_METRICS)
  if unknown:
    raise ValueError(f"rank_metrics: {sorted(unknown)} are not ranking metrics "
                     "(AUC: auc_from_entries)")
  n_items = scores.shape[1]
  scores = jnp.where(scores == 0, 0, scores)   # top_k puts -0.0 below 0.0; make them tie
  k_max = min(max(ks), n_items)
  n_truth = truth.sum(1)
  n_t = jnp.maximum(n_truth, 1).astype(jnp.float32)
  _, top = jax.lax.top_k(jnp.where(exclude, -jnp.inf, scores), k_max)
  hits = jnp.take_along_axis(truth, top, axis=1).astype(jnp.float32)
  discount = 1.0 / jnp.log2(jnp.arange(2, k_max + 2, dtype=jnp.float32))
  cum_hits = jnp.cumsum(hits, axis=1)
  cum_dcg = jnp.cumsum(hits * discount, axis=1)
  cum_idcg = jnp.cumsum(discount)
  at = {}
  for k in ks:
    h = cum_hits[:, min(k, k_max) - 1]
    at[k] = {
        "recall": h / n_t,
        "ndcg": cum_dcg[:, min(k, k_max) - 1] / cum_idcg[jnp.minimum(n_truth, k).clip(1) - 1],
        "precision": h / k,
        "hit": (h > 0).astype(jnp.float32),
    }
  return {f"{m}@{k}": at[k][m] for m in metrics for k in ks}


def _pair_keys(pairs: np.ndarray, n_users: int, n_items: int, what: str) -> np.ndarray:
  """(user, item) pairs [P, 2] -> sorted unique keys user * n_items + item [nnz]."""
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  for col, name, n in ((0, "user", n_users), (1, "item", n_items)):
    bad = (pairs[:, col] < 0) | (pairs[:, col] >= n)
    if bad.any():
      raise ValueError(f"{what} pairs: {name} id {pairs[bad, col][0]} out of range [0, {n})")
  return np.unique(pairs[:, 0] * n_items + pairs[:, 1])


def _csr(keys: np.ndarray, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
  """Sorted pair keys [nnz] as CSR: indptr [n_users + 1], items int32 [nnz]."""
  indptr = np.r_[0, np.cumsum(np.bincount(keys // n_items, minlength=n_users))]
  return indptr, (keys % n_items).astype(np.int32)


def _batched_coo(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, batch_size: int,
                 pad: int) -> tuple[np.ndarray, np.ndarray]:
  """The (row in batch, item) entries of `users` [M] in batches of batch_size.

  Returns rows, cols int32 [n_batches, L], L the largest batch's entry count; padding entries
  have col = pad (out of range, dropped by the scatter).
  """
  n_batches = -(-len(users) // batch_size)
  counts = indptr[users + 1] - indptr[users]
  owner = np.repeat(np.arange(len(users)), counts)
  first = indptr[users] - (np.cumsum(counts) - counts)
  cols = items[np.arange(len(owner)) + first[owner]]
  batch = owner // batch_size
  per_batch = np.bincount(batch, minlength=n_batches)
  pos = np.arange(len(owner)) - np.repeat(np.cumsum(per_batch) - per_batch, per_batch)
  rows_out = np.zeros((n_batches, max(per_batch.max(), 1)), np.int32)
  cols_out = np.full(rows_out.shape, pad, np.int32)
  rows_out[batch, pos] = owner % batch_size
  cols_out[batch, pos] = cols
  return rows_out, cols_out


def auc_from_entries(scores: jax.Array, truth: jax.Array, exclude: jax.Array, rows: jax.Array,
                     cols: jax.Array, *, chunk: int = 128) -> jax.Array:
  """Per-row AUC [B] from masks [B, N] and the truth entries (rows, cols) [L] (cols equal to the
  number of items mark padding):
    auc = mean over (t in truth, j negative) of [s_t > s_j] + [s_t = s_j] / 2,
  negatives being the items neither in truth nor excluded (NaN for a row with none).

  Each truth item's score is compared with its row: correct pairs = negatives below it + ties / 2.
  That is O(L x N) comparisons in blocks of `chunk` entries, against XLA:CPU's sort of every row,
  which takes seconds per batch of a few hundred users over tens of thousands of items.
  """
  b, n = scores.shape
  scores = jnp.where(scores == 0, 0, scores)
  negative = ~(truth | exclude)
  valid = cols < n
  s_t = scores[rows, jnp.where(valid, cols, 0)]
  pad = (-rows.shape[0]) % chunk
  r = jnp.pad(rows, (0, pad)).reshape(-1, chunk)
  st = jnp.pad(s_t, (0, pad)).reshape(-1, chunk)

  def block(args):
    r, st = args
    row, neg = scores[r], negative[r]
    below = jnp.sum(neg & (row < st[:, None]), 1)
    ties = jnp.sum(neg & (row == st[:, None]), 1)
    return below.astype(jnp.float32) + 0.5 * ties.astype(jnp.float32)
  correct = jax.lax.map(block, (r, st)).reshape(-1)[:rows.shape[0]]
  correct = jax.ops.segment_sum(jnp.where(valid, correct, 0), rows, b)
  n_t = jnp.maximum(truth.sum(1), 1).astype(jnp.float32)
  return correct / (n_t * negative.sum(1))


@functools.partial(jax.jit, static_argnames=("ks", "metrics", "mesh"))
def _batch_metrics(scores, truth_rows, truth_cols, excl_rows, excl_cols, *, ks, metrics, mesh):
  """Builds the truth and exclusion masks [B, N] from padded entries, then `rank_metrics` and
  `auc_from_entries`.

  With a mesh, each device ranks its own rows (shard_map over "data").
  """
  def mask(rows, cols):
    return jnp.zeros(scores.shape, bool).at[rows, cols].set(True, mode="drop")
  truth, exclude = mask(truth_rows, truth_cols), mask(excl_rows, excl_cols)
  ranking = tuple(m for m in metrics if m != "auc")
  out = {}
  if ranking:
    fn = functools.partial(rank_metrics, ks=ks, metrics=ranking)
    if mesh is not None:
      fn = jax.shard_map(fn, mesh=mesh, in_specs=P("data"), out_specs=P("data"))
    out = fn(scores, truth, exclude)
  if "auc" in metrics:
    out["auc"] = auc_from_entries(scores, truth, exclude, truth_rows, truth_cols)
  return out


@functools.partial(jax.jit, static_argnames="sharding")
def _dot_scores(user_emb: jax.Array, item_emb: jax.Array, users: jax.Array, *,
                sharding) -> jax.Array:
  """score(u, i) = e_u . e_i: [B, N], rows split by `sharding` when given."""
  rows = user_emb[users]
  if sharding is not None:
    rows = jax.lax.with_sharding_constraint(rows, sharding)
  return jnp.dot(rows, item_emb.T, precision=jax.lax.Precision.HIGHEST)


class Evaluator:
  """Full-ranking metrics of a model over the users that have truth items.

  Args:
    n_users, n_items: id ranges.
    truth_pairs: int [P, 2] (user, item) ground truth (test or validation pairs).
    exclude_pairs: int [Q, 2] (user, item) removed from the ranking (train, plus validation when
      testing); must not share a pair with truth_pairs. Duplicate pairs count once.
    ks: cut-offs K. metrics: a subset of METRICS.
    batch_size: users per batch (rounded up to a multiple of the mesh size).
    mesh: optional mesh whose "data" axis splits each batch's metric computation (and the scoring
      of `evaluate_embeddings`) across devices; a score_fn given to `__call__` gets a plain user
      array and shards its own work. Explicit mesh axes are used as Auto ones.
  """

  def __init__(self, n_users: int, n_items: int, truth_pairs: np.ndarray,
               exclude_pairs: np.ndarray, *, ks: Sequence[int] = (20, 40, 60, 80, 100),
               batch_size: int = 256, metrics: Sequence[str] = METRICS,
               mesh: jax.sharding.Mesh | None = None):
    unknown = set(metrics) - set(METRICS)
    if unknown:
      raise ValueError(f"unknown metrics {sorted(unknown)}; expected a subset of {METRICS}")
    if not ks or min(ks) < 1:
      raise ValueError(f"ks={ks}: expected positive cut-offs")
    truth_keys = _pair_keys(truth_pairs, n_users, n_items, "truth")
    excl_keys = _pair_keys(exclude_pairs, n_users, n_items, "exclude")
    both = np.intersect1d(truth_keys, excl_keys, assume_unique=True)
    if len(both):
      raise ValueError(f"{len(both)} (user, item) pairs are both truth and excluded, e.g. "
                       f"({both[0] // n_items}, {both[0] % n_items}); de-duplicate the "
                       "interactions before splitting")
    truth_ptr, truth_items = _csr(truth_keys, n_users, n_items)
    excl_ptr, excl_items = _csr(excl_keys, n_users, n_items)
    n_truth = np.diff(truth_ptr)
    self.users = np.flatnonzero(n_truth > 0)
    if not len(self.users):
      raise ValueError("no user has a truth item to evaluate")
    self.n_items = n_items
    self.ks = tuple(int(k) for k in ks)
    self.metrics = tuple(metrics)
    if mesh is not None:
      mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)
    self._mesh = mesh
    n_dev = mesh.shape["data"] if mesh is not None else 1
    self.batch_size = -(-batch_size // n_dev) * n_dev
    self._has_negative = (n_items - n_truth - np.diff(excl_ptr))[self.users] > 0
    n_batches = -(-len(self.users) // self.batch_size)
    padded = np.full(n_batches * self.batch_size, self.users[0])
    padded[:len(self.users)] = self.users
    self._batches = padded.reshape(n_batches, self.batch_size).astype(np.int32)
    self._truth = _batched_coo(truth_ptr, truth_items, self.users, self.batch_size, n_items)
    self._exclude = _batched_coo(excl_ptr, excl_items, self.users, self.batch_size, n_items)

  def __call__(self, score_fn: Callable[[jax.Array], jax.Array], *, per_user: bool = False
               ) -> dict[str, float] | dict[str, np.ndarray]:
    """Metrics of score_fn(users int32 [B]) -> scores [B, n_items] (best a jitted function).

    Returns {"recall@20": mean over users, ...}; with per_user, arrays [n_eval_users] per metric
    plus "user", the user ids (AUC is NaN for a user without negatives and left out of its mean).
    """
    outs = []
    for b, users in enumerate(self._batches):
      scores = score_fn(jnp.asarray(users))
      if scores.shape != (self.batch_size, self.n_items):
        raise ValueError(f"score_fn returned shape {scores.shape}, expected "
                         f"{(self.batch_size, self.n_items)}")
      if self._mesh is not None:
        scores = jax.device_put(scores, NamedSharding(self._mesh, P("data")))
      outs.append(_batch_metrics(scores, *(a[b] for a in self._truth + self._exclude),
                                 ks=self.ks, metrics=self.metrics, mesh=self._mesh))
    outs = jax.device_get(outs)
    n = len(self.users)
    per = {key: np.concatenate([o[key] for o in outs])[:n].astype(np.float64)
           for key in metric_names(self.ks, self.metrics)}
    if per_user:
      return {**per, "user": self.users}
    means = {key: float(v.mean()) for key, v in per.items()}
    if "auc" in per:
      means["auc"] = (float(per["auc"][self._has_negative].mean()) if self._has_negative.any()
                      else float("nan"))
    return means

  def evaluate_embeddings(self, user_emb: jax.Array, item_emb: jax.Array, *,
                          per_user: bool = False) -> dict[str, float] | dict[str, np.ndarray]:
    """Metrics of the dot-product scores user_emb [n_users, D] . item_emb [n_items, D]^T."""
    rows = None
    if self._mesh is not None:
      user_emb, item_emb = jax.device_put((user_emb, item_emb), NamedSharding(self._mesh, P()))
      rows = NamedSharding(self._mesh, P("data"))
    return self(functools.partial(_dot_scores, user_emb, item_emb, sharding=rows),
                per_user=per_user)
