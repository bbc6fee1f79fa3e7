"""Full-ranking evaluation (docs/model.md §5): Recall, Precision, Hit and NDCG at K, and AUC.

Every user with at least one truth (test or validation) item is scored against all items, with
the excluded items (train, and validation when testing) removed. Users go through the device in
fixed-size batches (one compile); only per-user metric vectors come back to the host. The
truth and excluded items of a batch travel as (row, item) entries, not [B, N] masks: exclusions
are written into the scores as -inf and each top-K item's truth is a binary search (AUC alone
builds the masks). On CPU several batches are in flight at once, from one thread each.

Ties in the top-K are broken by item index: `jax.lax.top_k` puts the lower index first, which is
the order of a stable argsort of -score. In AUC a tie between a truth item and a negative counts
1/2.
"""

from __future__ import annotations

import copy
import functools
import os
from concurrent import futures
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from kgax import sampling

RANKING_METRICS = ("recall", "ndcg", "precision", "hit")
METRICS = RANKING_METRICS + ("auc",)


def metric_names(ks: Sequence[int], metrics: Sequence[str] = METRICS) -> list[str]:
  """Result keys in order: "recall@20", "recall@40", ..., "auc"."""
  return [name for m in metrics
          for name in ([f"{m}@{k}" for k in ks] if m in RANKING_METRICS else [m])]


def top_k(scores: jax.Array, k: int) -> jax.Array:
  """Indices [B, k] of the k best scores per row, ties by lower index, -0.0 tied with 0.0.

  `lax.top_k` puts -0.0 below 0.0. Equating them costs a pass over the scores, so it only runs
  when a zero made it into the top k: otherwise every zero ranks below the k-th score whatever its
  sign (had the k-th score been negative, the zeros would have been selected), and the result is
  the same.
  """
  values, top = jax.lax.top_k(scores, k)
  return jax.lax.cond(jnp.any(values == 0),
                      lambda s: jax.lax.top_k(jnp.where(s == 0, 0, s), k)[1],
                      lambda s: top, scores)


def excluded_top_k(scores: jax.Array, rows: jax.Array, cols: jax.Array, k: int
                   ) -> tuple[jax.Array, jax.Array]:
  """(scores, top) : the scores [B, N] with the (row, item) entries [L] set to -inf (out-of-range
  rows or items, e.g. padding, are dropped) and `top_k` of them [B, k]. The scatter writes into
  the scores' own buffer when they are a temporary of the same jitted call."""
  scores = scores.at[rows, cols].set(-jnp.inf, mode="drop")
  return scores, top_k(scores, k)


def _from_hits(hits: jax.Array, n_truth: jax.Array, ks: Sequence[int],
               metrics: Sequence[str]) -> dict[str, jax.Array]:
  """Ranking metrics [B] from hits [B, K_max] (1 where rank p holds a truth item) and |truth|."""
  k_max = hits.shape[1]
  n_t = jnp.maximum(n_truth, 1).astype(jnp.float32)
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


def _check_ranking(metrics: Sequence[str]):
  unknown = set(metrics) - set(RANKING_METRICS)
  if unknown:
    raise ValueError(f"rank_metrics: {sorted(unknown)} are not ranking metrics "
                     "(AUC: auc_from_entries)")


def rank_metrics(scores: jax.Array, truth: jax.Array, exclude: jax.Array, *, ks: Sequence[int],
                 metrics: Sequence[str] = RANKING_METRICS) -> dict[str, jax.Array]:
  """Per-user ranking metrics [B] from scores [B, N] and disjoint boolean masks truth, exclude.

  With hits@K the truth items among the K best non-excluded items and T = |truth|:
    recall@K = hits / T,  precision@K = hits / K,  hit@K = [hits > 0],
    ndcg@K = sum_{hit ranks p} 1/log2(p + 1) / sum_{p <= min(T, K)} 1/log2(p + 1).
  When K exceeds the number of candidates the remaining ranks hold no hits. Scores are finite.
  Keys "recall@20", ...; AUC comes from `auc_from_entries`. The Evaluator computes the same
  from (row, item) entries instead of masks (`rank_entries`).
  """
  _check_ranking(metrics)
  top = top_k(jnp.where(exclude, -jnp.inf, scores), min(max(ks), scores.shape[1]))
  hits = jnp.take_along_axis(truth, top, axis=1).astype(jnp.float32)
  return _from_hits(hits, truth.sum(1), ks, metrics)


def rank_entries(scores: jax.Array, truth_rows: jax.Array, truth_cols: jax.Array,
                 excl_rows: jax.Array, excl_cols: jax.Array, *, ks: Sequence[int],
                 metrics: Sequence[str] = RANKING_METRICS, row_offset: jax.Array | int = 0
                 ) -> dict[str, jax.Array]:
  """`rank_metrics` with truth and exclusions given as (row, item) entries [L] of a batch.

  scores [B, N] are the batch's rows row_offset .. row_offset + B - 1 (a device's block; entries
  of other rows are ignored). Truth entries are sorted by (row, item); an item equal to N marks
  padding. Nothing of size [B, N] is built but the scores with the exclusions set to -inf: the
  truth of each top-K item is found by binary search of its (row, item) key in the truth entries.
  Needs (row_offset + B) * (N + 1) < 2^31.
  """
  _check_ranking(metrics)
  b, n = scores.shape
  local = lambda rows: jnp.where((rows >= row_offset) & (rows < row_offset + b),
                                 rows - row_offset, b)   # b: dropped
  _, top = excluded_top_k(scores, local(excl_rows), excl_cols, min(max(ks), n))
  valid = truth_cols < n
  keys = jnp.where(valid, truth_rows * (n + 1) + truth_cols, jnp.iinfo(jnp.int32).max)
  query = (row_offset + jnp.arange(b))[:, None] * (n + 1) + top
  pos = jnp.minimum(jnp.searchsorted(keys, query.reshape(-1)), keys.shape[0] - 1)
  hits = (keys[pos] == query.reshape(-1)).reshape(top.shape).astype(jnp.float32)
  n_truth = jax.ops.segment_sum(valid.astype(jnp.int32), local(truth_rows), b)
  return _from_hits(hits, n_truth, ks, metrics)


def _pair_keys(pairs: np.ndarray, n_users: int, n_items: int, what: str) -> np.ndarray:
  """(user, item) pairs [P, 2] -> sorted unique keys user * n_items + item [nnz]."""
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  for col, name, n in ((0, "user", n_users), (1, "item", n_items)):
    bad = (pairs[:, col] < 0) | (pairs[:, col] >= n)
    if bad.any():
      raise ValueError(f"{what} pairs: {name} id {pairs[bad, col][0]} out of range [0, {n})")
  return sampling.distinct(pairs[:, 0] * n_items + pairs[:, 1])


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


def _batch_metrics(scores, truth_rows, truth_cols, excl_rows, excl_cols, *, ks, metrics, mesh):
  """`rank_entries` (with a mesh: one block of users per device, shard_map over every mesh axis)
  and, if asked, `auc_from_entries`, which needs the truth and exclusion masks [B, N]."""
  ranking = tuple(m for m in metrics if m != "auc")
  out = {}
  if ranking:
    entries = (truth_rows, truth_cols, excl_rows, excl_cols)
    if mesh is None:
      out = rank_entries(scores, *entries, ks=ks, metrics=ranking)
    else:
      axes = mesh.axis_names
      def block(scores, *entries):
        offset = jax.lax.axis_index(axes) * scores.shape[0]
        return rank_entries(scores, *entries, ks=ks, metrics=ranking, row_offset=offset)
      out = jax.shard_map(block, mesh=mesh, in_specs=(P(axes),) + (P(),) * 4,
                          out_specs=P(axes))(scores, *entries)
      # the per-user metrics [B] (not the scores) go to every device: with several processes
      # each reads them from its own
      out = jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P()))
  if "auc" in metrics:
    def mask(rows, cols):
      return jnp.zeros(scores.shape, bool).at[rows, cols].set(True, mode="drop")
    out["auc"] = auc_from_entries(scores, mask(truth_rows, truth_cols),
                                  mask(excl_rows, excl_cols), truth_rows, truth_cols)
  return out


_STATIC = ("ks", "metrics", "mesh")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _score_metrics(scores, *entries, ks, metrics, mesh):
  """Metrics of one batch of scores [B, N] (from a score function)."""
  return _batch_metrics(scores, *entries, ks=ks, metrics=metrics, mesh=mesh)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _embedding_metrics(user_emb, item_emb, users, *entries, ks, metrics, mesh):
  """Metrics of the batch `users` under score(u, i) = e_u . e_i, scored and ranked in one call
  (the exclusions are written into the product's buffer, no copy of the scores)."""
  rows = user_emb[users]
  if mesh is not None:
    rows = jax.lax.with_sharding_constraint(rows, NamedSharding(mesh, P(mesh.axis_names)))
  scores = jnp.dot(rows, item_emb.T, precision=jax.lax.Precision.HIGHEST)
  return _batch_metrics(scores, *entries, ks=ks, metrics=metrics, mesh=mesh)


def default_threads() -> int:
  """Evaluation batches in flight at once: one per core on CPU, where XLA runs `lax.top_k` on a
  single thread (at most 8); 1 on accelerators, whose dispatch is asynchronous anyway."""
  return min(os.cpu_count() or 1, 8) if jax.default_backend() == "cpu" else 1


def _check_metrics(metrics: Sequence[str]) -> None:
  unknown = set(metrics) - set(METRICS)
  if unknown:
    raise ValueError(f"unknown metrics {sorted(unknown)}; expected a subset of {METRICS}")


def batched_pairs(pairs: np.ndarray, n_users: int, n_items: int, users: np.ndarray,
                  batch_size: int, what: str = "exclude") -> tuple[np.ndarray, np.ndarray]:
  """The items of (user, item) `pairs` that belong to `users` [M], cut into batches of
  batch_size users: rows (user's position in its batch), cols (item) int32 [n_batches, L];
  padding entries have col = n_items. For masking seen items out of a batch of score rows."""
  indptr, items = _csr(_pair_keys(pairs, n_users, n_items, what), n_users, n_items)
  return _batched_coo(indptr, items, np.asarray(users), batch_size, n_items)


class Evaluator:
  """Full-ranking metrics of a model over the users that have truth items.

  Args:
    n_users, n_items: id ranges.
    truth_pairs: int [P, 2] (user, item) ground truth (test or validation pairs).
    exclude_pairs: int [Q, 2] (user, item) removed from the ranking (train, plus validation when
      testing); must not share a pair with truth_pairs. Duplicate pairs count once.
    ks: cut-offs K. metrics: a subset of METRICS.
    batch_size: users per batch (rounded up to a multiple of the mesh size).
    mesh: optional mesh whose devices (all of them, every axis) each take a block of every
      batch's users: `evaluate_embeddings` scores and ranks a block per device, so no [B, N]
      score matrix is gathered on one device or host; a score_fn given to `__call__` gets a
      plain user array, and its scores are split the same way for ranking. Explicit mesh axes
      are used as Auto ones.
    threads: batches in flight at once (None: `default_threads()`).
  """

  def __init__(self, n_users: int, n_items: int, truth_pairs: np.ndarray,
               exclude_pairs: np.ndarray, *, ks: Sequence[int] = (20, 40, 60, 80, 100),
               batch_size: int = 256, metrics: Sequence[str] = METRICS,
               mesh: jax.sharding.Mesh | None = None, threads: int | None = None):
    _check_metrics(metrics)
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
    n_dev = mesh.size if mesh is not None else 1
    self.batch_size = -(-batch_size // n_dev) * n_dev
    self._has_negative = (n_items - n_truth - np.diff(excl_ptr))[self.users] > 0
    n_batches = -(-len(self.users) // self.batch_size)
    padded = np.full(n_batches * self.batch_size, self.users[0])
    padded[:len(self.users)] = self.users
    self._batches = padded.reshape(n_batches, self.batch_size).astype(np.int32)
    self._truth = _batched_coo(truth_ptr, truth_items, self.users, self.batch_size, n_items)
    self._exclude = _batched_coo(excl_ptr, excl_items, self.users, self.batch_size, n_items)
    if self.batch_size * (n_items + 1) >= 2 ** 31:
      raise ValueError(f"batch_size={self.batch_size}: batch_size * (n_items + 1) must stay below "
                       f"2^31 with {n_items} items; use a smaller evaluation batch")
    self.threads = default_threads() if threads is None else max(int(threads), 1)

  def with_metrics(self, metrics: Sequence[str]) -> Evaluator:
    """The same evaluator (users, truth and exclusion entries, batches) computing `metrics`."""
    _check_metrics(metrics)
    other = copy.copy(self)
    other.metrics = tuple(metrics)
    return other

  def __call__(self, score_fn: Callable[[jax.Array], jax.Array], *, per_user: bool = False
               ) -> dict[str, float] | dict[str, np.ndarray]:
    """Metrics of score_fn(users int32 [B]) -> scores [B, n_items] (best a jitted function).

    Returns {"recall@20": mean over users, ...}; with per_user, arrays [n_eval_users] per metric
    plus "user", the user ids (AUC is NaN for a user without negatives and left out of its mean).
    """
    def batch(b: int):
      scores = score_fn(jnp.asarray(self._batches[b]))
      if scores.shape != (self.batch_size, self.n_items):
        raise ValueError(f"score_fn returned shape {scores.shape}, expected "
                         f"{(self.batch_size, self.n_items)}")
      if self._mesh is not None:
        scores = jax.device_put(scores, NamedSharding(self._mesh, P(self._mesh.axis_names)))
      return _score_metrics(scores, *self._entries(b), ks=self.ks, metrics=self.metrics,
                            mesh=self._mesh)
    return self._collect(batch, per_user)

  def _entries(self, b: int) -> tuple[np.ndarray, ...]:
    return tuple(a[b] for a in self._truth + self._exclude)

  def _collect(self, batch: Callable[[int], dict], per_user: bool):
    """Runs batch(b) for every batch (`threads` at a time) and reduces the per-user metrics."""
    if self.threads > 1 and len(self._batches) > 1:
      with futures.ThreadPoolExecutor(self.threads) as pool:
        # Each thread waits for its batch: XLA:CPU runs a thread's computations one after the
        # other, so only computations dispatched from different threads overlap.
        outs = list(pool.map(lambda b: jax.block_until_ready(batch(b)),
                             range(len(self._batches))))
    else:
      outs = [batch(b) for b in range(len(self._batches))]
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
    if self._mesh is not None:
      user_emb, item_emb = jax.device_put((user_emb, item_emb), NamedSharding(self._mesh, P()))
    return self._collect(
        lambda b: _embedding_metrics(user_emb, item_emb, self._batches[b],
                                     *self._entries(b), ks=self.ks, metrics=self.metrics,
                                     mesh=self._mesh), per_user)
