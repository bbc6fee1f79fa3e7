"""CFKG (SPEC 3): TransE over users, items and entities; score = -||e_u + e_interact - e_i||^2.

    kgax train --config configs/cfkg.py:dataset=ml-100k-kg --workdir runs/cfkg
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import mf  # noqa: E402

sweep = mf.sweep


def get_config(arg: str | None = None):
  c = mf.get_config(arg)
  c.model.name = "cfkg"
  c.model.use_kge = True             # TransE on KG triples in the KG phase of every epoch
  c.model.kg_triples = "kg"          # kg (KG relations and inverses) | ckg (every CKG edge)
  return c
