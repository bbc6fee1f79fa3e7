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

import numpy as np

from kgax import inference
from kgax.models import kgat


def item_parts(run: inference.Run) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """{relation name: (own row, relation offset, tail content)}, each [n_items, d]: the first
  layer's pi-weighted sums of e_h A, e_r B and e_t C over the item's edges of that relation."""
  m, g, p = run.opts.model, run.graph, run.params
  if m.attention != "triple":
    raise SystemExit(f"{run.workdir}: model.attention={m.attention!r}; the parts are those of "
                     "the triple message")
  heads, rels, tails, w = (np.asarray(a) for a in (g.heads, g.relations, g.tails, g.weights))
  x = np.asarray(kgat.fuse(p, g, m, p["node"]), np.float64)
  layer = {k: np.asarray(v, np.float64) for k, v in p["layers"][0].items()}
  pi = np.asarray(run.attention[0], np.float64)
  own, offset, content = x @ layer["A"], np.asarray(p["relation"]) @ layer["B"], x @ layer["C"]
  parts = {}
  for r in range(g.n_relations):
    e = np.flatnonzero((rels == r) & (heads < g.n_items) & (w > 0))
    if not len(e):
      continue
    sums = []
    for rows in (own[heads[e]], np.broadcast_to(offset[r], (len(e), offset.shape[1])),
                 content[tails[e]]):
      out = np.zeros((g.n_items, rows.shape[1]))
      np.add.at(out, heads[e], pi[e, None] * rows)
      sums.append(out)
    parts[run.relation_name(r)] = tuple(sums)
  return parts


def attention_mass(run: inference.Run) -> dict[str, np.ndarray]:
  """{relation name: [L]}: the mean over items with edges of sum_t pi(h, r, t), per layer."""
  g = run.graph
  heads, rels, w = (np.asarray(a) for a in (g.heads, g.relations, g.weights))
  att = np.asarray(run.attention, np.float64)
  items = (heads < g.n_items) & (w > 0)
  n = len(np.unique(heads[items]))
  return {run.relation_name(r): att[:, items & (rels == r)].sum(1) / n
          for r in range(g.n_relations) if np.any(items & (rels == r))}


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
