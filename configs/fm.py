"""FM over user id, item id and the item's KG neighbour entities (SPEC 3), trained with BPR.

    kgax train --config configs/fm.py:dataset=ml-100k-kg --workdir runs/fm
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import mf  # noqa: E402

sweep = mf.sweep


def get_config(arg: str | None = None):
  c = mf.get_config(arg)
  c.model.name = "fm"
  return c
