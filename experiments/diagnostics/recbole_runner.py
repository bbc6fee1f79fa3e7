"""RecBole 1.2.1's KGAT: trains, then times one full evaluation; prints one JSON line last.

    .venv-recbole/bin/python experiments/diagnostics/recbole_runner.py SETTINGS.json

Run by compare_recbole.py with the RecBole environment's python (never kgax's): SETTINGS.json
is RecBole's config dict (compare_recbole.recbole_settings).
"""

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np
import scipy.sparse as sp
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.dataset.kg_dataset import KnowledgeBasedDataset
from recbole.model.knowledge_aware_recommender.kgat import KGAT
from recbole.trainer import KGATTrainer
from recbole.utils import init_logger, init_seed

_ckg_graph = KnowledgeBasedDataset.ckg_graph


def ckg_graph(self, form="coo", value_field=None):
  """No dgl graph (dgl does not import with this torch); KGAT's init_graph below needs none."""
  return None if form == "dgl" else _ckg_graph(self, form, value_field)


def init_graph(self):
  """KGAT's initial attention, sum over relations r >= 1 of D_r^-1 A_r, built with scipy."""
  n = self.matrix_size[0]
  hs, ts, rs = (x.cpu().numpy() for x in (self.all_hs, self.all_ts, self.all_rs))
  adj = sp.csr_matrix((n, n))
  for r in range(1, self.n_relations):
    m = rs == r
    a = sp.csr_matrix((np.ones(m.sum()), (hs[m], ts[m])), shape=(n, n))
    deg = np.asarray(a.sum(axis=1)).ravel()
    adj = adj + sp.diags(np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)) @ a
  adj = adj.tocoo()
  indices = torch.from_numpy(np.vstack([adj.row, adj.col]).astype(np.int64))
  values = torch.from_numpy(adj.data.astype(np.float32))
  adj = torch.sparse_coo_tensor(indices, values, self.matrix_size, check_invariants=False)
  return adj.coalesce().to(self.device)


KnowledgeBasedDataset.ckg_graph = ckg_graph
KGAT.init_graph = init_graph


def main():
  settings = json.loads(pathlib.Path(sys.argv[1]).read_text())
  t0 = time.time()
  config = Config(model="KGAT", dataset=settings.pop("dataset"), config_dict=settings)
  init_seed(config["seed"], config["reproducibility"])
  init_logger(config)
  dataset = create_dataset(config)
  train_data, _, test_data = data_preparation(config, dataset)
  model = KGAT(config, train_data._dataset).to(config["device"])
  trainer = KGATTrainer(config, model)
  setup_s = time.time() - t0
  trainer.fit(train_data, saved=False)
  t0 = time.time()
  result = trainer.evaluate(test_data, load_best_model=False)
  eval_s = time.time() - t0
  print(json.dumps({
      "setup_seconds": setup_s, "eval_seconds": eval_s, "torch": torch.__version__,
      "threads": torch.get_num_threads(), "users": dataset.user_num - 1,
      "items": dataset.item_num - 1, "entities": dataset.entity_num - 1,
      "relations": dataset.relation_num - 1, "ckg_edges": len(model.all_hs),
      "test": {k: float(v) for k, v in result.items()}}), flush=True)


if __name__ == "__main__":
  main()
