"""BPR-MF (SPEC 3) on any dataset; the shared data, optim, train and eval fields are KGAT-AX's
(Adam lr 1e-3, batch 1024, L2 1e-5, alternating CF / KG phases, early stopping on recall@20).

    kgax train --config configs/mf.py:dataset=ml-100k-kg --workdir runs/mf

The other baseline configs (fm, cke, cfkg, kgcn, lightgcn) start from this one and extend `model`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import kgat_ax  # noqa: E402


def dataset(arg: str | None) -> str:
  """NAME from the config argument "dataset=NAME" (default ml-100k-kg)."""
  key, _, value = (arg or "dataset=ml-100k-kg").partition("=")
  if key != "dataset" or not value or "," in value:
    raise ValueError(f"config argument {arg!r}: expected dataset=NAME")
  return value


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = kgat_ax.get_config(f"dataset={dataset(arg)}")
  c.model = ml_collections.ConfigDict()
  c.model.name = "mf"
  c.model.embed_dim = 64
  c.model.aux_edges = False          # the graph is only read by models that use the KG
  c.model.use_kge = False
  return c


sweep = kgat_ax.sweep   # the paper's learning-rate x L2 grid
