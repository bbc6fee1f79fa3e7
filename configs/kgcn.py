"""KGCN (docs/model.md §3): sampled KG neighbourhoods, user-relation attention, sum aggregator; BPR.
Recommended settings: the library defaults (Adam lr 1e-3, batch 1024, L2 1e-2, validation every
5 epochs, patience 10, at most 200 epochs).

    kgax train --config configs/kgcn.py:dataset=ml-100k-kg --workdir runs/kgcn
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  return options.default_config("kgcn", args.dataset)
