"""LightGCN (SPEC 3's further peers): linear propagation over the user-item graph; BPR.

    kgax train --config configs/lightgcn.py:dataset=ml-100k-kg --workdir runs/lightgcn
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import mf  # noqa: E402

sweep = mf.sweep


def get_config(arg: str | None = None):
  c = mf.get_config(arg)
  c.model.name = "lightgcn"
  c.model.n_layers = 3               # K propagation layers; the score uses the mean of 0..K
  return c
