"""What the paper's study scripts share beyond kgax.study: their command line, their runs, the
cost cells of their tables and their output files.

A study builds each model as `kgax run` does: from its config file in configs/ (the recommended
protocol) or, with --recipe FILE, from that recipe config file (configs/recipes/*.py), then the
--config.* overrides and, with --tuned, the fields tune.py selected for it. A model whose config
module (STARTS_FROM) or recipe (starts_from(model)) names another model is trained after that
model, which is added when missing, and starts from its run of the same seed
(start.pretrained = ROOT/MODEL-seed{seed}). Finished runs are skipped (kgax.study.run_jobs).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from kgax import config as config_lib, evaluate, inference, study

COST_NOTE = ("valid recall@20 = mean over the seeds of the selected checkpoints' validation "
             "recall@20; best epochs per seed; minutes = mean wall time of one run (training "
             "and its evaluations; a run that starts from another model's run excludes that "
             "run).")


def study_args(description: str, argv=None, *, default_root: str, models=(), variants=(),
               extra=None, default_models=None):
  """Common options of the study scripts (--models / --variants when `models` / `variants` are
  given; --models defaults to `default_models` or all of `models`; `extra(parser)` adds a
  script's own); returns (args, config overrides)."""
  overrides, rest = config_lib.split_overrides(list(sys.argv[1:] if argv is None else argv))
  p = argparse.ArgumentParser(description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", required=True, help="registered name or folder")
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--root", default=default_root, help="where the runs' workdirs go")
  p.add_argument("--out", required=True, help="output prefix for .md/.json/.png")
  p.add_argument("--recipe", default="",
                 help="a recipe config file (configs/recipes/*.py) instead of each model's "
                      "config file; its starts_from(model) names the run a model starts from")
  p.add_argument("--tuned", default="",
                 help="folder of tune.py results, TUNED/<model>/tune.json: each model's selected "
                      "fields are applied on top of the --config.* overrides")
  if models:
    p.add_argument("--models", nargs="+", choices=models, default=list(default_models or models),
                   help="a subset of the models")
  if extra is not None:
    extra(p)
  if variants:
    p.add_argument("--variants", nargs="+", choices=variants, default=list(variants),
                   help="a subset of the variants")
  return p.parse_args(rest), overrides


def tuned_overrides(tuned: str, name: str) -> dict[str, str]:
  """The fields tune.py selected for `name` (TUNED/name/tune.json), {} without --tuned."""
  if not tuned:
    return {}
  path = pathlib.Path(tuned) / name / "tune.json"
  if not path.is_file():
    print(f"--tuned {tuned}: no {name}/tune.json, {name} keeps its config's values", flush=True)
    return {}
  return json.loads(path.read_text())["best"]


def jobs(args, overrides: dict, models, prefix: str = "", change=None, seeds=None
         ) -> list[study.Job]:
  """The study's runs {prefix}MODEL-seedS of `models` and of the models they start from, in
  training order, for `seeds` (default --seeds); `change(config)` is applied to every one
  (e.g. the cold-item split)."""
  def configure(model, cfg):
    config_lib.apply_overrides(cfg, tuned_overrides(args.tuned, model))
    if change is not None:
      change(cfg)
  return study.protocol_jobs(models, args.dataset, args.seeds if seeds is None else seeds,
                             args.root, overrides, recipe=args.recipe, prefix=prefix,
                             configure=configure)


def model_config(model: str, args, overrides: dict, prefix: str = ""):
  """MODEL's config in the study (of its last seed)."""
  return jobs(args, overrides, [model], prefix)[-1].config


def cost(summary: dict) -> str:
  """'valid recall@20 | best epochs | minutes per run' cells of a summary:
  '0.3360 | 45, 40, 45 | 17.2' (the validation figure is the mean over the seeds)."""
  epochs = ", ".join(str(e) for e in summary["best_epochs"])
  valid = summary.get("valid/recall@20")
  return (f"{'-' if valid is None else f'{valid[0]:.4f}'} | {epochs} | "
          f"{np.mean(summary['wall_seconds']) / 60:.1f}")


def output_path(out: str | pathlib.Path, ext: str) -> pathlib.Path:
  """OUT + ext: "docs/results/x-q0.1", ".md" -> docs/results/x-q0.1.md."""
  return pathlib.Path(f"{out}{ext}")


def write_outputs(out: str | pathlib.Path, markdown: str, data: dict) -> None:
  """OUT.md (with the hardware line) and OUT.json, and the markdown on stdout. OUT is a name
  without extension (dots in it stay: OUT.md is `out` + ".md")."""
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  data["hardware"] = study.hardware()
  markdown += f"\nHardware: {data['hardware']}.\n"
  output_path(out, ".md").write_text(markdown)
  output_path(out, ".json").write_text(json.dumps(data, indent=2))
  print(markdown)


# Test pairs by their item's training degree (the "where" of a gain: new, rare, common items).
BUCKETS = {"0": (0, 0), "1-5": (1, 5), "6-20": (6, 20), ">20": (21, np.inf)}


def bucket_masks(run: inference.Run) -> dict[str, np.ndarray]:
  """Test pairs per bucket of their item's training degree."""
  degree = np.bincount(run.split.train[:, 1], minlength=run.ds.n_items)[run.split.test[:, 1]]
  return {b: (degree >= lo) & (degree <= hi) for b, (lo, hi) in BUCKETS.items()}


def metrics_on(run: inference.Run, evaluate_fn, keep: np.ndarray, metrics=("recall",),
               skip: np.ndarray | None = None) -> dict:
  """Test recall@20 (and AUC if asked) against only the test pairs that `keep` selects (NaN when
  none); pairs in `skip` are neither truth nor ranked."""
  s = run.split
  skip = np.zeros(len(s.test), bool) if skip is None else skip
  if not (keep & ~skip).any():
    return {"recall@20": float("nan"), "auc": float("nan")}
  ev = evaluate.Evaluator(run.ds.n_users, run.ds.n_items, s.test[keep & ~skip],
                          np.concatenate([s.train, s.valid, s.test[skip]]), ks=(20,),
                          metrics=metrics, batch_size=run.opts.eval.batch_size)
  return evaluate_fn(run.params, ev)


def recall_by_bucket(run: inference.Run, evaluate_fn=None) -> dict[str, float]:
  """Test recall@20 per degree bucket of a run, scored by `evaluate_fn` (default: the run's own
  rows, full ranking)."""
  evaluate_fn = evaluate_fn or run.exp.evaluate_fn()
  return {b: metrics_on(run, evaluate_fn, keep)["recall@20"]
          for b, keep in bucket_masks(run).items()}


def bucket_counts(run: inference.Run) -> dict[str, int]:
  """Test pairs per degree bucket."""
  return {b: int(keep.sum()) for b, keep in bucket_masks(run).items()}


def plot_buckets(buckets: dict, counts: dict, path: pathlib.Path):
  """Grouped bars: per label, test recall@20 (mean ± std) in each degree bucket."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  x, width = np.arange(len(BUCKETS)), 0.8 / len(buckets)
  for n, (label, per) in enumerate(buckets.items()):
    mean, std = zip(*(per[b] for b in BUCKETS))
    ax.bar(x + (n - (len(buckets) - 1) / 2) * width, mean, width, yerr=std, capsize=2,
           label=label)
  ax.set_xticks(x, [f"{b}\n{counts[b]} pairs" for b in BUCKETS])
  ax.set_xlabel("training degree of the test item")
  ax.set_ylabel("test recall@20")
  ax.grid(alpha=0.3, axis="y")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)   # outside the bars
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)
