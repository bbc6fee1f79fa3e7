"""RecBole 1.2.1's KGAT beside kgax's KGAT and KGAT-AX: seconds per epoch and per full evaluation.

    python experiments/compare_recbole.py --dataset DIR [--epochs 2] [--out docs/bench/NAME] \
        [--recbole-python .venv-recbole/bin/python] [--setup] [--config.train.batch_size=1024]

1. Writes the kgax dataset and its exact split (configs/kgat_ax.py's data config: same seed, same
   validation) as RecBole atomic benchmark files in WORKDIR/<dataset>/.
2. Runs RecBole's KGAT on them in a separate environment (experiments/recbole_requirements.txt;
   `--setup` creates it), with kgax's sizes, batch size and learning rate; times each epoch (from
   RecBole's log) and one full-ranking evaluation of the test users.
3. Times kgax's KGAT and KGAT-AX with experiments/bench.py; prints a markdown table and writes
   OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))
from kgax import config as config_lib  # noqa: E402
from kgax.data import load  # noqa: E402

CONFIG = REPO / "configs" / "kgat_ax.py"
REQUIREMENTS = REPO / "experiments" / "recbole_requirements.txt"
TORCH = "torch==2.13.0"   # installed alone first: pip then takes the CPU wheel of that version


def kgax_config(dataset: str, variant: str, overrides: dict[str, str]):
  cfg = config_lib.load_file(f"{CONFIG}:dataset={dataset},variant={variant}")
  return config_lib.apply_overrides(cfg, overrides)


def _write(file: pathlib.Path, columns: dict[str, np.ndarray]) -> None:
  pd.DataFrame(columns).to_csv(file, sep="\t", index=False, lineterminator="\n")


def write_atomic(ds, split, folder) -> dict:
  """Writes `folder/<name>.{train,valid,test}.inter`, `.kg`, `.link` and `.item` (name = folder's).

  Users and items keep their kgax ids as tokens; KG entities are `e<id>`, relations `r<id>`. Only
  items that occur in the KG are linked (RecBole fails on links to entities without triples);
  `.item` lists every item so that items without interactions stay ranking candidates.
  """
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  name = folder.name
  for part in ("train", "valid", "test"):
    pairs = getattr(split, part)
    _write(folder / f"{name}.{part}.inter",
           {"user_id:token": pairs[:, 0], "item_id:token": pairs[:, 1]})
  kg = ds.kg
  if not len(kg):
    raise ValueError(f"{ds.name}: no KG triples, KGAT needs a knowledge graph")
  entity = lambda ids: np.char.add("e", ids.astype(str))
  _write(folder / f"{name}.kg", {"head_id:token": entity(kg[:, 0]),
                                 "relation_id:token": np.char.add("r", kg[:, 1].astype(str)),
                                 "tail_id:token": entity(kg[:, 2])})
  in_kg = np.zeros(ds.n_entities, bool)
  in_kg[kg[:, 0]] = in_kg[kg[:, 2]] = True
  linked = np.flatnonzero(in_kg[:ds.n_items])
  _write(folder / f"{name}.link", {"item_id:token": linked, "entity_id:token": entity(linked)})
  _write(folder / f"{name}.item", {"item_id:token": np.arange(ds.n_items)})
  return {"users": ds.n_users, "items": ds.n_items, "train": len(split.train),
          "valid": len(split.valid), "test": len(split.test), "triples": len(kg),
          "linked_items": len(linked), "dropped_links": ds.n_items - len(linked)}


def convert(dataset: str, overrides: dict[str, str], workdir) -> tuple:
  """Step 1: kgax's KGAT config, dataset and split, written as atomic files in WORKDIR/<name>/.

  Returns (config, dataset, split, folder, counts).
  """
  cfg = kgax_config(dataset, "kgat", overrides)
  ds, split = load.load_split(cfg.data)
  folder = pathlib.Path(workdir) / ds.name
  return cfg, ds, split, folder, write_atomic(ds, split, folder)


def recbole_settings(cfg, folder: pathlib.Path, n_items: int, epochs: int) -> dict:
  """RecBole's config dict: KGAT with kgax's sizes, batch, learning rate and metrics."""
  ks = list(cfg.eval.ks)
  return {
      "data_path": str(folder.parent.resolve()), "dataset": folder.name,
      "benchmark_filename": ["train", "valid", "test"],
      "load_col": {"inter": ["user_id", "item_id"], "kg": ["head_id", "relation_id", "tail_id"],
                   "link": ["item_id", "entity_id"], "item": ["item_id"]},
      "kg_reverse_r": True,   # kgax's CKG has the inverse of every relation (KGAT's too)
      "embedding_size": cfg.model.embed_dim, "kg_embedding_size": cfg.model.relation_dim,
      "layers": list(cfg.model.layers), "aggregator_type": cfg.model.aggregator,
      "mess_dropout": cfg.model.message_dropout, "reg_weight": cfg.optim.l2,
      "learning_rate": cfg.optim.lr, "train_batch_size": cfg.train.batch_size,
      # Full ranking: users per batch = eval_batch_size // RecBole's item count (padding included).
      "eval_batch_size": cfg.eval.batch_size * n_items,
      "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
      "metrics": ["Recall", "NDCG"], "topk": ks, "valid_metric": f"Recall@{ks[0]}",
      "epochs": epochs, "seed": cfg.seed, "use_gpu": False, "worker": 0, "show_progress": False,
      "checkpoint_dir": str((folder.parent / "saved").resolve()),
  }


# Written beside the atomic files and run with the RecBole environment's python.
RUNNER = '''\
"""RecBole 1.2.1 KGAT: trains, then times one full evaluation; settings from settings.json here."""

import json
import os
import pathlib
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
  settings = json.loads((pathlib.Path(__file__).parent / "settings.json").read_text())
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
'''

_EPOCH = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_epoch_times(log: str) -> list[float]:
  """Seconds of each epoch from RecBole's "epoch N training [time: X s, ...]" lines, by epoch."""
  found = {int(e): float(s) for e, s in _EPOCH.findall(_ANSI.sub("", log))}
  return [found[e] for e in sorted(found)]


def run_recbole(python: str, folder: pathlib.Path, settings: dict) -> dict:
  """Runs RUNNER with `python`, echoing and keeping its output; its last line is JSON."""
  if not os.path.exists(python):
    raise FileNotFoundError(f"{python}: no RecBole environment (create it with --setup)")
  runner = folder.parent / "run_recbole.py"
  runner.write_text(RUNNER)
  (folder.parent / "settings.json").write_text(json.dumps(settings, indent=2))
  env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
  proc = subprocess.Popen([os.path.abspath(python), runner.name], cwd=folder.parent,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
  lines = []
  for line in proc.stdout:
    print(line, end="", flush=True)
    lines.append(line)
  log = "".join(lines)
  (folder.parent / "recbole.log").write_text(_ANSI.sub("", log))
  if proc.wait() != 0 or not lines:
    raise RuntimeError(f"RecBole run failed (exit {proc.returncode}); log in "
                       f"{folder.parent / 'recbole.log'}")
  res = json.loads(lines[-1])
  res["epoch_times"] = parse_epoch_times(log)
  # --epochs 0 times the evaluation alone (of an untrained model: the cost is the same).
  res["epoch_seconds"] = float(np.median(res["epoch_times"])) if res["epoch_times"] else None
  return res


def setup_env(python: pathlib.Path) -> None:
  """Creates the virtualenv that `python` belongs to and installs the pinned RecBole stack."""
  venv = python.parent.parent
  pip = [str(python), "-m", "pip", "install"]
  for cmd in ([sys.executable, "-m", "venv", str(venv)], pip + [TORCH],
              pip + ["-r", str(REQUIREMENTS)]):
    subprocess.run(cmd, check=True)


def table(rows: list[dict]) -> str:
  """Markdown: seconds per epoch and per evaluation, and RecBole's time over each system's."""
  ref = rows[0]
  out = ["| system | model | s / epoch | s / full evaluation | RecBole / this (epoch) | "
         "RecBole / this (evaluation) |", "|---|---|---|---|---|---|"]
  for r in rows:
    epoch = "-" if r["epoch_seconds"] is None else f"{r['epoch_seconds']:.2f}"
    if r.get("epoch_estimated"):
      epoch += " (est.)"
    ratio = ("-" if r["epoch_seconds"] is None or ref["epoch_seconds"] is None
             else f"{ref['epoch_seconds'] / r['epoch_seconds']:.2f}")
    out.append(f"| {r['system']} | {r['model']} | {epoch} | {r['eval_seconds']:.2f} | {ratio} | "
               f"{ref['eval_seconds'] / r['eval_seconds']:.2f} |")
  return "\n".join(out)


def main(argv=None):
  overrides, rest = config_lib.split_overrides(list(sys.argv[1:] if argv is None else argv))
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", help="a kgax-readable folder or registered name")
  p.add_argument("--epochs", type=int, default=2,
                 help="epochs timed on each side; 0 times the evaluation only (kgax's epoch is "
                      "then estimated from its step times)")
  p.add_argument("--recbole-python", default=str(REPO / ".venv-recbole" / "bin" / "python"))
  p.add_argument("--setup", action="store_true", help="create the RecBole environment first")
  p.add_argument("--workdir", default=str(REPO / "runs" / "recbole"),
                 help="where the atomic files, the runner and RecBole's log go")
  p.add_argument("--out", help="writes OUT.json and OUT.md")
  args = p.parse_args(rest)
  if args.setup:
    setup_env(pathlib.Path(args.recbole_python))
  if not args.dataset:
    if args.setup:
      return None
    p.error("--dataset is required")

  cfg, ds, _, folder, conversion = convert(args.dataset, overrides, args.workdir)
  print(f"atomic files in {folder}: {conversion}", flush=True)
  recbole = run_recbole(args.recbole_python, folder,
                        recbole_settings(cfg, folder, ds.n_items, args.epochs))

  import bench   # imports jax: after the RecBole run, so the two never share the cores
  kgax = {v: bench.bench(kgax_config(args.dataset, v, overrides), args.epochs)
          for v in ("kgat", "kgat_ax")}
  rows = [{"system": f"RecBole 1.2.1 (torch {recbole['torch']})", "model": "KGAT",
           "epoch_seconds": recbole["epoch_seconds"], "eval_seconds": recbole["eval_seconds"],
           "recall@20": recbole["test"].get("recall@20")}]
  for v, name in (("kgat", "KGAT"), ("kgat_ax", "KGAT-AX")):
    rows.append({"system": f"kgax (jax {kgax[v]['jax']})", "model": name,
                 "epoch_seconds": kgax[v]["epoch_seconds"], "eval_seconds": kgax[v]["eval_seconds"],
                 "epoch_estimated": not kgax[v]["epoch_measured"],
                 "recall@20": kgax[v]["test_recall@20"]})
  md = table(rows)
  print(md)
  res = {"dataset": ds.name, "epochs": args.epochs, "overrides": overrides,
         "cpus": os.cpu_count(), "host": platform.processor() or platform.machine(),
         "conversion": conversion, "recbole": recbole, "kgax_kgat": kgax["kgat"],
         "kgax_kgat_ax": kgax["kgat_ax"], "table": rows}
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(res, indent=2))
    out.with_name(out.name + ".md").write_text(
        f"{ds.name}, {args.epochs} epochs each, {os.cpu_count()} CPU cores; "
        f"seconds per epoch: median over the timed epochs.\n\n{md}\n")
  return res


if __name__ == "__main__":
  main()
