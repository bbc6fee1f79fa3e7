"""CFKG (docs/model.md §3): TransE over users, items and entities; score = -||e_u + e_interact - e_i||^2.
Recommended settings: the library defaults (Adam lr 1e-3, batch 1024, L2 1e-2, validation every
5 epochs, patience 10, at most 200 epochs).

    kgax train --config configs/cfkg.py:dataset=ml-100k-kg --workdir runs/cfkg
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  return options.default_config("cfkg", args.dataset)
