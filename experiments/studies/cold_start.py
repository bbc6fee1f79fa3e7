"""Cold start: does auxiliary information help items with few or no training interactions?

    python experiments/studies/cold_start.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/table2 --out docs/results/cold-ml-100k-kg \
        [--models mf kgat_ax] [--buckets-only] [--cold-only] [--cold-seeds 0] [--untagged] \
        [--recipe configs/recipes/pretrained_mf.py] \
        [--config.data.aux_from=../shared/data/raw/recbole-ml-100k]

(a) Cold items: every model is trained again (runs cold-MODEL-seedS, a fine-tune from the cold
run of the model it starts from) with data.cold_items=0.1:
a seeded 10% of the items lose all their train and validation pairs to test (they keep their KG
and aux edges), and test recall@20 and AUC are measured against the cold items' test pairs only,
ranking all items, and recall@20 again ranking the cold items only.
The cold items are not in the training catalogue: BPR negatives come from the items with a
training pair (train.train_item_negatives), else every model learns to rank them last.
(b) Degree buckets: the runs of the normal split (table2.py's, trained here if missing) are
measured per bucket of the test item's training degree (0, 1-5, 6-20, >20), against that
bucket's test pairs only; users with no pair in a bucket are left out of it. With --impute the
same runs are scored again with eval.cold_items=kg and kg_centered (items without a training
pair scored through their KG and aux neighbours, kgax/coldstart.py), from the real links and, as
the control, from links whose nodes are permuted.
--buckets-only skips (a) and its training, --cold-only skips (b) and its training; --cold-seeds
trains (a) for fewer seeds than (b); --untagged (MovieLens with tags) leaves out of (a) the test
pairs whose user tagged the item, which the tag aux facts link directly. Train and validation
items are excluded from the ranking as usual. Writes OUT.md (two tables), OUT.json and OUT.png
(recall@20 per degree bucket). Finished runs are skipped.
"""

import pathlib

import numpy as np

import common
from kgax import coldstart, evaluate, experiment, inference, sampling, study
from kgax.data import io, load, movielens

MODELS = ("mf", "kgat", "kgat_ax")   # the default; any embedding model of --models below
COLD = 0.1

def tagged_test_pairs(run: inference.Run) -> np.ndarray:
  """bool [n_test]: test pairs (u, i) where u tagged i in the dataset's MovieLens tags file.

  The reader builds user-tag and movie-tag aux facts from every tag application, so such a pair
  is linked through a tag node whatever the split.
  """
  folder = pathlib.Path(run.opts.data.name)
  tags = movielens.read_tags(folder)
  if tags is None:
    raise SystemExit(f"cold_start.py --untagged: no MovieLens tags file in {folder}")
  # MovieLens readers number users and movies in increasing order of their original ids.
  u = io.lookup(np.asarray(run.ds.user_ids).astype(np.int64), tags["user"].to_numpy())
  i = io.lookup(np.asarray(run.ds.item_ids).astype(np.int64), tags["movie"].to_numpy())
  known = (u >= 0) & (i >= 0)   # tags of users or movies without a rating: no pair
  tagged = sampling.PairSet(u[known], i[known], run.ds.n_items)
  return tagged.contains(run.split.test[:, 0], run.split.test[:, 1])


def cold_item_metrics(workdir: pathlib.Path, untagged: bool = False) -> tuple[dict, dict]:
  """Cold-item recall@20 and AUC ranking all items, and recall@20 ranking the cold items only;
  with `untagged`, the test pairs whose user tagged the item are left out (`tagged_test_pairs`)."""
  run = inference.Run.open(workdir)
  cold = load.cold_item_ids(run.ds.n_items, run.opts.data.cold_items, run.opts.data.split_seed)
  keep = np.isin(run.split.test[:, 1], cold)
  skip = tagged_test_pairs(run) & keep if untagged else np.zeros(len(keep), bool)
  info = {"items": len(cold), "test_pairs": int((keep & ~skip).sum()),
          "tagged_pairs_left_out": int(skip.sum())}
  out = common.metrics_on(run, run.exp.evaluate_fn(), keep, ("recall", "auc"), skip)
  # Ranked among the cold items only (item k of this evaluator is cold[k]; they have no train or
  # validation pair to exclude): how well the model orders new items for a user.
  index = np.full(run.ds.n_items, -1)
  index[cold] = np.arange(len(cold))
  relabel = lambda m: np.stack([run.split.test[m, 0], index[run.split.test[m, 1]]], 1)
  ev = evaluate.Evaluator(run.ds.n_users, len(cold), relabel(keep & ~skip), relabel(skip),
                          ks=(20,), metrics=("recall",), batch_size=run.opts.eval.batch_size)
  among = run.exp.evaluate_fn(cold)(run.params, ev)["recall@20"]
  return dict(out, among=among), info


def imputed_evaluate_fn(run: inference.Run, norm: float, shuffle: bool, centered: bool):
  """The run's evaluation with eval.cold_items="kg" or, `centered`, "kg_centered"
  (kgax/coldstart.py) at norm quantile `norm`; with `shuffle`, over the control's permuted links
  (coldstart.shuffled, seed 0)."""
  cold = coldstart.build(run.ds, run.split.train, norm, centered=centered)
  if shuffle:
    cold = coldstart.shuffled(cold, 0)
  return experiment.make_evaluate(run.lib, run.opts.model, run.graph, cold=cold)


def bucket_recall(workdir: pathlib.Path, kinds: dict) -> tuple[dict, dict[str, int], dict]:
  """Per kind of scoring ({label: None for the run's own rows, or (norm, shuffle, centered)}):
  recall@20 per degree bucket and over all test pairs."""
  run = inference.Run.open(workdir)
  valid = run.exp.evaluator("valid", metrics=("recall",))
  out = {}
  for label, how in kinds.items():
    evaluate_fn = run.exp.evaluate_fn() if how is None else imputed_evaluate_fn(run, *how)
    out[label] = common.recall_by_bucket(run, evaluate_fn)
    out[label]["all"] = common.metrics_on(run, evaluate_fn, np.ones(len(run.split.test), bool)
                                          )["recall@20"]
    out[label]["valid"] = evaluate_fn(run.params, valid)["recall@20"]
  return out, common.bucket_counts(run)


def main(argv=None):
  def extra(p):
    p.add_argument("--models", nargs="+", choices=("mf", "lightgcn", "kgat", "kgat_ax"),
                   help=f"the models (default: {' '.join(MODELS)})")
    p.add_argument("--buckets-only", action="store_true",
                   help="only the degree buckets of the normal runs")
    p.add_argument("--cold-only", action="store_true",
                   help="only the cold-item runs, no degree buckets")
    p.add_argument("--cold-seeds", type=int, nargs="+",
                   help="seeds of the cold-item runs (default: --seeds)")
    p.add_argument("--untagged", action="store_true",
                   help="MovieLens with tags: leave out cold test pairs whose user tagged the item")
    p.add_argument("--impute", action="store_true",
                   help="degree buckets also with eval.cold_items=kg and kg_centered, from the "
                        "real and from a shuffled KG (the same trained runs, scored again)")
    p.add_argument("--cold-norm", type=float, default=0.4,
                   help="eval.cold_norm for --impute")
  args, overrides = common.study_args(__doc__, argv, default_root="runs/table2", extra=extra)
  if args.models is None:
    args.models = list(MODELS)
  if args.buckets_only and args.cold_only:
    raise SystemExit("cold_start.py: --buckets-only and --cold-only exclude each other")
  cold_seeds = args.cold_seeds or args.seeds

  def cold_split(cfg):
    cfg.data.cold_items = COLD
    cfg.train.train_item_negatives = True

  normal_jobs = [] if args.cold_only else common.jobs(args, overrides, args.models)
  cold_jobs = [] if args.buckets_only else common.jobs(
      args, overrides, args.models, prefix="cold-", change=cold_split, seeds=cold_seeds)
  results = study.run_jobs(normal_jobs + cold_jobs, args.root)
  root = pathlib.Path(args.root)
  cold, buckets, cold_rows, bucket_rows = {}, {}, [], []
  for model in args.models:
    if not args.buckets_only:
      cold_runs = study.of_model(results, f"cold-{model}")
      measured = [cold_item_metrics(root / name, args.untagged) for name in cold_runs]
      cold_info = measured[0][1]
      cold[model] = {"cold recall@20": study.mean_std([m["recall@20"] for m, _ in measured]),
                     "cold auc": study.mean_std([m["auc"] for m, _ in measured]),
                     "cold-only recall@20": study.mean_std([m["among"] for m, _ in measured]),
                     "test recall@20": study.summarize(cold_runs)["recall@20"]}
      cold_rows.append(f"| {model} | " + " | ".join(
          study.fmt(cold[model][k]) for k in ("cold recall@20", "cold auc", "cold-only recall@20",
                                             "test recall@20")) + " |")
    if args.cold_only:
      continue
    kinds = {model: None}
    if args.impute:
      for centered, rule in ((False, ""), (True, ", centered")):
        kinds[f"{model}, cold rows from the KG{rule}"] = (args.cold_norm, False, centered)
        kinds[f"{model}, cold rows from shuffled links{rule}"] = (args.cold_norm, True, centered)
    names = study.of_model(results, model)
    per_seed = []
    for n, name in enumerate(names):   # a few minutes a run on a large dataset: say where it is
      print(f"scoring {name} ({n + 1}/{len(names)}) {len(kinds)} ways", flush=True)
      per_seed.append(bucket_recall(root / name, kinds))
    counts = per_seed[0][1]
    columns = (*common.BUCKETS, "all", "valid")
    for label in kinds:
      buckets[label] = {b: study.mean_std([r[label][b] for r, _ in per_seed]) for b in columns}
      bucket_rows.append(f"| {label} | " + " | ".join(study.fmt(buckets[label][b])
                                                      for b in columns) + " |")
  seeds = cold_seeds if args.cold_only else args.seeds
  md = f"Cold start on {args.dataset} (test recall@20, mean ± std over seeds {seeds})\n\n"
  data = {"dataset": args.dataset, "seeds": args.seeds}
  if not args.buckets_only:
    chance = min(1.0, 20 / cold_info["items"])
    md += (f"Cold items: {cold_info['items']} items ({COLD:.0%}) with no train or validation "
           f"pair, {cold_info['test_pairs']} test pairs (seeds {cold_seeds})"
           + (f"; {cold_info['tagged_pairs_left_out']} pairs whose user tagged the item left "
              "out" if args.untagged else "") + "\n\n"
           "Cold items ranked among all items (recall@20, AUC) and among the cold items only "
           f"(cold-only recall@20; a random ranking scores 20 / {cold_info['items']} = "
           f"{chance:.4f})\n\n"
           "| model | cold recall@20 | cold AUC | cold-only recall@20 "
           "| all test items recall@20 |\n"
           "|---|---|---|---|---|\n" + "\n".join(cold_rows) + "\n\n")
    data["cold_items"] = {"fraction": COLD, "seeds": cold_seeds, "chance cold-only recall@20":
                          chance, **cold_info, "models": cold}
  if not args.cold_only:
    md += ("By the test item's training degree (normal split; test pairs per bucket in the "
           "header; all: every test pair; valid: every validation pair, what eval.cold_items="
           "auto selects on)\n\n| model | "
           + " | ".join(f"{b} ({counts[b]})" for b in common.BUCKETS) + " | all | valid: all |\n"
           "|---|" + "---|" * (len(common.BUCKETS) + 2) + "\n" + "\n".join(bucket_rows) + "\n")
    if args.impute:
      md += (f"\n\"cold rows\": eval.cold_items=kg (\"centered\": kg_centered) at "
             f"eval.cold_norm={args.cold_norm} (kgax/coldstart.py), the same trained runs "
             "scored again; the control's links "
             "(KG triples and aux facts of the items) have their nodes permuted "
             "(coldstart.shuffled): the same numbers of links, saying nothing.\n")
    data["degree_buckets"] = {"test_pairs": counts, "models": buckets}
  common.write_outputs(args.out, md, data)
  if not args.cold_only:
    common.plot_buckets(buckets, counts, common.output_path(args.out, ".png"))
  return data


if __name__ == "__main__":
  main()
