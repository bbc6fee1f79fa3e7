"""KGIN (Wang et al. WWW 2021; docs/model.md §3): intents as attentive combinations of KG
relations, intent-aware user aggregation, relational-path item aggregation, an independence
loss between intents. Settings of the authors' code (d 64, 3 hops, 4 intents, independence
weight 1e-4, L2 1e-5) with Adam lr 1e-3 (RecBole's, which scored 0.3317 recall@20 on
ml-100k-kg's test set with its best checkpoint on the full KG), batch 1024, validation every 5
epochs, patience 5, at most 300 epochs. Evaluation is deterministic: no dropout, the whole KG.

    kgax train --config configs/kgin.py:dataset=ml-100k-kg --workdir runs/kgin
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  c = options.default_config("kgin", args.dataset)
  c.optim.l2 = 1e-5
  c.train.epochs = 300
  c.train.patience = 5
  return c
