"""The paper's Table 2: KGAT-AX against FM, MF, CKE, CFKG, KGCN and KGAT, recall@20 and ndcg@20.

    python experiments/table2.py --dataset ../shared/data/bench/ml-100k-kg \
        --aux-from ../shared/data/raw/recbole-ml-100k --seeds 0 1 2 \
        --root runs/table2 --out docs/results/table2-ml-100k-kg [--models mf kgat kgat_ax] \
        [--config.train.epochs=60] [--tuned runs/tune] [--pretrain [--pretrain-from lightgcn]]

Every model is trained on the same split, selected on validation, and reported on test as
mean ± std over the seeds; the %Improve row is KGAT-AX's gain over the best other model of each
column. Finished runs are skipped, so the script can be restarted. --config.* overrides apply to
every model, so they may only name fields all of them have (data.*, optim.*, train.*, eval.*,
model.embed_dim).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import runs  # noqa: E402

MODELS = {   # name: (config file, config argument)
    "fm": ("fm.py", ""),
    "mf": ("mf.py", ""),
    "cke": ("cke.py", ""),
    "cfkg": ("cfkg.py", ""),
    "kgcn": ("kgcn.py", ""),
    "lightgcn": ("lightgcn.py", ""),
    "kgat": ("kgat_ax.py", "variant=kgat"),
    "kgat_ax": ("kgat_ax.py", "variant=kgat_ax"),
}
METRICS = ("recall@20", "ndcg@20")
CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def model_config(model: str, args, overrides, prefix: str = ""):
  """MODEL's config for the study (with --pretrain: from ROOT/{prefix}MODEL-seedS of the
  --pretrain-from model)."""
  file, arg = MODELS[model]
  cfg = runs.model_config(str(CONFIGS / file), args, overrides, arg, name=model)
  return runs.with_pretrain(cfg, args, prefix)


def run_order(args, models) -> list[str]:
  """The models to train, the pretrained one (--pretrain-from, MF by default) first when the
  others start from it (--pretrain)."""
  if getattr(args, "pretrain", False):
    first = getattr(args, "pretrain_from", "mf")
    return [first] + [m for m in models if m != first]
  return list(models)


def jobs(args, overrides, models) -> list[runs.Job]:
  """The study's runs, named MODEL-seedS (figure3.py and cold_start.py reuse them)."""
  return [job for model in run_order(args, models)
          for job in runs.seed_jobs(model_config(model, args, overrides), args.seeds, model)]


def of_model(results: dict, name: str) -> dict:
  return {k: v for k, v in results.items() if k.startswith(f"{name}-seed")}


def improvement(summaries: dict) -> dict:
  """KGAT-AX's % gain over the best other model by mean, per metric."""
  out = {}
  for key in METRICS:
    base = max((m for m in summaries if m != "kgat_ax"), key=lambda m: summaries[m][key][0])
    best, ours = summaries[base][key][0], summaries["kgat_ax"][key][0]
    out[key] = {"over": base, "percent": 100 * (ours - best) / best if best else float("nan")}
  return out


def main(argv=None):
  args, overrides = runs.study_args(__doc__, argv, default_root="runs/table2", models=tuple(MODELS))
  results = runs.run_jobs(jobs(args, overrides, args.models), args.root)
  rows, summaries = [], {}
  for model in args.models:
    s = summaries[model] = runs.summarize(of_model(results, model))
    rows.append(f"| {model} | {runs.fmt(s['recall@20'])} | {runs.fmt(s['ndcg@20'])} | "
                f"{runs.cost(s)} |")
  data = {"dataset": args.dataset, "seeds": args.seeds, "models": summaries}
  if "kgat_ax" in summaries and len(summaries) > 1:
    data["improve"] = improvement(summaries)
    rows.append("| %Improve | " + " | ".join(
        f"{g['percent']:+.2f}% (vs {g['over']})" for g in data["improve"].values()) + " | | | |")
  md = (f"Table 2 on {args.dataset} (test, mean ± std over seeds {args.seeds})\n\n"
        "| model | recall@20 | ndcg@20 | valid recall@20 | best epochs | minutes |\n"
        "|---|---|---|---|---|---|\n"
        + "\n".join(rows) + f"\n\n{runs.COST_NOTE}\n")
  runs.write_outputs(args.out, md, data)
  return data


if __name__ == "__main__":
  main()
