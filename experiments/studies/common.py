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

from kgax import config as config_lib, study

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
