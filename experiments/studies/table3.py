"""The paper's Table 3: KGAT-AX against its ablations (and KGAT), AUC, recall@20, ndcg@20.

    python experiments/table3.py --dataset ../shared/data/bench/ml-100k-kg \
        --aux-from ../shared/data/raw/recbole-ml-100k --seeds 0 1 2 \
        --root runs/table3 --out docs/results/table3-ml-100k-kg [--config.train.epochs=60] \
        [--tuned runs/tune] [--pretrain [--pretrain-from lightgcn]] \
        [--variants kgat_ax no_kge ...]

Every variant is trained on the same split, selected on validation, and reported on test as
mean ± std over the seeds. Finished runs are skipped, so the script can be restarted.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import runs  # noqa: E402

VARIANTS = ("kgat_ax", "no_kge", "no_att_eu", "no_att_ei", "no_aux", "kgat")
CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
CONFIG = str(CONFIGS / "kgat_ax.py")


def main(argv=None):
  args, overrides = runs.study_args(__doc__, argv, default_root="runs/table3", variants=VARIANTS)
  jobs = []
  if args.pretrain:   # the runs the variants start from (BPR-MF unless --pretrain-from)
    source = args.pretrain_from
    jobs += runs.seed_jobs(runs.model_config(str(CONFIGS / f"{source}.py"), args, overrides,
                                             name=source), args.seeds, source)
  for variant in args.variants:
    cfg = runs.model_config(CONFIG, args, overrides, f"variant={variant}", name=variant)
    jobs += runs.seed_jobs(runs.with_pretrain(cfg, args), args.seeds, variant)
  results = runs.run_jobs(jobs, args.root)
  rows, summaries = [], {}
  for variant in args.variants:
    per = {k: v for k, v in results.items() if k.startswith(f"{variant}-seed")}
    s = runs.summarize(per)
    summaries[variant] = s
    rows.append(f"| {variant} | {runs.fmt(s['auc'])} | {runs.fmt(s['recall@20'])} | "
                f"{runs.fmt(s['ndcg@20'])} | {runs.cost(s)} |")
  md = (f"Table 3 on {args.dataset} (test, mean ± std over seeds {args.seeds})\n\n"
        "| variant | AUC | recall@20 | ndcg@20 | valid recall@20 | best epochs | minutes |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n\n{runs.COST_NOTE}\n")
  data = {"dataset": args.dataset, "seeds": args.seeds, "variants": summaries}
  runs.write_outputs(args.out, md, data)
  return data


if __name__ == "__main__":
  main()
