"""BPR-MF (docs/model.md §3), the recommended settings: Adam lr 1e-3, batch 1024, L2 1e-2
(selected on validation over the paper's L2 grid on ml-100k-kg), validation every 5 epochs,
patience 5, at most 300 epochs.

    kgax train --config configs/mf.py:dataset=ml-100k-kg --workdir runs/mf

Measured (configs/recipes/lightgcn_start.py, 3 seeds, ml-100k-kg): see docs/results.md.
"""

from kgax import options


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  c = options.default_config("mf", args.dataset)
  c.train.epochs = 300
  c.train.patience = 5
  return c


def sweep(add):
  """The paper's grid: learning rate x L2 coefficient (KGAT's search space); experiments/tune.py
  runs it (or a part of it, with --grid) and selects on validation."""
  for lr in (1e-4, 1e-3, 5e-3, 1e-2):
    for l2 in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
      add(**{"optim.lr": lr, "optim.l2": l2})
