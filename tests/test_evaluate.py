"""kgax.evaluate against a per-user numpy reference and a case worked out by hand."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kgax import evaluate

KS = (1, 5, 20, 60)   # 60 > n_items: more cut-off than candidates


def reference(scores, truth, exclude, ks):
  """Per-user metrics by loops: {key: [n_eval_users]} over users with truth items, ascending.

  truth, exclude: lists of sets. Ranking: stable argsort of -score over the non-excluded items
  (ties: lower item index first, as lax.top_k).
  """
  out = {}
  for u, (t, x) in enumerate(zip(truth, exclude)):
    if not t:
      continue
    s = scores[u]
    ranked = [i for i in np.argsort(-s, kind="stable") if i not in x]
    row = {}
    for k in ks:
      hit_ranks = [p + 1 for p, i in enumerate(ranked[:k]) if i in t]
      dcg = sum(1 / np.log2(p + 1) for p in hit_ranks)
      idcg = sum(1 / np.log2(p + 1) for p in range(1, min(len(t), k) + 1))
      row[f"recall@{k}"] = len(hit_ranks) / len(t)
      row[f"ndcg@{k}"] = dcg / idcg
      row[f"precision@{k}"] = len(hit_ranks) / k
      row[f"hit@{k}"] = float(len(hit_ranks) > 0)
    negatives = [j for j in range(len(s)) if j not in t and j not in x]
    pairs = [(s[i] > s[j]) + 0.5 * (s[i] == s[j]) for i in t for j in negatives]
    row["auc"] = np.mean(pairs) if pairs else np.nan
    for key, v in row.items():
      out.setdefault(key, []).append(v)
  return {key: np.array(v) for key, v in out.items()}


def _sets(pairs, n_users):
  sets = [set() for _ in range(n_users)]
  for u, i in pairs:
    sets[u].add(int(i))
  return sets


def make_data():
  """37 users x 53 items; scores rounded to one decimal so that ties (also -0.0 = 0.0) are common.

  Per user a random set of interacted items split into train / valid / test; every fifth user
  has no test items, user 0 has interacted with every item (no negatives: AUC undefined) and
  user 1 has 3 non-excluded items (fewer candidates than K).
  """
  rng = np.random.default_rng(0)
  n_users, n_items = 37, 53
  scores = np.round(rng.normal(size=(n_users, n_items)), 1).astype(np.float32)
  train, valid, test = [], [], []
  for u in range(n_users):
    items = rng.permutation(n_items)
    if u == 0:
      part = rng.choice([0, 2], n_items)
    elif u == 1:
      part = np.r_[rng.integers(0, 2, n_items - 3), 2, 2, 3]   # 3: a negative
    else:
      part = np.r_[rng.integers(0, 3 if u % 5 else 2, rng.integers(0, 25))]
    for p, pairs in enumerate((train, valid, test)):
      pairs += [(u, i) for i in items[:len(part)][part == p]]
  train, valid, test = (np.array(a, np.int64).reshape(-1, 2) for a in (train, valid, test))
  exclude = np.concatenate([train, valid, train[:5]])   # a few duplicates: counted once
  return dict(n_users=n_users, n_items=n_items, scores=scores, test=test, exclude=exclude,
              want=reference(scores, _sets(test, n_users), _sets(exclude, n_users), KS))


@pytest.fixture(scope="module")
def data():
  return make_data()


def _check(got, want):
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _means(per_user):
  return {key: np.nanmean(v) for key, v in per_user.items()}


def test_data_covers_the_edge_cases(data):
  truth = _sets(data["test"], data["n_users"])
  exclude = _sets(data["exclude"], data["n_users"])
  assert not any(t & x for t, x in zip(truth, exclude))
  assert sum(not t for t in truth) >= 5
  assert len(truth[0] | exclude[0]) == data["n_items"] and truth[0]
  assert 0 < data["n_items"] - len(exclude[1]) < min(k for k in KS if k > 1)
  assert np.isnan(data["want"]["auc"]).sum() == 1
  assert (np.signbit(data["scores"]) & (data["scores"] == 0)).any()   # -0.0 ties with 0.0


@pytest.mark.parametrize("batch_size, threads", [(4, 1), (7, 3), (64, 2)])
def test_matches_reference_for_any_batch_size(data, batch_size, threads):
  ev = evaluate.Evaluator(data["n_users"], data["n_items"], data["test"], data["exclude"],
                          ks=KS, batch_size=batch_size, threads=threads)
  scores = jnp.asarray(data["scores"])
  score_fn = jax.jit(lambda users: scores[users])
  per_user = ev(score_fn, per_user=True)
  np.testing.assert_array_equal(per_user.pop("user"),
                                np.unique(data["test"][:, 0]))
  _check(per_user, data["want"])
  _check(ev(score_fn), _means(data["want"]))


def test_embeddings_helper_equals_score_fn(data):
  rng = np.random.default_rng(1)
  user_emb = rng.integers(-2, 3, size=(data["n_users"], 3)).astype(np.float32)   # exact ties
  item_emb = rng.integers(-2, 3, size=(data["n_items"], 3)).astype(np.float32)
  want = reference(user_emb @ item_emb.T, _sets(data["test"], data["n_users"]),
                   _sets(data["exclude"], data["n_users"]), KS)
  ev = evaluate.Evaluator(data["n_users"], data["n_items"], data["test"], data["exclude"],
                          ks=KS, batch_size=8)
  got = ev.evaluate_embeddings(jnp.asarray(user_emb), jnp.asarray(item_emb), per_user=True)
  got.pop("user")
  _check(got, want)
  score_fn = jax.jit(lambda users: jnp.asarray(user_emb)[users] @ jnp.asarray(item_emb).T)
  assert ev.evaluate_embeddings(user_emb, item_emb) == ev(score_fn)


def test_metric_subset_and_single_device_mesh(data):
  mesh = jax.make_mesh((1,), ("data",))
  ev = evaluate.Evaluator(data["n_users"], data["n_items"], data["test"], data["exclude"],
                          ks=(5, 20), batch_size=16, metrics=("recall", "auc"), mesh=mesh)
  got = ev(jax.jit(lambda users: jnp.asarray(data["scores"])[users]))
  assert list(got) == ["recall@5", "recall@20", "auc"]
  want = _means(data["want"])
  for key in got:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5)
  ndcg = ev.with_metrics(("ndcg",))   # shares the entries, computes other metrics
  got = ndcg(jax.jit(lambda users: jnp.asarray(data["scores"])[users]))
  assert list(got) == ["ndcg@5", "ndcg@20"] and ev.metrics == ("recall", "auc")
  for key in got:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5)
  with pytest.raises(ValueError, match="unknown metrics"):
    ev.with_metrics(("mrr",))


def test_hand_computed_case():
  # User 0: item 0 excluded (train), truth {2, 4}, scores [5, 4, 3, 3, 1].
  #   Ranking of the candidates 1..4: item 1 (4), item 2 (3), item 3 (3; tie, higher index
  #   second), item 4 (1); hits at ranks 2 and 4.
  #   @1: recall 0, ndcg 0.  @2: recall 1/2, ndcg = (1/log2 3) / (1 + 1/log2 3).
  #   @5 (only 4 candidates): recall 1, precision 2/5,
  #       ndcg = (1/log2 3 + 1/log2 5) / (1 + 1/log2 3).
  #   AUC: negatives {1, 3}; pairs (2,1) 3<4: 0, (2,3) 3=3: 1/2, (4,1): 0, (4,3): 0 -> 0.5/4.
  # User 1: item 3 excluded (validation), truth {0}, scores [2, 2, 0, 9, 1].
  #   Items 0 and 1 tie at 2; the lower index, item 0, ranks first: a hit at rank 1.
  #   recall = ndcg = 1 at every K; precision@5 = 1/5.
  #   AUC: negatives {1, 2, 4}; pairs (0,1) tie: 1/2, (0,2): 1, (0,4): 1 -> 2.5/3.
  scores = jnp.array([[5, 4, 3, 3, 1], [2, 2, 0, 9, 1]], jnp.float32)
  ev = evaluate.Evaluator(2, 5, np.array([[0, 2], [0, 4], [1, 0]]), np.array([[0, 0], [1, 3]]),
                          ks=(1, 2, 5), batch_size=2)
  got = ev(lambda users: scores[users])
  g3, g5 = 1 / np.log2(3), 1 / np.log2(5)
  want = {
      "recall@1": (0 + 1) / 2, "recall@2": (1 / 2 + 1) / 2, "recall@5": (1 + 1) / 2,
      "ndcg@1": (0 + 1) / 2, "ndcg@2": (g3 / (1 + g3) + 1) / 2,
      "ndcg@5": ((g3 + g5) / (1 + g3) + 1) / 2,
      "precision@1": (0 + 1) / 2, "precision@2": (1 / 2 + 1 / 2) / 2,
      "precision@5": (2 / 5 + 1 / 5) / 2,
      "hit@1": 0.5, "hit@2": 1.0, "hit@5": 1.0,
      "auc": (0.5 / 4 + 2.5 / 3) / 2,
  }
  assert set(got) == set(want)
  for key in want:
    assert got[key] == pytest.approx(want[key], rel=1e-6), key


@pytest.mark.parametrize("truth, exclude, message", [
    ([[0, 1]], [[0, 1]], "both truth and excluded"),
    ([[0, 5]], [], "item id 5 out of range"),
    ([], [[0, 1]], "no user has a truth item"),
])
def test_bad_input(truth, exclude, message):
  with pytest.raises(ValueError, match=message):
    evaluate.Evaluator(2, 5, np.array(truth), np.array(exclude))


def test_splits_batches_across_devices():
  """With 4 (CPU) devices and a mesh (1-D, or 2-D as training's ("data", "model")), the metrics
  equal the single-device ones, and each device ranks a quarter of every batch's users."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
      from kgax import evaluate
      assert jax.device_count() == 4
      rng = np.random.default_rng(0)
      user_emb = rng.integers(-2, 3, size=(30, 3)).astype(np.float32)
      item_emb = rng.integers(-2, 3, size=(20, 3)).astype(np.float32)
      keys = np.unique(rng.integers(0, 30 * 20, 200))
      pairs = np.stack([keys // 20, keys % 20], 1)
      args = (30, 20, pairs[::3], np.delete(pairs, np.s_[::3], 0))
      single = evaluate.Evaluator(*args, ks=(3, 10), batch_size=6)
      want = single.evaluate_embeddings(user_emb, item_emb)
      scores = jnp.asarray(user_emb @ item_emb.T)
      score_fn = jax.jit(lambda users: scores[users])
      meshes = [jax.make_mesh((4,), ("data",), axis_types=t) for t in (None, (AxisType.Auto,))]
      meshes.append(jax.make_mesh((2, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2))
      blocks = []   # the rows each device's ranking block sees (recorded when traced)
      rank_entries = evaluate.rank_entries
      def recording(scores, *args, **kwargs):
        blocks.append(scores.shape[0])
        return rank_entries(scores, *args, **kwargs)
      evaluate.rank_entries = recording
      for emb_mesh in meshes:   # jax.make_mesh's default axis type is Explicit
        replicated = NamedSharding(emb_mesh, P())   # as the training state is placed
        emb = [jax.device_put(e, replicated) for e in (user_emb, item_emb)]
        for mesh in meshes + [None]:
          ev = evaluate.Evaluator(*args, ks=(3, 10), batch_size=6, mesh=mesh)
          assert ev.batch_size == (6 if mesh is None else 8)
          for got in (ev.evaluate_embeddings(*emb), ev(score_fn)):
            assert got.keys() == want.keys()
            for key in want:
              np.testing.assert_allclose(got[key], want[key], rtol=1e-6)
      assert set(blocks) == {6, 2}, blocks   # whole batches without a mesh, 8 / 4 with one
      """)
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="4", JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert result.returncode == 0, result.stderr


def test_auc_from_entries_matches_reference_with_small_blocks(data):
  """AUC straight from auc_from_entries, with blocks smaller than the entries and padding
  entries, against the numpy reference on the tie-heavy data; rank_metrics refuses AUC."""
  truth = np.zeros((data["n_users"], data["n_items"]), bool)
  exclude = np.zeros_like(truth)
  truth[data["test"][:, 0], data["test"][:, 1]] = True
  exclude[data["exclude"][:, 0], data["exclude"][:, 1]] = True
  rows, cols = np.nonzero(truth)
  rows = np.r_[rows, 0, 0].astype(np.int32)                      # two padding entries
  cols = np.r_[cols, data["n_items"], data["n_items"]].astype(np.int32)
  got = evaluate.auc_from_entries(jnp.asarray(data["scores"]), jnp.asarray(truth),
                                  jnp.asarray(exclude), jnp.asarray(rows), jnp.asarray(cols),
                                  chunk=16)
  np.testing.assert_allclose(np.asarray(got)[truth.any(1)], data["want"]["auc"], rtol=1e-5)
  with pytest.raises(ValueError, match="not ranking metrics"):
    evaluate.rank_metrics(jnp.asarray(data["scores"]), jnp.asarray(truth), jnp.asarray(exclude),
                          ks=(5,), metrics=("auc",))


def _masks(data):
  truth = np.zeros((data["n_users"], data["n_items"]), bool)
  exclude = np.zeros_like(truth)
  truth[data["test"][:, 0], data["test"][:, 1]] = True
  exclude[data["exclude"][:, 0], data["exclude"][:, 1]] = True
  return truth, exclude


def test_rank_metrics_and_rank_entries_blocks_match_reference(data):
  """The mask form, and the entry form on row blocks of a batch (as each device of a mesh ranks
  its block: entries of other rows are ignored), against the numpy reference."""
  truth, exclude = _masks(data)
  keep = truth.any(1)
  want = {k: v for k, v in data["want"].items() if k != "auc"}
  scores = jnp.asarray(data["scores"])
  _check({k: np.asarray(v)[keep] for k, v in
          evaluate.rank_metrics(scores, jnp.asarray(truth), jnp.asarray(exclude), ks=KS).items()},
         want)
  n = data["n_items"]
  entries = []
  for mask in (truth, exclude):
    rows, cols = np.nonzero(mask)   # sorted by (row, item), then two padding entries
    entries += [np.r_[rows, 0, 0].astype(np.int32), np.r_[cols, n, n].astype(np.int32)]
  blocks = [evaluate.rank_entries(scores[lo:lo + 10], *map(jnp.asarray, entries), ks=KS,
                                  row_offset=lo) for lo in range(0, data["n_users"], 10)]
  got = {k: np.concatenate([b[k] for b in blocks])[keep] for k in want}
  _check(got, want)


def test_top_k_ties_negative_zero_with_zero():
  """lax.top_k alone ranks -0.0 below 0.0; the evaluator's top-k ties them (lower index first)
  whether or not a zero reaches the top k."""
  scores = jnp.array([[-0.0, 0.0, -1.0, -0.0, 2.0], [3.0, -0.0, 0.0, 1.0, 2.0]])
  assert jax.lax.top_k(scores, 3)[1][0].tolist() == [4, 1, 0]
  assert evaluate.top_k(scores, 3).tolist() == [[4, 0, 1], [0, 4, 3]]
  assert evaluate.top_k(scores, 5)[1].tolist() == [0, 4, 3, 1, 2]


def test_batch_size_too_large_for_int32_keys_is_refused():
  with pytest.raises(ValueError, match="batch_size=65536: batch_size \\* \\(n_items \\+ 1\\)"):
    evaluate.Evaluator(2, 40_000, np.array([[0, 1]]), np.array([[1, 2]]), batch_size=65536)


def test_batched_pairs_cut_a_user_subset_into_batches():
  rng = np.random.default_rng(3)
  n_users, n_items, batch = 9, 12, 4
  pairs = rng.integers(0, [n_users, n_items], (60, 2))
  pairs = np.concatenate([pairs, pairs[:5]])   # duplicates count once
  users = np.array([7, 0, 3, 8, 5, 2])          # any order, any subset
  rows, cols = evaluate.batched_pairs(pairs, n_users, n_items, users, batch)
  assert rows.shape == cols.shape and rows.shape[0] == 2
  seen = {(u, i) for u, i in pairs.tolist()}
  for b in range(2):
    part = users[b * batch:(b + 1) * batch]
    keep = cols[b] < n_items                       # padding entries point past the items
    got = sorted((int(part[r]), int(c)) for r, c in zip(rows[b][keep], cols[b][keep]))
    assert got == sorted((u, i) for u, i in seen if u in set(part.tolist()))
  with pytest.raises(ValueError, match="exclude pairs: item id 12 out of range"):
    evaluate.batched_pairs(np.array([[0, 12]]), n_users, n_items, users, batch)
