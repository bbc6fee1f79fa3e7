"""kgax.ops against brute-force numpy on small random inputs."""

import functools

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from kgax import ops


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _softmax_reference(logits, ids, n):
  """Dense loop: a plain softmax per segment; padding ids (outside [0, n)) get weight 0."""
  out = np.zeros_like(logits, np.float64)
  for s in range(n):
    rows = ids == s
    if rows.any():
      z = np.exp(logits[rows] - logits[rows].max(0))
      out[rows] = z / z.sum(0)
  return out


def _segments(rng, n_entries, n_segments, sort):
  """Ids with empty segments (0 and 3 never used) and padding ids n and n + 2."""
  ids = rng.choice(np.r_[1, 2, 4:n_segments, n_segments, n_segments + 2], n_entries)
  return np.sort(ids) if sort else ids


@pytest.mark.parametrize("heads", [None, 3])
@pytest.mark.parametrize("sort", [False, True])
def test_segment_softmax_matches_dense_loop(heads, sort):
  rng = np.random.default_rng(0)
  n = 9
  ids = _segments(rng, 40, n, sort)
  logits = rng.normal(size=(40,) if heads is None else (40, heads)).astype(np.float32)
  got = ops.segment_softmax(jnp.asarray(logits), jnp.asarray(ids), n, indices_are_sorted=sort)
  np.testing.assert_allclose(got, _softmax_reference(logits, ids, n), rtol=1e-5, atol=1e-6)
  mass = np.asarray(ops.segment_sum(got, jnp.asarray(ids), n))
  used = np.isin(np.arange(n), ids)
  np.testing.assert_allclose(mass[used], 1.0, rtol=1e-5)
  assert np.all(mass[~used] == 0)
  assert np.all(np.asarray(got)[ids >= n] == 0)


def test_segment_softmax_is_stable_and_finite():
  ids = jnp.array([0, 0, 0, 2, 2, 5])
  logits = jnp.array([1e4, 1e4 - 1.0, -1e4, -1e4, -1e4 + 2.0, 1e4])
  got = ops.segment_softmax(logits, ids, 4)
  np.testing.assert_allclose(got, _softmax_reference(np.asarray(logits), np.asarray(ids), 4),
                             rtol=1e-6)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(ops.segment_softmax(x, ids, 4) ** 2)))(logits)
  assert np.all(np.isfinite(grad))
  # A segment whose logits are all -inf gets weight 0 and a finite gradient, not NaN.
  masked = logits.at[3:5].set(-jnp.inf)
  assert np.all(np.asarray(ops.segment_softmax(masked, ids, 4))[3:] == 0)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(ops.segment_softmax(x, ids, 4)[:3] ** 2)))(masked)
  assert np.all(np.isfinite(grad))


def test_segment_softmax_jits_with_static_num_segments():
  fn = jax.jit(ops.segment_softmax, static_argnums=2, static_argnames="indices_are_sorted")
  ids = jnp.array([0, 0, 1, 3])
  logits = jnp.array([0.5, -0.5, 2.0, 1.0])
  np.testing.assert_allclose(fn(logits, ids, 3, indices_are_sorted=True),
                             ops.segment_softmax(logits, ids, 3), rtol=1e-6)


def test_segment_softmax_grads(x64):
  rng = np.random.default_rng(1)
  ids = jnp.asarray(_segments(rng, 12, 6, sort=True))
  logits = jnp.asarray(rng.normal(size=12))
  fn = functools.partial(ops.segment_softmax, segment_ids=ids, num_segments=6,
                         indices_are_sorted=True)
  check_grads(jax.jit(fn), (logits,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("shape", [(7,), (7, 3)])
def test_segment_sum_and_mean(shape):
  rng = np.random.default_rng(2)
  n = 8
  ids = _segments(rng, shape[0], n, sort=False)
  data = rng.normal(size=shape).astype(np.float32)
  want_sum = np.stack([data[ids == s].sum(0) for s in range(n)])
  counts = np.array([(ids == s).sum() for s in range(n)]).reshape((n,) + (1,) * (data.ndim - 1))
  want_mean = np.where(counts > 0, want_sum / np.maximum(counts, 1), 0)
  np.testing.assert_allclose(ops.segment_sum(jnp.asarray(data), jnp.asarray(ids), n), want_sum,
                             rtol=1e-5, atol=1e-6)
  got_mean = ops.segment_mean(jnp.asarray(data), jnp.asarray(ids), n)
  np.testing.assert_allclose(got_mean, want_mean, rtol=1e-5, atol=1e-6)
  assert np.all(np.isfinite(got_mean))


def _correlation_reference(a, b):
  d = a.shape[-1]
  out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
  for k in range(d):
    for i in range(d):
      out[..., k] += a[..., i] * b[..., (i + k) % d]
  return out


@pytest.mark.parametrize("d", [8, 7])
def test_circular_correlation_matches_double_loop(d):
  rng = np.random.default_rng(3)
  a = rng.normal(size=(4, 1, d)).astype(np.float32)
  b = rng.normal(size=(3, d)).astype(np.float32)
  got = ops.circular_correlation(jnp.asarray(a), jnp.asarray(b))
  assert got.shape == (4, 3, d) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, _correlation_reference(a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("d", [6, 5])
def test_circular_correlation_grads(x64, d):
  rng = np.random.default_rng(4)
  a, b = (jnp.asarray(rng.normal(size=(2, d))) for _ in range(2))
  check_grads(jax.jit(ops.circular_correlation), (a, b), order=2, modes=("fwd", "rev"))


def test_embedding_lookup_pads_with_zeros():
  table = jnp.arange(12.0).reshape(4, 3)
  got = ops.embedding_lookup(table, jnp.array([[2, 4], [-1, 0]]))
  np.testing.assert_array_equal(got, [[[6, 7, 8], [0, 0, 0]], [[0, 0, 0], [0, 1, 2]]])


def test_l2_normalize():
  x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(ops.l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(ops.l2_normalize(x.T, axis=0), [[0.6, 0.0], [0.8, 0.0]], rtol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(ops.l2_normalize(v)))(x)
  assert np.all(np.isfinite(grad))


def test_weighted_spmm_matches_dense_product_and_its_gradient():
  from kgax import ops
  rng = np.random.default_rng(3)
  n, e, d = 7, 30, 4
  heads = np.sort(rng.integers(0, n, e))
  tails = rng.integers(0, n, e)
  w = rng.random(e)
  x = rng.normal(size=(n, d))
  dense = np.zeros((n, n))
  np.add.at(dense, (heads, tails), w)
  order = np.argsort(tails, kind="stable")
  args = [jnp.asarray(a) for a in (heads, tails, order)]
  got = ops.weighted_spmm(jnp.asarray(w, jnp.float32), jnp.asarray(x, jnp.float32), *args)
  np.testing.assert_allclose(np.asarray(got), dense @ x, rtol=1e-5, atol=1e-5)
  g = rng.normal(size=(n, d))
  loss = lambda w_, x_: jnp.sum(ops.weighted_spmm(w_, x_, *args) * g)
  dw, dx = jax.grad(loss, argnums=(0, 1))(jnp.asarray(w, jnp.float32), jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(np.asarray(dx), dense.T @ g, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dw), np.sum(g[heads] * x[tails], 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grad_fn", [ops.take_few_grad_scatter, ops.take_few_grad_one_hot])
def test_take_few_gradients_match_a_loop(grad_fn):
  """Both ways of summing the gradient per row (scatter-add on CPU, one-hot reduction on
  accelerators) give the loop's sums; ids outside [0, n) contribute nothing."""
  rng = np.random.default_rng(0)
  ids = rng.integers(-2, 9, size=300)
  g = rng.normal(size=300).astype(np.float32)
  expected = np.zeros(7)
  for i, v in zip(ids, g):
    if 0 <= i < 7:
      expected[i] += v
  np.testing.assert_allclose(grad_fn(jnp.asarray(g), jnp.asarray(ids), n=7), expected,
                             rtol=1e-5, atol=1e-5)


def test_take_few_is_a_gather_with_its_gradient(x64):
  rng = np.random.default_rng(1)
  table = jnp.asarray(rng.normal(size=6))
  ids = jnp.asarray(rng.integers(0, 6, size=50))
  weights = jnp.asarray(rng.normal(size=50))
  np.testing.assert_array_equal(ops.take_few(table, ids), np.asarray(table)[np.asarray(ids)])
  f = lambda t: jnp.sum(jnp.tanh(ops.take_few(t, ids)) * weights)
  np.testing.assert_allclose(jax.jit(jax.grad(f))(table),
                             jax.grad(lambda t: jnp.sum(jnp.tanh(t[ids]) * weights))(table),
                             rtol=1e-12)
  check_grads(lambda t: ops.take_few(t, ids) * weights, (table,), order=1, modes=["rev"])
