"""The paper's Table 3: KGAT-AX against its ablations (and KGAT), AUC, recall@20, ndcg@20.

    python experiments/studies/table3.py --dataset ../shared/data/bench/ml-100k-kg --seeds 0 1 2 \
        --root runs/table3 --out docs/results/table3-ml-100k-kg \
        [--variants kgat_ax no_kge ...] [--recipe configs/recipes/pretrained_mf.py] \
        [--tuned runs/tune] [--config.data.aux_from=../shared/data/raw/recbole-ml-100k]

Every variant is trained on the same split (after the run it starts from, when its config or
--recipe names one), selected on validation, and reported on test as mean ± std over the
seeds. Finished runs are skipped, so the script can be restarted.
"""

import common
from kgax import study

VARIANTS = ("kgat_ax", "no_kge", "no_att_eu", "no_att_ei", "no_aux", "kgat")


def main(argv=None):
  args, overrides = common.study_args(__doc__, argv, default_root="runs/table3",
                                      variants=VARIANTS)
  results = study.run_jobs(common.jobs(args, overrides, args.variants), args.root)
  rows, summaries = [], {}
  for variant in args.variants:
    s = summaries[variant] = study.summarize(study.of_model(results, variant))
    rows.append(f"| {variant} | {study.fmt(s['auc'])} | {study.fmt(s['recall@20'])} | "
                f"{study.fmt(s['ndcg@20'])} | {common.cost(s)} |")
  md = (f"Table 3 on {args.dataset} (test, mean ± std over seeds {args.seeds})\n\n"
        "| variant | AUC | recall@20 | ndcg@20 | valid recall@20 | best epochs | minutes |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n\n{common.COST_NOTE}\n")
  data = {"dataset": args.dataset, "seeds": args.seeds, "recipe": args.recipe,
          "variants": summaries}
  common.write_outputs(args.out, md, data)
  return data


if __name__ == "__main__":
  main()
