"""How far a run's attention is from uniform: pi(h, r, t) / (1 / deg(h)) over the real edges.

    python experiments/diagnostics/attention_stats.py runs/last-fm-s/kgat_ax-seed0 [--which best|latest]

Prints, per layer, the mean of the ratio (1 by construction), its 1st and 99th percentiles and
its maximum; a ratio of 1 everywhere is the mean aggregator.
"""

import argparse

import numpy as np

from kgax import inference


def ratio_to_uniform(run: inference.Run) -> np.ndarray:
  """[L, E_real]: each real edge's attention weight over its head's uniform weight."""
  g = run.graph
  weights, heads = np.asarray(g.weights), np.asarray(g.heads)
  real = weights > 0
  degree = np.bincount(heads[real], minlength=g.n_nodes)[heads[real]]
  return run.attention[:, real] / weights[real] * degree


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("workdir")
  p.add_argument("--which", default="best", help="best | latest | a step")
  args = p.parse_args(argv)
  ratios = ratio_to_uniform(inference.Run.open(args.workdir, args.which))
  for layer, r in enumerate(ratios):
    lo, hi = np.percentile(r, [1, 99])
    print(f"layer {layer}: pi / uniform mean {r.mean():.4f}, 1st-99th percentile "
          f"{lo:.3f}-{hi:.3f}, max {r.max():.2f}")
  return ratios


if __name__ == "__main__":
  main()
