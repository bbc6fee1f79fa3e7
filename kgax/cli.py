"""The `kgax` command: data, train, evaluate, recommend, run, sweep."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from kgax import config as config_lib
from kgax.data.types import DataError



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


def _step(text: str) -> str:
  if text in ("best", "latest") or text.isdigit():
    return text
  raise argparse.ArgumentTypeError(f"{text!r}: expected best, latest or an epoch number")


def _positive(text: str) -> int:
  if not text.isdigit() or int(text) <= 0:
    raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
  return int(text)


def _mesh(text: str) -> tuple[int, int]:
  parts = text.strip().strip("()").split(",")
  try:
    shape = tuple(int(p) for p in parts)
  except ValueError:
    shape = ()
  if len(shape) != 2:
    raise argparse.ArgumentTypeError(f"{text!r}: expected (data, model), e.g. '(2,4)'")
  return shape


def _evaluate(args) -> int:
  """Only reads the workdir; --output writes the metrics as JSON elsewhere."""
  from kgax import inference
  from kgax.workdir import write_text_atomic
  run = inference.Run.open(args.workdir, args.step, mesh=args.mesh)
  metrics = run.evaluate(args.split)
  if args.output:
    write_text_atomic(pathlib.Path(args.output),
                      json.dumps({"step": run.step, "split": args.split, **metrics}, indent=2))
  _print_metrics(metrics, f"{args.split} metrics at checkpoint {args.step} (epoch {run.step})")
  return 0


def _recommend(args) -> int:
  from kgax import inference
  if args.users == "all" and not args.output:
    raise SystemExit("kgax recommend: --users all needs --output FILE")
  user = args.user if args.user is not None else args.users
  if user is None:
    raise SystemExit("kgax recommend: give --user ID or --users all")
  run = inference.Run.open(args.workdir, args.step)
  if args.users == "all":
    n = run.write_recommendations(args.output, args.k)
    print(f"wrote {n} rows to {args.output}")
    return 0
  for line in run.explain_text(str(user), args.k, n_paths=args.paths):
    print(line)
  return 0


DEFAULT_DATASET = "ml-100k-kg"
FALLBACK_DATASET = "synthetic-small"   # when the default dataset cannot be fetched


def _run(args, overrides) -> int:
  """The recommended protocol on a dataset: every model of --models (and the ones they start
  from) for each seed, then one comparison table."""
  from kgax import study
  from kgax.data import fetch
  dataset = args.dataset
  if dataset == DEFAULT_DATASET and not pathlib.Path(dataset).exists():
    try:
      fetch.fetch(dataset)
    except (OSError, DataError, RuntimeError) as e:
      print(f"could not fetch {dataset} ({e}); falling back to {FALLBACK_DATASET}")
      dataset = FALLBACK_DATASET
  name = pathlib.Path(dataset).name or dataset
  root = pathlib.Path(args.workdir or f"runs/run-{name}")
  results, tuned = study.run_protocol(args.models, dataset, args.seeds, root, overrides,
                                      recipe=args.recipe, tune_first=args.tune)
  models = study.run_order(args.models, args.recipe)
  table = study.comparison_table(results, models)
  seeds = ", ".join(map(str, args.seeds))
  text = (f"{dataset}: test metrics of the best-validation checkpoint, mean ± std over seeds "
          f"{seeds}\n\n{table}\n")
  if tuned:
    text += (f"\nEach model's lr and L2 selected on validation (seed {args.seeds[0]}) among "
             f"{len(next(iter(tuned.values()))['points'])} points: "
             + "; ".join(f"{m} {t['best_name']}" for m, t in tuned.items())
             + f" ({root}/tune/MODEL/tune.md)\n")
  (root / "comparison.md").write_text(text)
  print(text + f"\nworkdirs: {root}/MODEL-seedS; this table: {root / 'comparison.md'}")
  return 0


def _grid_values(text: str) -> list[str]:
  """"1e-3,5e-3" -> ["1e-3", "5e-3"]; commas inside brackets stay ("(16,8),(32,16)")."""
  values, depth, item = [], 0, ""
  for ch in text:
    depth += ch in "([{"
    depth -= ch in ")]}"
    if ch == "," and depth == 0:
      values.append(item)
      item = ""
    else:
      item += ch
  return [v for v in values + [item] if v]


def _sweep(args, overrides) -> int:
  """Every seed x grid point, stacked into one vmapped program per group; one table."""
  from kgax import sweep
  cfg = config_lib.apply_overrides(config_lib.load_file(args.config), overrides)
  grid = {}
  for item in args.grid:
    field, eq, values = item.partition("=")
    if not eq or not _grid_values(values):
      raise config_lib.ConfigError(f"--grid {item}: expected FIELD=V1,V2,...")
    grid[field] = _grid_values(values)
  width = {"auto": "auto", "all": None}.get(args.width, args.width)
  if isinstance(width, str) and width != "auto":
    if not width.isdigit() or int(width) < 1:
      raise config_lib.ConfigError(f"--width {width}: expected auto, all or a positive integer")
    width = int(width)
  results = sweep.sweep(cfg, args.seeds, grid, args.workdir, width=width)
  col = max(len(n) for n in results)
  print(f"\n| {'run'.ljust(col)} | best epoch | valid recall@20 | test recall@20 |")
  print(f"|{'-' * (col + 2)}|-----------:|----------------:|---------------:|")
  failed = 0
  for name, r in results.items():
    if "error" in r:
      failed += 1
      print(f"| {name.ljust(col)} | failed: {r['error']} |")
      continue
    valid, test = (r[split].get("recall@20", float("nan")) for split in ("valid", "test"))
    print(f"| {name.ljust(col)} | {r['best_epoch']:10d} | {valid:15.4f} | {test:14.4f} |")
  print(f"\nworkdirs: {pathlib.Path(args.workdir) / 'RUN'}")
  return 1 if failed else 0


def _protocol():
  from kgax import study
  return study.PROTOCOL


def _model_names():
  from kgax import study
  return tuple(study.MODELS)


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
  s.add_argument("--step", default="best", type=_step, help="best, latest or an epoch number")
  s.add_argument("--split", default="test", choices=("test", "valid"))
  s.add_argument("--output", default=None, help="also write the metrics to this JSON file")
  s.add_argument("--mesh", default=(-1, 1), type=_mesh, help="restore onto this (data, "
                 "model) mesh of the devices, e.g. '(2,4)'; default (-1,1): parameters "
                 "replicated, users split over every device")
  s.set_defaults(fn=_evaluate)

  s = sub.add_parser("recommend", help="top-K items with attention paths")
  s.add_argument("--workdir", required=True)
  s.add_argument("--user", default=None, help="original user id")
  s.add_argument("--users", default=None, help="'all' for every test user (with --output)")
  s.add_argument("--output", default=None)
  s.add_argument("--k", type=_positive, default=20)
  s.add_argument("--paths", type=_positive, default=3, help="explanation paths per item")
  s.add_argument("--step", default="best", type=_step)
  s.set_defaults(fn=_recommend)

  s = sub.add_parser("run", help="the recommended protocol on a dataset: MF, LightGCN and "
                     "KGAT-AX fine-tuned from it; one comparison table")
  s.add_argument("--dataset", default=DEFAULT_DATASET, help="registered name or folder")
  s.add_argument("--workdir", default=None, help="root of the workdirs (runs/run-NAME)")
  s.add_argument("--models", nargs="+", default=list(_protocol()), choices=_model_names(),
                 help="models to train (those they start from are added)")
  s.add_argument("--seeds", type=int, nargs="+", default=[0])
  s.add_argument("--recipe", default="", help="a recipe file (configs/recipes/*.py) instead "
                 "of each model's config file")
  s.add_argument("--tune", action="store_true", help="first select each model's lr and L2 on "
                 "validation, the same five points around its own values for every model")
  s.set_defaults(fn=_run, takes_overrides=True)

  s = sub.add_parser("sweep", help="seeds x grid points of one config, trained together as one "
                     "vmapped program per group of runs; one table")
  s.add_argument("--config", required=True, help="configs/x.py[:arg]")
  s.add_argument("--seeds", type=int, nargs="+", default=[0])
  s.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                 help="a dotted config field and its values (repeatable)")
  s.add_argument("--workdir", required=True, help="root of the runs' workdirs")
  s.add_argument("--width", default="auto", help="runs per vmap: auto (all on an accelerator, "
                 "1 on a CPU: lax.map), all, or N")
  s.set_defaults(fn=_sweep, takes_overrides=True)
  return p


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    overrides, rest = config_lib.split_overrides(argv)
    args = build_parser().parse_args(rest)
    if overrides and not getattr(args, "takes_overrides", False):
      raise config_lib.ConfigError("--config.* overrides only apply to 'kgax train', "
                                   "'kgax run' and 'kgax sweep'")
    if getattr(args, "takes_overrides", False):
      return args.fn(args, overrides)
    return args.fn(args)
  except (DataError, config_lib.ConfigError, OSError, RuntimeError) as e:
    sys.unraisablehook = lambda _: None   # a damaged checkpoint's abandoned reads, at exit
    print(f"kgax: error: {e}", file=sys.stderr)
    return 2
  except ValueError as e:   # bad config values are reported on one line
    print(f"kgax: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
