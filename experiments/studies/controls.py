"""Does the KG help? Each model trained on the real KG and on the data-side controls
(KG4RecEval style): no KG (interactions only), the KG shuffled (tails permuted within each
relation, degrees kept) and no aux facts; same model, same recipe, same split.

    python experiments/studies/controls.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/controls-ml-100k-kg --out docs/results/controls-ml-100k-kg \
        [--models kgat_ax kgat kgin] [--controls full none shuffled no_aux] \
        [--recipe configs/recipes/NAME.py] [--tuned runs/tune] \
        [--config.data.aux_from=../shared/data/raw/recbole-ml-100k]

A model that starts from another (KGAT-AX and KGAT from LightGCN) starts, under every control,
from that model's run on the full data: LightGCN and MF read no KG, so their runs are the same
under every control and are trained once. The table gives test recall@20 and ndcg@20 (mean ±
std over seeds) per model and control, and each control's change against the full KG; a gain
is the KG's only when "full" is above "shuffled" and "none" beyond their spread. Under "none"
CKE and CFKG, whose KG loss trains on KG triples alone, train on the interactions alone (CFKG:
TransE on the interact relation); KGIN, built from KG relations, is refused "none", like any
config that does not parse, with one line before anything trains.
"""

import pathlib

import common
from kgax import config as config_lib, options, study

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


def main(argv=None):
  def extra(p):
    p.add_argument("--models", nargs="+", default=["kgat_ax", "kgat"],
                   choices=tuple(study.MODELS))
    p.add_argument("--controls", nargs="+", default=list(CONTROLS), choices=tuple(CONTROLS))
  args, overrides = common.study_args(__doc__, argv, default_root="runs/controls", extra=extra)
  if "full" not in args.controls:
    args.controls = ["full", *args.controls]
  todo = jobs(args, overrides)
  for job in todo:   # every config checked before anything is trained
    try:
      options.parse(job.config)
    except options.ConfigError as e:
      raise SystemExit(f"controls.py: {job.name}: {e}") from None
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
  common.write_outputs(args.out, md, data)
  return data


if __name__ == "__main__":
  main()
