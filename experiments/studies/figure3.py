"""The paper's Figure 3: test Recall@K for K = 20..100 per model, and validation curves.

    python experiments/studies/figure3.py --dataset ../shared/data/bench/ml-100k-kg --seeds 0 1 2 \
        --root runs/table2 --out docs/results/figure3-ml-100k-kg [--models mf kgat kgat_ax] \
        [--recipe configs/recipes/pretrained_mf.py] \
        [--config.data.aux_from=../shared/data/raw/recbole-ml-100k]

Reads the runs of a table2.py study with the same options (training any that are missing) and
writes OUT.csv / OUT.png (Recall@K, mean over seeds) and OUT-curves.csv / OUT-curves.png
(validation recall@20 per epoch, mean over the seeds that reached the epoch). A model fine-tuned
from another model's run (start.pretrained) has its epochs counted after the epochs of the run
it started from (the mean of its seeds' best epochs there), so that its curve continues that
run's.
"""

import json
import pathlib

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import common  # noqa: E402
import table2  # noqa: E402
from kgax import study  # noqa: E402

KS = (20, 40, 60, 80, 100)


def valid_curve(workdir: pathlib.Path, metric: str = "recall@20") -> dict[int, float]:
  """{epoch: metric} of a run's validation rows (after a resume, an epoch's last row wins)."""
  rows = (json.loads(line) for line in (workdir / "metrics.jsonl").open())
  return {r["epoch"]: r[metric] for r in rows if r.get("split") == "valid"}


def plot(table: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, path: pathlib.Path):
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for model, part in table.groupby("model", sort=False):
    ax.plot(part[x], part[y], marker="o", ms=3, label=model)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  args, overrides = common.study_args(__doc__, argv, default_root="runs/table2",
                                      models=table2.MODELS)
  jobs = common.jobs(args, overrides, args.models)
  for job in jobs:
    if not set(KS) <= set(job.config.eval.ks):
      raise SystemExit(f"{job.name}: config.eval.ks={tuple(job.config.eval.ks)} lacks some of {KS}")
  results = study.run_jobs(jobs, args.root)
  recall, curves = [], []
  for model in args.models:
    per = study.of_model(results, model)
    for k in KS:
      mean, std = study.mean_std([r["test"][f"recall@{k}"] for r in per.values()])
      recall.append({"model": model, "K": k, "recall": mean, "std": std})
    by_epoch = {}
    for name in per:
      for epoch, value in valid_curve(pathlib.Path(args.root) / name).items():
        by_epoch.setdefault(epoch, []).append(value)
    start = round(np.mean([study.pretraining(pathlib.Path(args.root) / name, "best_epoch")
                           for name in per]))
    curves += [{"model": model, "epoch": start + e, "recall@20": np.mean(v), "seeds": len(v)}
               for e, v in sorted(by_epoch.items())]
  recall, curves = pd.DataFrame(recall), pd.DataFrame(curves)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  recall.to_csv(f"{out}.csv", index=False, float_format="%.6f")
  curves.to_csv(f"{out}-curves.csv", index=False, float_format="%.6f")
  plot(recall, "K", "recall", "K", "test Recall@K", pathlib.Path(f"{out}.png"))
  plot(curves, "epoch", "recall@20", "epoch (fine-tunes: after the run they start from)",
       "validation recall@20",
       pathlib.Path(f"{out}-curves.png"))
  print(recall.pivot(index="model", columns="K", values="recall").loc[args.models]
        .to_string(float_format="%.4f"))
  return recall, curves


if __name__ == "__main__":
  main()
