"""Where one full-ranking evaluation batch spends its time, on random data of a given shape.

    python experiments/perf/bench_eval.py [--users 256] [--items 48123] [--dim 176] [--truth 13] \
        [--all-users 23566]

Times (after a compile call, median of --repeat runs): the score product [users, dim] x
[dim, items], jax.lax.top_k(100) of the scores, AUC by `evaluate.auc_from_entries` (comparisons per
truth item), and a full sort of the score rows (what an AUC by sorting has to pay). The defaults
are a last-fm-s batch (48,123 items, embedding 64 + 64 + 32 + 16, ~13 test items per user).
With --all-users M, also the ranking metrics of M users through `evaluate.Evaluator` (batches of
--users), from one thread and from `evaluate.default_threads()` threads.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from kgax import evaluate


def timed(fn, *args, repeat: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeat):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--users", type=int, default=256)
  p.add_argument("--items", type=int, default=48123)
  p.add_argument("--dim", type=int, default=176)
  p.add_argument("--truth", type=int, default=13, help="truth items per user")
  p.add_argument("--excluded", type=int, default=50, help="excluded items per user")
  p.add_argument("--repeat", type=int, default=3)
  p.add_argument("--all-users", type=int, default=0,
                 help="also time a full Evaluator pass over this many users")
  args = p.parse_args(argv)
  b, n = args.users, args.items
  rng = np.random.default_rng(0)
  users = jnp.asarray(rng.normal(size=(b, args.dim)), jnp.float32)
  items = jnp.asarray(rng.normal(size=(n, args.dim)), jnp.float32)
  picks = np.argsort(rng.random((b, n)), axis=1)[:, :args.truth + args.excluded]
  truth = np.zeros((b, n), bool)
  exclude = np.zeros((b, n), bool)
  np.put_along_axis(truth, picks[:, :args.truth], True, axis=1)
  np.put_along_axis(exclude, picks[:, args.truth:], True, axis=1)
  rows, cols = (jnp.asarray(a, jnp.int32) for a in np.nonzero(truth))
  scores = jax.jit(lambda u, i: u @ i.T)(users, items)
  out = {
      "score product": timed(jax.jit(lambda u, i: u @ i.T), users, items, repeat=args.repeat),
      "top_k(100)": timed(jax.jit(lambda s: jax.lax.top_k(s, 100)[1]), scores,
                          repeat=args.repeat),
      "auc_from_entries": timed(jax.jit(evaluate.auc_from_entries), scores, truth, exclude,
                                rows, cols, repeat=args.repeat),
      "sort of the rows": timed(jax.jit(lambda s: jnp.sort(s, axis=1)), scores,
                                repeat=args.repeat),
  }
  if args.all_users:
    m = args.all_users
    user_emb = jnp.asarray(rng.normal(size=(m, args.dim)), jnp.float32)
    owners = np.repeat(np.arange(m), args.truth + args.excluded)
    items_of = np.argsort(rng.random((m, n)), axis=1)[:, :args.truth + args.excluded].ravel()
    pairs = np.stack([owners, items_of], 1).reshape(m, -1, 2)
    truth_pairs = pairs[:, :args.truth].reshape(-1, 2)
    excl_pairs = pairs[:, args.truth:].reshape(-1, 2)
    for threads in sorted({1, evaluate.default_threads()}):
      ev = evaluate.Evaluator(m, n, truth_pairs, excl_pairs, batch_size=b, threads=threads,
                              metrics=evaluate.RANKING_METRICS)
      out[f"{m} users, {threads} thread(s)"] = timed(ev.evaluate_embeddings, user_emb, items,
                                                     repeat=args.repeat)
  print(f"one batch of {b} users x {n:,} items (dim {args.dim}), {jax.devices()[0].device_kind}:")
  for name, sec in out.items():
    print(f"  {name:26s} {sec * 1e3:9.1f} ms")
  return out


if __name__ == "__main__":
  main()
