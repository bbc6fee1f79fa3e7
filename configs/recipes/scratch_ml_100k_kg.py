"""KGAT and KGAT-AX trained from scratch on ml-100k-kg, on the fastest setting of the
from-scratch runs: lr 5e-3, batch 4096, validation every 2 epochs, at most 30 epochs, patience 4
(the ablations and the other baselines keep the paper's settings); MF as in pretrained_mf.py. L2
1e-2 for all, test rows logged. Made for the cold-item study, where a fine-tune from MF leaves
the cold items at MF's untrained rows.

    python experiments/studies/cold_start.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/m100-scratch --recipe configs/recipes/scratch_ml_100k_kg.py \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k --cold-only \
        --out docs/results/cold-ml-100k-kg-scratch

Measured (docs/notebook/results.md §2, ml-100k-kg, cold items over 3 seeds; a random ranking
scores 20 / 168 = 0.1190 among the cold items): cold-only recall@20 kgat_ax 0.1500 ± 0.0240,
kgat 0.0769 ± 0.0125, mf 0.1025 ± 0.0258; cold AUC kgat_ax 0.3411 ± 0.0403, kgat
0.2695 ± 0.0336; recall@20 over all test items kgat_ax 0.2047 ± 0.0049, kgat 0.1862 ± 0.0020.
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")


def starts_from(model: str) -> str | None:
  return None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  if args.model == "mf":   # configs/mf.py
    c = paper.recommended(args.model, args.dataset)
  else:
    c = paper.base(args.model, args.dataset)
    c.optim.l2 = 1e-2
  c.train.log_test = True
  if args.model in ("kgat_ax", "kgat"):
    c.optim.lr = 5e-3
    c.train.batch_size = 4096
    c.train.epochs, c.train.eval_every, c.train.patience = 30, 2, 4
  return c
