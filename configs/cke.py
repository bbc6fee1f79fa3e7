"""CKE (docs/model.md §3): BPR on e_u . (e_i + v_i) alternating with TransR on KG triples.
Recommended settings: the library defaults (Adam lr 1e-3, batch 1024, L2 1e-2, validation every
5 epochs, patience 10, at most 200 epochs).

    kgax train --config configs/cke.py:dataset=ml-100k-kg --workdir runs/cke
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  return options.default_config("cke", args.dataset)
