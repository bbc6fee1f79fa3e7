"""Does the KG help? Each model trained on the real KG and on the data-side controls
(KG4RecEval style): no KG (interactions only), the KG shuffled (tails permuted within each
relation, degrees kept) and no aux facts; same model, same recipe, same split.

    python experiments/studies/controls.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/controls-ml-100k-kg --out docs/results/controls-ml-100k-kg \
        [--models kgat_ax kgat kgin] [--controls full none shuffled no_aux] \
        [--recipe configs/recipes/NAME.py] [--tuned runs/tune] \
        [--config.data.aux_from=../shared/data/raw/recbole-ml-100k] [--buckets]

A model that starts from another (KGAT-AX and KGAT from LightGCN) starts, under every control,
from that model's run on the full data: LightGCN and MF read no KG, so their runs are the same
under every control and are trained once. The table gives test recall@20 and ndcg@20 (mean ±
std over seeds) per model and control, and each control's change against the full KG; a gain
is the KG's only when "full" is above "shuffled" and "none" beyond their spread. Under "none"
CKE and CFKG, whose KG loss trains on KG triples alone, train on the interactions alone (CFKG:
TransE on the interact relation); KGIN, built from KG relations, is refused "none", like any
config that does not parse, with one line before anything trains.

--buckets asks where a difference lies: every run is scored again per bucket of the test item's
training degree (0, 1-5, 6-20, >20 training pairs; the split is the same under every control),
and each control is compared with "full" seed by seed (the paired difference full - control,
mean ± std over seeds, which the shared split and seed make tighter than two separate spreads).
Writes a second table and OUT.png (recall@20 per bucket and control).
"""

import pathlib

import common
from kgax import config as config_lib, inference, options, study

CONTROLS = {   # name: data overrides
    "full": {},
    "none": {"data.kg": "none"},
    "shuffled": {"data.kg": "shuffled"},
    "no_aux": {"data.aux": "false"},
}


def jobs(args, overrides) -> list[study.Job]:
  """Runs {control}/MODEL-seedS for the models, and the runs they start from once (full)."""
  out, names = [], set()
  for control in args.controls:
    prefix = "" if control == "full" else f"{control}-"
    def configure(model, cfg, control=control):
      config_lib.apply_overrides(cfg, common.tuned_overrides(args.tuned, model))
      config_lib.apply_overrides(cfg, CONTROLS[control])
      if cfg.start.pretrained:   # the source's run on the full data
        source = study.starts_from(model, recipe=args.recipe)
        cfg.start.pretrained = str(pathlib.Path(args.root) / f"{source}-seed{{seed}}")
    for job in study.protocol_jobs(args.models, args.dataset, args.seeds, args.root, overrides,
                                   recipe=args.recipe, prefix=prefix, configure=configure):
      model = job.name[len(prefix):].rpartition("-seed")[0]
      if control != "full" and model not in args.models:
        continue   # a source model reads no KG: its full-data run serves every control
      if job.name not in names:
        names.add(job.name)
        out.append(job)
  return out   # "full" comes first, and with it the source runs


def check_configs(todo: list[study.Job], script: str) -> list[study.Job]:
  """`todo`, once every job's config parses: else one line naming the script and the job, before
  anything is trained."""
  for job in todo:
    try:
      options.parse(job.config)
    except options.ConfigError as e:
      raise SystemExit(f"{script}: {job.name}: {e}") from None
  return todo


def main(argv=None):
  def extra(p):
    p.add_argument("--models", nargs="+", default=["kgat_ax", "kgat"],
                   choices=tuple(study.MODELS))
    p.add_argument("--controls", nargs="+", default=list(CONTROLS), choices=tuple(CONTROLS))
    p.add_argument("--buckets", action="store_true",
                   help="also test recall@20 per training-degree bucket of the test item, each "
                        "control against full seed by seed")
  args, overrides = common.study_args(__doc__, argv, default_root="runs/controls", extra=extra)
  if "full" not in args.controls:
    args.controls = ["full", *args.controls]
  todo = check_configs(jobs(args, overrides), "controls.py")
  results = study.run_jobs(todo, args.root)
  rows, data = [], {"dataset": args.dataset, "seeds": args.seeds, "recipe": args.recipe,
                    "models": {}}
  for model in args.models:
    base = study.summarize(study.of_model(results, model))
    data["models"][model] = {}
    for control in args.controls:
      name = model if control == "full" else f"{control}-{model}"
      s = study.summarize(study.of_model(results, name))
      data["models"][model][control] = s
      delta = 100 * (s["recall@20"][0] - base["recall@20"][0]) / base["recall@20"][0]
      cap = " (capped)" if s["capped"] else ""
      rows.append(f"| {model} | {control}{cap} | {study.fmt(s['recall@20'])} | "
                  f"{study.fmt(s['ndcg@20'])} | {'' if control == 'full' else f'{delta:+.2f}%'} |")
  md = (f"Controls on {args.dataset} (test, mean ± std over seeds {args.seeds})\n\n"
        "| model | data | recall@20 | ndcg@20 | recall@20 vs full |\n|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n(capped): a run stopped at its epoch cap, not by early "
        "stopping.\n")
  if args.buckets:
    md += by_degree(args, results, data)
  common.write_outputs(args.out, md, data)
  if args.buckets:
    for model, per in data["degree_buckets"]["models"].items():
      labels = {f"{model}, {control}": v["recall@20"] for control, v in per.items()}
      suffix = "" if len(args.models) == 1 else f"-{model}"
      common.plot_buckets(labels, data["degree_buckets"]["test_pairs"],
                          common.output_path(f"{args.out}{suffix}", ".png"))
  return data


def by_degree(args, results: dict, data: dict) -> str:
  """Test recall@20 per training-degree bucket of every model and control (data
  ["degree_buckets"]) and its markdown table: mean ± std over seeds, and for each control the
  paired difference full - control per seed."""
  root, buckets = pathlib.Path(args.root), (*common.BUCKETS, "all")
  out, rows, counts = {}, [], None
  for model in args.models:
    per_control = {}
    for control in args.controls:
      name = model if control == "full" else f"{control}-{model}"
      runs = sorted(study.of_model(results, name))
      print(f"scoring {len(runs)} runs of {name} by degree", flush=True)
      per_seed = []
      for run in runs:
        opened = inference.Run.open(root / run)
        counts = common.bucket_counts(opened)
        per_seed.append({**common.recall_by_bucket(opened),
                         "all": results[run]["test"]["recall@20"]})
      per_control[control] = per_seed
    out[model] = {}
    for control, per_seed in per_control.items():
      entry = {"recall@20": {b: study.mean_std([r[b] for r in per_seed]) for b in buckets}}
      if control != "full":
        entry["full - control"] = {b: study.mean_std(
            [f[b] - r[b] for f, r in zip(per_control["full"], per_seed)]) for b in buckets}
      out[model][control] = entry
      cells = [study.fmt(entry["recall@20"][b]) + (
          "" if control == "full" else f" ({study.fmt(entry['full - control'][b])})")
          for b in buckets]
      rows.append(f"| {model} | {control} | " + " | ".join(cells) + " |")
  data["degree_buckets"] = {"test_pairs": counts, "models": out}
  return ("\nBy the test item's training degree (test pairs per bucket in the header): recall@20, "
          "and in brackets full - control, paired by seed (mean ± std)\n\n| model | data | "
          + " | ".join(f"{b} ({counts[b]})" for b in common.BUCKETS)
          + f" | all ({sum(counts.values())}) |\n|---|---|" + "---|" * len(buckets) + "\n"
          + "\n".join(rows) + "\n")


if __name__ == "__main__":
  main()
