"""What an item's messages are made of, per relation of its edges (KGAT-AX's triple attention).

    python experiments/diagnostics/message_terms.py runs/mls/kgat_ax-seed0 [--which best|latest]

The triple message is m(h, r, t) = e_h A + e_r B + e_t C (docs/model.md §2.3). For each relation
r of the edges whose head is an item, prints the mean over items of the attention mass
sum_t pi(h, r, t) at every layer and, at the first layer, the mean over items of the norms of
the three parts of sum_t pi(h, r, t) m(h, r, t): the item's own row (e_h A), the relation's
offset (e_r B) and the tails' content (e_t C). A relation whose edges carry e_h A and e_r B
but little e_t C gives the item a channel of its own, not what its tails hold: a shuffled KG
(data.kg=shuffled) keeps such a channel.
"""

import argparse

import jax.numpy as jnp
import numpy as np

from kgax import inference
from kgax.models import kgat


def _item_edges(run: inference.Run):
  """(relations [E], mask [E] of real edges whose head is an item) of the run's CKG."""
  g = run.graph
  heads, rels, w = (np.asarray(a) for a in (g.heads, g.relations, g.weights))
  return rels, (heads < g.n_items) & (w > 0)


def item_parts(run: inference.Run) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """{relation name: (own row, relation offset, tail content)}, each [n_items, d]: the first
  layer's pi-weighted sums of e_h A, e_r B and e_t C over the item's edges of that relation
  (the three terms of the model's `_triple_aggregate`, one relation at a time)."""
  m, g, p = run.opts.model, run.graph, run.params
  if m.attention != "triple":
    raise SystemExit(f"{run.workdir}: model.attention={m.attention!r}; the parts are those of "
                     "the triple message")
  layer, n = p["layers"][0], g.n_items
  x = kgat.fuse(p, g, m, p["node"])
  own, offset, content = x @ layer["A"], p["relation"] @ layer["B"], x @ layer["C"]
  rels, items = _item_edges(run)
  parts = {}
  for r in np.unique(rels[items]):
    pi = jnp.where(jnp.asarray(items & (rels == r)), run.attention[0], 0.0)
    mass = g.head_sum(pi)[:n, None]
    parts[run.relation_name(int(r))] = (np.asarray(own[:n] * mass),
                                        np.asarray(mass * offset[r]),
                                        np.asarray(g.head_spmm(pi, content)[:n]))
  return parts


def attention_mass(run: inference.Run) -> dict[str, np.ndarray]:
  """{relation name: [L]}: the mean over items with edges of sum_t pi(h, r, t), per layer."""
  rels, items = _item_edges(run)
  att = np.asarray(run.attention, np.float64)
  n = len(np.unique(np.asarray(run.graph.heads)[items]))
  return {run.relation_name(int(r)): att[:, items & (rels == r)].sum(1) / n
          for r in np.unique(rels[items])}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("workdir")
  p.add_argument("--which", default="best", help="best | latest | a step")
  args = p.parse_args(argv)
  run = inference.Run.open(args.workdir, args.which)
  mass, parts = attention_mass(run), item_parts(run)
  print("| relation (item heads) | attention mass, layer 1..L | |e_h A| | |e_r B| | |e_t C| |")
  print("|---|---|---|---|---|")
  for name, (a, b, c) in parts.items():
    norms = [float(np.linalg.norm(v, axis=1).mean()) for v in (a, b, c)]
    print(f"| {name} | {', '.join(f'{v:.3f}' for v in mass[name])} | "
          + " | ".join(f"{v:.3f}" for v in norms) + " |")
  return mass, parts


if __name__ == "__main__":
  main()
