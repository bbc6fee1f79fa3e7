"""CKE ("NeuralKG"; SPEC 3): BPR on e_u . (e_i + v_i) alternating with TransR on KG triples.

    kgax train --config configs/cke.py:dataset=ml-100k-kg --workdir runs/cke
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import mf  # noqa: E402

sweep = mf.sweep


def get_config(arg: str | None = None):
  c = mf.get_config(arg)
  c.model.name = "cke"
  c.model.relation_dim = 64
  c.model.use_kge = True             # TransR in the KG phase of every epoch
  c.model.kg_triples = "kg"          # KG relations and inverses only, negatives among entities
  return c
