"""KGCN (SPEC 3): sampled KG neighbourhoods, user-relation attention, sum aggregator; BPR.

    kgax train --config configs/kgcn.py:dataset=ml-100k-kg --workdir runs/kgcn
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import mf  # noqa: E402

sweep = mf.sweep


def get_config(arg: str | None = None):
  c = mf.get_config(arg)
  c.model.name = "kgcn"
  c.model.neighbor_sample_size = 8   # K neighbours per entity, redrawn every step
  c.model.n_iter = 1                 # H hops
  c.model.score_chunk = 64           # items per scoring chunk: memory ~ B x chunk x K^(H-1) x d;
                                     # small chunks keep the [B, chunk, d] products in cache
  return c
