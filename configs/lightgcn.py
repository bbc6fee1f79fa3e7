"""LightGCN (docs/model.md §3): linear propagation over the interact edges only, the
graph-propagation control without the KG. Recommended settings (the better of the settings
tried on validation on ml-100k-kg): 3 layers, lr 5e-3, L2 1e-3, batch 1024, validation every 5
epochs, patience 5, at most 300 epochs.

    kgax train --config configs/lightgcn.py:dataset=ml-100k-kg --workdir runs/lightgcn
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  c = options.default_config("lightgcn", args.dataset)
  c.optim.lr = 5e-3
  c.optim.l2 = 1e-3
  c.train.epochs = 300
  c.train.patience = 5
  return c
