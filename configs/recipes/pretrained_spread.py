"""configs/recipes/pretrained_mf.py with start.spread=2 for KGAT and KGAT-AX: the nodes MF never
trained (KG entities, aux nodes, items without a training pair) start as the mean of their
pretrained neighbours, two hops out (the cold-start probe). LightGCN keeps the paper's settings
at L2 1e-2 (this recipe was made for MF, KGAT and KGAT-AX).

    python experiments/studies/cold_start.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/m100-spread --recipe configs/recipes/pretrained_spread.py \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k --cold-only \
        --out docs/results/cold-ml-100k-kg-spread

Measured (docs/notebook/results.md §2, ml-100k-kg, cold-only recall@20 over 3 seeds): KGAT-AX
0.1026 ± 0.0038, KGAT 0.0943 ± 0.0077 (without the spread, pretrained_mf.py: 0.1225 ± 0.0104
and 0.0929 ± 0.0171; chance 20 / 168 = 0.119).
"""

from kgax.config import sibling

pretrained = sibling(__file__, "pretrained_mf.py")
paper = pretrained.paper
starts_from = pretrained.starts_from


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  if args.model == "lightgcn":
    c = paper.base(args.model, args.dataset)
    c.optim.l2 = 1e-2
    c.train.log_test = True
    return c
  c = pretrained.get_config(arg)
  if args.model in ("kgat_ax", "kgat"):
    c.start.spread = 2
  return c
