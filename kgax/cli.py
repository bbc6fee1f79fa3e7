"""The `kgax` command: data, train, evaluate, recommend, run."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from kgax import config as config_lib
from kgax.data.types import DataError

DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "kgat_ax.py"


def _data_stats(args) -> int:
  from kgax.data import load, split
  ds = load.load_dataset(args.dataset)
  s = split.split_dataset(ds, seed=args.seed)
  n_inter = len(s.train) + len(s.valid) + len(s.test)
  rows = [
      ("dataset", ds.name), ("users", ds.n_users), ("items", ds.n_items),
      ("interactions", n_inter), ("  train", len(s.train)), ("  valid", len(s.valid)),
      ("  test", len(s.test)), ("entities", ds.n_entities), ("relations", ds.n_relations),
      ("triples", len(ds.kg)), ("aux nodes", ds.aux.n_nodes), ("aux facts", len(ds.aux)),
      ("density", f"{n_inter / max(1, ds.n_users * ds.n_items):.6f}"),
  ]
  width = max(len(k) for k, _ in rows)
  for k, v in rows:
    print(f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v}")
  for note in ds.notes:
    print(f"note: {note}")
  return 0


def _data_split(args) -> int:
  from kgax.data import kgat, load, split
  ds = load.load_dataset(args.dataset)
  s = split.split_dataset(ds, seed=args.seed)
  out = pathlib.Path(args.out)
  kgat.write_kgat(out, np.concatenate([s.train, s.valid]), s.test, ds.kg)
  kgat.write_kgat(out / "with-valid", s.train, s.valid, ds.kg)
  print(f"wrote {out} (train+valid / test) and {out / 'with-valid'} (train / valid): "
        f"{len(s.train)} train, {len(s.valid)} valid, {len(s.test)} test")
  return 0


def _data_fetch(args) -> int:
  from kgax.data import fetch
  print(fetch.fetch(args.name, args.dir))
  return 0


def _train(args, overrides) -> int:
  from kgax import train
  cfg = config_lib.apply_overrides(config_lib.load_file(args.config), overrides)
  results = train.train_and_evaluate(cfg, args.workdir)
  _print_metrics(results["test"], f"test metrics (best epoch {results['best_epoch']})")
  return 0


def _print_metrics(metrics: dict, title: str) -> None:
  print(title)
  names = sorted({k.split("@")[0] for k in metrics if "@" in k})
  ks = sorted({int(k.split("@")[1]) for k in metrics if "@" in k})
  print("  " + "K".ljust(6) + "".join(n.rjust(11) for n in names))
  for k in ks:
    print("  " + str(k).ljust(6) + "".join(f"{metrics[f'{n}@{k}']:11.4f}" for n in names))
  if "auc" in metrics:
    print(f"  auc   {metrics['auc']:.4f}")


def _evaluate(args) -> int:
  from kgax import inference
  run = inference.Run.open(args.workdir, args.step)
  metrics = run.evaluate(args.split)
  out = pathlib.Path(args.workdir) / f"eval_{args.split}_{args.step}.json"
  out.write_text(json.dumps({"step": run.step, "split": args.split, **metrics}, indent=2))
  _print_metrics(metrics, f"{args.split} metrics at checkpoint {args.step} (epoch {run.step})")
  return 0


def _recommend(args) -> int:
  from kgax import inference
  run = inference.Run.open(args.workdir, args.step)
  if args.users == "all":
    if not args.output:
      raise SystemExit("kgax recommend: --users all needs --output FILE")
    n = run.write_recommendations(args.output, args.k)
    print(f"wrote {n} rows to {args.output}")
    return 0
  user = args.user if args.user is not None else args.users
  if user is None:
    raise SystemExit("kgax recommend: give --user ID or --users all")
  for line in run.explain_text(str(user), args.k, n_paths=args.paths):
    print(line)
  return 0


FALLBACK_DATASET = "synthetic-small"   # when ml-100k-kg cannot be fetched


def main_job_configs(dataset: str, workdir: pathlib.Path, epochs: int, from_scratch: bool):
  """[(name, config)] of the main job, in training order.

  KGAT's protocol: BPR-MF first (L2 1e-2, the value selected on validation on ml-100k-kg), then
  KGAT-AX initialised from it and fine-tuned at lr 1e-4 with selection on validation every epoch.
  `from_scratch`: KGAT-AX alone, at batch 4096 and lr 5e-3.
  """
  configs_dir = DEFAULT_CONFIG.parent
  cfg = config_lib.load_file(f"{DEFAULT_CONFIG}:dataset={dataset}")
  cfg.optim.l2 = 1e-2
  cfg.train.batch_size = 4096
  cfg.train.epochs = epochs
  if from_scratch:
    cfg.optim.lr = 5e-3
    cfg.train.eval_every, cfg.train.patience = 5, 3
    return [("kgat_ax", cfg)]
  mf = config_lib.load_file(f"{configs_dir / 'mf.py'}:dataset={dataset}")
  mf.optim.l2 = 1e-2
  mf.train.epochs, mf.train.patience = 300, 5
  cfg.model.pretrained = str(workdir / "mf")
  cfg.optim.lr = cfg.optim.kg_lr = 1e-4
  cfg.train.eval_every, cfg.train.patience = 1, 3
  return [("mf", mf), ("kgat_ax", cfg)]


def _run(args) -> int:
  """The main job: BPR-MF then KGAT-AX on ml-100k-kg (synthetic data when it cannot be fetched)."""
  from kgax import train
  from kgax.data import fetch
  dataset = "ml-100k-kg"
  try:
    fetch.fetch(dataset)
  except (OSError, DataError, RuntimeError) as e:
    print(f"could not fetch {dataset} ({e}); falling back to {FALLBACK_DATASET}")
    dataset = FALLBACK_DATASET
  workdir = pathlib.Path(args.workdir)
  epochs = args.epochs if args.epochs is not None else (25 if args.from_scratch else 10)
  for name, cfg in main_job_configs(dataset, workdir, epochs, args.from_scratch):
    print(f"== {name} -> {workdir / name}", flush=True)
    results = train.train_and_evaluate(cfg, workdir / name)
    _print_metrics(results["test"], f"{'KGAT-AX' if name == 'kgat_ax' else 'BPR-MF'} on "
                   f"{dataset}: test metrics (best epoch {results['best_epoch']}, "
                   f"{results['wall_seconds']:.0f} s)")
  print(f"workdir: {workdir}")
  return 0


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="kgax", description=__doc__)
  sub = p.add_subparsers(dest="command", required=True)

  data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command",
                                                                     required=True)
  s = data.add_parser("stats", help="sizes of a dataset (name or folder)")
  s.add_argument("dataset")
  s.add_argument("--seed", type=int, default=2026)
  s.set_defaults(fn=_data_stats)
  s = data.add_parser("split", help="write a seeded split in KGAT text format")
  s.add_argument("dataset")
  s.add_argument("--out", required=True)
  s.add_argument("--seed", type=int, default=2026)
  s.set_defaults(fn=_data_split)
  s = data.add_parser("fetch", help="download a registered dataset into the cache")
  s.add_argument("name")
  s.add_argument("--dir", default=None)
  s.set_defaults(fn=_data_fetch)

  s = sub.add_parser("train", help="train and evaluate (resumes an existing workdir)")
  s.add_argument("--config", required=True, help="configs/x.py[:arg]")
  s.add_argument("--workdir", required=True)
  s.set_defaults(fn=_train, takes_overrides=True)

  s = sub.add_parser("evaluate", help="metrics of a checkpoint")
  s.add_argument("--workdir", required=True)
  s.add_argument("--step", default="best", help="best, latest or an epoch number")
  s.add_argument("--split", default="test", choices=("test", "valid"))
  s.set_defaults(fn=_evaluate)

  s = sub.add_parser("recommend", help="top-K items with attention paths")
  s.add_argument("--workdir", required=True)
  s.add_argument("--user", default=None, help="original user id")
  s.add_argument("--users", default=None, help="'all' for every test user (with --output)")
  s.add_argument("--output", default=None)
  s.add_argument("--k", type=int, default=20)
  s.add_argument("--paths", type=int, default=3, help="explanation paths per item")
  s.add_argument("--step", default="best")
  s.set_defaults(fn=_recommend)

  s = sub.add_parser("run", help="the main job: BPR-MF, then KGAT-AX initialised from it, on "
                     "the default dataset")
  s.add_argument("--workdir", default="runs/main-ml-100k-kg")
  s.add_argument("--epochs", type=int, default=None,
                 help="KGAT-AX epochs at most (default 10; 25 with --from-scratch)")
  s.add_argument("--from-scratch", action="store_true",
                 help="KGAT-AX alone from a random initialisation (batch 4096, lr 5e-3)")
  s.set_defaults(fn=_run)
  return p


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    overrides, rest = config_lib.split_overrides(argv)
    args = build_parser().parse_args(rest)
    if overrides and not getattr(args, "takes_overrides", False):
      raise config_lib.ConfigError(f"--config.* overrides only apply to 'kgax train'")
    if getattr(args, "takes_overrides", False):
      return args.fn(args, overrides)
    return args.fn(args)
  except (DataError, config_lib.ConfigError, FileNotFoundError, RuntimeError) as e:
    print(f"kgax: error: {e}", file=sys.stderr)
    return 2
  except ValueError as e:   # bad config values are reported on one line
    print(f"kgax: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
