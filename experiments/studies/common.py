"""Running a study: many (config, seed) runs, restartable, with progress across runs.

A run whose workdir already holds results.json under the same config is skipped, so an
interrupted study continues where it stopped (a run cut mid-way resumes from its latest
checkpoint). A finished run whose train.epochs or train.patience the study now raises is
extended; one with any other difference stops the study with a one-line error rather than
being reused.

    python experiments/runs.py --config configs/kgat_ax.py:dataset=DIR --seeds 0 1 2 \
        --root runs/study [--config.optim.lr=5e-3]

prints mean +- std of the test metrics over seeds and writes ROOT/summary.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from kgax import config as config_lib, train  # noqa: E402


@dataclasses.dataclass
class Job:
  name: str          # workdir name below the study root
  config: object     # ml_collections.ConfigDict


def run_jobs(jobs: list[Job], root: str | pathlib.Path) -> dict[str, dict]:
  """Runs every job not finished yet; returns {name: results} for all of them."""
  root = pathlib.Path(root)
  results, todo = {}, []
  for job in jobs:
    done = root / job.name / "results.json"
    if not done.is_file():
      todo.append(job)
      continue
    stored = json.loads((root / job.name / "config.json").read_text())
    why = train.config_difference(stored, json.loads(job.config.to_json()))
    if why == "extend":
      todo.append(job)
    elif why is None:
      results[job.name] = json.loads(done.read_text())
    else:
      raise SystemExit(f"{root / job.name}: {why}")
  print(f"{len(jobs)} runs: {len(results)} already finished, {len(todo)} to go", flush=True)
  t0 = time.time()
  for n, job in enumerate(todo):
    elapsed = time.time() - t0
    eta = "" if n == 0 else f", ETA {elapsed / n * (len(todo) - n) / 60:.1f} min"
    print(f"[{n + 1}/{len(todo)}] {job.name}{eta}", flush=True)
    results[job.name] = train.train_and_evaluate(job.config, root / job.name)
  return results


def mean_std(values) -> tuple[float, float]:
  v = np.asarray(values, float)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def seed_jobs(config, seeds, prefix: str) -> list[Job]:
  jobs = []
  for seed in seeds:
    c = config.copy_and_resolve_references()
    c.seed = int(seed)
    jobs.append(Job(f"{prefix}-seed{seed}", c))
  return jobs


def summarize(results: dict[str, dict], keys=("recall@20", "ndcg@20", "auc")) -> dict:
  out = {}
  for key in keys:
    vals = [r["test"][key] for r in results.values() if key in r["test"]]
    if vals:
      out[key] = mean_std(vals)
  valid = [r["valid"]["recall@20"] for r in results.values() if "recall@20" in r.get("valid", {})]
  if valid:   # the selection metric, for reading the table as selection saw it
    out["valid/recall@20"] = mean_std(valid)
  out["best_epochs"] = [r["best_epoch"] for r in results.values()]
  out["wall_seconds"] = [r["wall_seconds"] for r in results.values()]
  return out


def fmt(ms: tuple[float, float]) -> str:
  return f"{ms[0]:.4f} ± {ms[1]:.4f}"


def cost(summary: dict) -> str:
  """'valid recall@20 | best epochs | minutes per run' cells of a summary:
  '0.3360 | 45, 40, 45 | 17.2' (the validation figure is the mean over the seeds)."""
  epochs = ", ".join(str(e) for e in summary["best_epochs"])
  valid = summary.get("valid/recall@20")
  return (f"{'-' if valid is None else f'{valid[0]:.4f}'} | {epochs} | "
          f"{np.mean(summary['wall_seconds']) / 60:.1f}")


def hardware() -> str:
  """Where the runs were summarised: device kind and count, CPU cores, jax version."""
  devices = jax.devices()
  kind = devices[0].platform
  if devices[0].device_kind != kind:
    kind += f" ({devices[0].device_kind})"
  return f"{kind} x{len(devices)}, {os.cpu_count()} CPU cores, jax {jax.__version__}"


COST_NOTE = ("valid recall@20 = mean over the seeds of the selected checkpoints' validation "
             "recall@20; best epochs per seed; minutes = mean wall time of one run (training "
             "and its evaluations; a run that starts from a pretrained MF or LightGCN run "
             "excludes that run).")


# Models whose trained user and item embeddings a --pretrain study can start the KGAT family from.
PRETRAIN_FROM = ("mf", "lightgcn")


def study_args(description: str, argv=None, *, default_root: str, models=(), variants=(),
               extra=None):
  """Common options of the study scripts (--models / --variants when `models` / `variants` are
  given; `extra(parser)` adds a script's own); returns (args, config overrides)."""
  overrides, rest = config_lib.split_overrides(list(sys.argv[1:] if argv is None else argv))
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--dataset", required=True, help="registered name or folder")
  p.add_argument("--aux-from", default="", help="folder with aux facts over the same ids")
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--root", default=default_root, help="where the runs' workdirs go")
  p.add_argument("--out", required=True, help="output prefix for .md/.json/.png")
  p.add_argument("--pretrain", action="store_true",
                 help="initialise the KGAT-family models from the study's own BPR-MF runs "
                      "(ROOT/mf-seedS, trained first), as KGAT's published results do")
  p.add_argument("--pretrain-from", default="mf", choices=PRETRAIN_FROM,
                 help="with --pretrain, the model whose runs (ROOT/MODEL-seedS, trained first) "
                      "the KGAT family starts from")
  p.add_argument("--recipe", default="",
                 help="JSON file {model: {field: value}} (\"*\": every model; \"a,b\": models a "
                      "and b) of per-model settings, applied after --config.* and --tuned")
  p.add_argument("--tuned", default="",
                 help="folder of tune.py results, TUNED/<model>/tune.json: each model's selected "
                      "fields are applied on top of the --config.* overrides")
  if models:
    p.add_argument("--models", nargs="+", choices=models, default=list(models),
                   help="a subset of the models")
  if extra is not None:
    extra(p)
  if variants:
    p.add_argument("--variants", nargs="+", choices=variants, default=list(variants),
                   help="a subset of the variants")
  args = p.parse_args(rest)
  return args, overrides


def tuned_overrides(tuned: str, name: str) -> dict[str, str]:
  """The fields tune.py selected for `name` (TUNED/name/tune.json), {} without --tuned."""
  if not tuned:
    return {}
  path = pathlib.Path(tuned) / name / "tune.json"
  if not path.is_file():
    print(f"--tuned {tuned}: no {name}/tune.json, {name} keeps its config's values", flush=True)
    return {}
  return json.loads(path.read_text())["best"]


def recipe_overrides(recipe: str, name: str) -> dict[str, str]:
  """The fields a --recipe file sets for `name`: its "*" entry, then, in file order, every entry
  whose key names it ("kgat_ax" or a comma-separated list such as "kgat_ax,no_kge")."""
  if not recipe:
    return {}
  path = pathlib.Path(recipe)
  try:
    data = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise SystemExit(f"--recipe {recipe}: {e}") from None
  if not isinstance(data, dict) or not all(isinstance(v, dict) for k, v in data.items()
                                           if not k.startswith("_")):
    raise SystemExit(f"--recipe {recipe}: expected {{model: {{field: value}}}}")
  fields = dict(data.get("*", {}))
  for key, entry in data.items():
    if name in (part.strip() for part in key.split(",")):
      fields.update(entry)
  return {k: str(v) for k, v in fields.items()}


def model_config(config_file: str, args, overrides, arg: str = "", name: str = "") -> object:
  """A config file's config for args.dataset, with --aux-from, --config.* overrides and, with
  --tuned, the fields selected for `name`."""
  spec = f"{config_file}:dataset={args.dataset}" + (f",{arg}" if arg else "")
  cfg = config_lib.apply_overrides(config_lib.load_file(spec), overrides)
  cfg = config_lib.apply_overrides(cfg, tuned_overrides(getattr(args, "tuned", ""), name))
  cfg = config_lib.apply_overrides(cfg, recipe_overrides(getattr(args, "recipe", ""), name))
  if args.aux_from and "aux_from" in cfg.data:
    cfg.data.aux_from = args.aux_from
  return cfg


def with_pretrain(cfg, args, prefix: str = ""):
  """With --pretrain, points a model that can start from pretrained embeddings
  (config.model.pretrained) at the study's run of the same seed and split of the model named by
  --pretrain-from (BPR-MF by default), ROOT/{prefix}{model}-seed{seed}."""
  if getattr(args, "pretrain", False) and "pretrained" in cfg.model:
    source = getattr(args, "pretrain_from", "mf")
    cfg.model.pretrained = str(pathlib.Path(args.root) / f"{prefix}{source}-seed{{seed}}")
  return cfg


def write_outputs(out: str | pathlib.Path, markdown: str, data: dict) -> None:
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  data["hardware"] = hardware()
  markdown += f"\nHardware: {data['hardware']}.\n"
  out.with_suffix(".md").write_text(markdown)
  out.with_suffix(".json").write_text(json.dumps(data, indent=2))
  print(markdown)


def main(argv=None):
  overrides, rest = config_lib.split_overrides(list(sys.argv[1:] if argv is None else argv))
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", required=True)
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--root", required=True)
  p.add_argument("--name", default="run")
  args = p.parse_args(rest)
  cfg = config_lib.apply_overrides(config_lib.load_file(args.config), overrides)
  results = run_jobs(seed_jobs(cfg, args.seeds, args.name), args.root)
  summary = summarize(results)
  for key, value in summary.items():
    if isinstance(value, tuple):
      print(f"{key}: {value[0]:.4f} +- {value[1]:.4f}")
  root = pathlib.Path(args.root)
  (root / f"{args.name}-summary.json").write_text(json.dumps(summary, indent=2))
  return summary


if __name__ == "__main__":
  main()
