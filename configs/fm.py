"""FM over user id, item id and the item's KG neighbour entities (docs/model.md §3), BPR.
Recommended settings: the library defaults (Adam lr 1e-3, batch 1024, L2 1e-2, validation every
5 epochs, patience 10, at most 200 epochs).

    kgax train --config configs/fm.py:dataset=ml-100k-kg --workdir runs/fm
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  return options.default_config("fm", args.dataset)
