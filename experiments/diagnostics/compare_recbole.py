"""RecBole 1.2.1's KGAT beside kgax's KGAT and KGAT-AX: seconds per epoch and per full evaluation.

    python experiments/diagnostics/compare_recbole.py --dataset DIR [--epochs 2] \
        [--out docs/bench/NAME] [--recbole-python .venv-recbole/bin/python] [--setup] \
        [--config.train.batch_size=1024]

Both sides run the paper's hyperparameters (configs/recipes/paper.py: the paper's layer, lr
1e-3, batch 1024, L2 1e-5).
1. Writes the kgax dataset and its exact split (the recipe's data config: same seed, same
   validation) as RecBole atomic benchmark files in WORKDIR/<dataset>/.
2. Runs RecBole's KGAT on them (recbole_runner.py) in a separate environment
   (recbole_requirements.txt; `--setup` creates it), with kgax's sizes, batch size and learning
   rate; times each epoch (from RecBole's log) and one full-ranking evaluation of the test users.
3. Times kgax's KGAT and KGAT-AX with experiments/perf/bench.py, in a process of its own after
   RecBole's, so that the two never share the cores; prints a markdown table and writes OUT.json
   and OUT.md.
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

from kgax import config as config_lib, options
from kgax.data import load

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECIPE = REPO / "configs" / "recipes" / "paper.py"
RUNNER = HERE / "recbole_runner.py"
BENCH = REPO / "experiments" / "perf" / "bench.py"
REQUIREMENTS = HERE / "recbole_requirements.txt"
TORCH = "torch==2.13.0"   # installed alone first: pip then takes the CPU wheel of that version


def kgax_spec(dataset: str, variant: str) -> str:
  return f"{RECIPE}:model={variant},dataset={dataset}"


def kgax_config(dataset: str, variant: str, overrides: dict[str, str]):
  cfg = config_lib.load_file(kgax_spec(dataset, variant))
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
  ds, split = load.load_split(options.parse(cfg).data)
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


_EPOCH = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_epoch_times(log: str) -> list[float]:
  """Seconds of each epoch from RecBole's "epoch N training [time: X s, ...]" lines, by epoch."""
  found = {int(e): float(s) for e, s in _EPOCH.findall(_ANSI.sub("", log))}
  return [found[e] for e in sorted(found)]


def run_recbole(python: str, folder: pathlib.Path, settings: dict) -> dict:
  """Runs recbole_runner.py with `python`, echoing and keeping its output; its last line is
  JSON."""
  if not os.path.exists(python):
    raise FileNotFoundError(f"{python}: no RecBole environment (create it with --setup)")
  settings_file = folder.parent / "settings.json"
  settings_file.write_text(json.dumps(settings, indent=2))
  env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
  proc = subprocess.Popen([os.path.abspath(python), str(RUNNER), str(settings_file.resolve())],
                          cwd=folder.parent,
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


def bench_kgax(dataset: str, variant: str, overrides: dict[str, str], epochs: int,
               folder: pathlib.Path) -> dict:
  """experiments/perf/bench.py's figures for `variant` under the recipe, in a new process."""
  out = folder.parent / f"kgax-{variant}.json"
  cmd = [sys.executable, str(BENCH), "--config", kgax_spec(dataset, variant), "--epochs",
         str(epochs), "--out", str(out), *(f"--config.{k}={v}" for k, v in overrides.items())]
  subprocess.run(cmd, check=True)
  return json.loads(out.read_text())


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

  kgax = {v: bench_kgax(args.dataset, v, overrides, args.epochs, folder)
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
