"""Running a study: many (model, seed) runs, restartable, with progress across runs, and the
table that compares them. `kgax run` and the paper's study scripts (experiments/studies/) use it.

A run whose workdir already holds results.json under the same config is skipped, so an
interrupted study continues where it stopped (a run cut mid-way resumes from its latest
checkpoint). A finished run whose train.epochs or train.patience the study now raises is
extended; one with any other difference stops the study with a one-line error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time

import jax
import numpy as np

from kgax import config as config_lib, options, train
from kgax.workdir import Workdir

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"

# name: config file (in configs/) and its argument. A config module's STARTS_FROM names the model
# whose run of the same seed starts it (start.pretrained).
MODELS = {
    "mf": "mf.py",
    "lightgcn": "lightgcn.py",
    "fm": "fm.py",
    "cke": "cke.py",
    "cfkg": "cfkg.py",
    "kgcn": "kgcn.py",
    "kgin": "kgin.py",
    "kgat": "kgat_ax.py:variant=kgat",
    "kgat_ax": "kgat_ax.py:variant=kgat_ax",
    "no_kge": "kgat_ax.py:variant=no_kge",
    "no_att_eu": "kgat_ax.py:variant=no_att_eu",
    "no_att_ei": "kgat_ax.py:variant=no_att_ei",
    "no_aux": "kgat_ax.py:variant=no_aux",
}
# The recommended protocol's models (`kgax run`), in training order.
PROTOCOL = ("mf", "lightgcn", "kgat_ax")


@dataclasses.dataclass
class Job:
  name: str          # workdir name below the study root
  config: object     # ml_collections.ConfigDict


def model_config(model: str, dataset: str, overrides: dict | None = None,
                 configs: pathlib.Path = CONFIGS, recipe: str = ""):
  """The config of `model` (a MODELS name) on `dataset`: its config file, or with `recipe` a
  recipe file taking "model=NAME,dataset=D", then --config.* overrides."""
  if recipe:
    spec = f"{recipe}:model={model},dataset={dataset}"
  else:
    file, _, arg = MODELS[model].partition(":")
    spec = f"{configs / file}:dataset={dataset}" + (f",{arg}" if arg else "")
  return config_lib.apply_overrides(config_lib.load_file(spec), dict(overrides or {}))


def starts_from(model: str, configs: pathlib.Path = CONFIGS, recipe: str = "") -> str | None:
  """The model whose run starts `model` (its config module's STARTS_FROM; a recipe's
  starts_from(model)), or None."""
  if recipe:
    module = config_lib.load_module(recipe)
    return module.starts_from(model) if hasattr(module, "starts_from") else None
  file = MODELS[model].partition(":")[0]
  return getattr(config_lib.load_module(str(configs / file)), "STARTS_FROM", None)


def run_order(models, recipe: str = "") -> list[str]:
  """`models` with each model that starts from another after that one (added when missing)."""
  order = []
  def add(m):
    source = starts_from(m, recipe=recipe)
    if source and source not in order:
      add(source)
    if m not in order:
      order.append(m)
  for m in models:
    add(m)
  return order


def protocol_jobs(models, dataset: str, seeds, root, overrides: dict | None = None,
                  recipe: str = "", prefix: str = "", configure=None) -> list[Job]:
  """Jobs {prefix}MODEL-seedS for every model and seed (`run_order`), a model that starts from
  another pointed at that model's run of the same seed. `configure(model, config)`, when
  given, changes a model's config in place before its jobs are made."""
  jobs = []
  for model in run_order(models, recipe):
    cfg = model_config(model, dataset, overrides, recipe=recipe)
    source = starts_from(model, recipe=recipe)
    if source:
      cfg.start.pretrained = str(pathlib.Path(root) / f"{prefix}{source}-seed{{seed}}")
    if configure is not None:
      configure(model, cfg)
    jobs += seed_jobs(cfg, seeds, prefix + model)
  return jobs


def seed_jobs(config, seeds, prefix: str) -> list[Job]:
  jobs = []
  for seed in seeds:
    c = config.copy_and_resolve_references()
    c.seed = int(seed)
    jobs.append(Job(f"{prefix}-seed{seed}", c))
  return jobs


def run_jobs(jobs: list[Job], root: str | pathlib.Path) -> dict[str, dict]:
  """Runs every job not finished yet; returns {name: results} for all of them."""
  root = pathlib.Path(root)
  results, todo = {}, []
  for job in jobs:
    options.parse(job.config)   # a bad config stops the study before any run
    wd = Workdir(root / job.name)
    done = wd.read_results()
    if done is None:
      todo.append(job)
      continue
    why = train.config_difference(wd.read_config(), job.config.to_dict())
    if why == "extend":
      todo.append(job)
    elif why is None:
      results[job.name] = done
    else:
      raise train.TrainingError(f"{wd.path}: {why}")
  print(f"{len(jobs)} runs: {len(results)} already finished, {len(todo)} to go", flush=True)
  t0 = time.time()
  for n, job in enumerate(todo):
    elapsed = time.time() - t0
    eta = "" if n == 0 else f", ETA {elapsed / n * (len(todo) - n) / 60:.1f} min"
    print(f"[{n + 1}/{len(todo)}] {job.name}{eta}", flush=True)
    results[job.name] = train.train_and_evaluate(job.config, root / job.name)
  return {job.name: results[job.name] for job in jobs}


# `kgax run --tune`: every model gets the same budget, five points around its own values (its
# own point, then each field times each factor), selected on validation with the first seed.
TUNE_FACTORS = {"optim.lr": (1 / 3, 3.0), "optim.l2": (0.1, 10.0)}


def tune_points(config, factors: dict = TUNE_FACTORS) -> list[dict[str, str]]:
  """[{}] (the config's own point) + [{field: value * factor}] for each field and factor."""
  points = [{}]
  for field, scales in factors.items():
    node = config
    for part in field.split("."):
      node = node[part]
    points += [{field: f"{float(node) * f:.3g}"} for f in scales]
  return points


def point_name(point: dict) -> str:
  return ",".join(f"{k}={v}" for k, v in sorted(point.items())) or "default"


def tune(config, points: list[dict], root, seed: int = 0, source: str = "") -> dict:
  """Trains `config` with `seed` at every point (a dict of --config.* overrides) in ROOT/<point>
  (finished points are skipped) and selects the best validation `train.select_metric`; test
  metrics are recorded beside it, never used. Writes ROOT/tune.json and ROOT/tune.md; returns
  {"best": overrides, "best_name": point, "metric": ..., "points": [...]} (and "config":
  `source`, the config file it came from, when given)."""
  root = pathlib.Path(root)
  jobs = []
  for point in points:
    cfg = config_lib.apply_overrides(config.copy_and_resolve_references(), dict(point))
    cfg.seed = int(seed)
    jobs.append(Job(point_name(point), cfg))
  results = run_jobs(jobs, root)
  metric = config.train.select_metric
  rows = [{"overrides": dict(point), "name": job.name,
           "valid": results[job.name]["valid"][metric],
           "test": results[job.name]["test"].get(metric),
           "best_epoch": results[job.name]["best_epoch"],
           "capped": results[job.name].get("capped", False)}
          for point, job in zip(points, jobs)]
  best = max(rows, key=lambda r: r["valid"])
  out = {"seed": int(seed), "metric": metric, "best": best["overrides"],
         "best_name": best["name"], "points": rows, **({"config": source} if source else {})}
  test = lambda v: "-" if v is None else f"{v:.4f}"
  md = (f"Selected on validation {metric} (seed {seed})\n\n"
        f"| point | valid {metric} | test {metric} | best epoch | |\n|---|---|---|---|---|\n"
        + "".join(f"| {r['name']} | {r['valid']:.4f} | {test(r['test'])} | {r['best_epoch']}"
                  f"{'*' if r['capped'] else ''} | {'**selected**' if r is best else ''} |\n"
                  for r in rows))
  (root / "tune.json").write_text(json.dumps(out, indent=2))
  (root / "tune.md").write_text(md)
  return out


def run_protocol(models, dataset: str, seeds, root, overrides: dict | None = None,
                 recipe: str = "", tune_first: bool = False) -> tuple[dict, dict]:
  """`protocol_jobs`'s runs, model by model. With `tune_first` each model is first tuned
  (`tune_points`, seed seeds[0], in ROOT/tune/MODEL/), a model that starts from another from
  that model's selected run; the winner's run becomes ROOT/MODEL-seed{seeds[0]} (a link) and
  the other seeds train with its values. Returns ({run: results}, {model: tune summary})."""
  root = pathlib.Path(root)
  results, tuned = {}, {}
  for model in run_order(models, recipe):
    cfg = protocol_jobs([model], dataset, seeds[:1], root, overrides, recipe)[-1].config
    if tune_first:
      print(f"tuning {model}: {len(tune_points(cfg))} points, seed {seeds[0]}", flush=True)
      tuned[model] = tune(cfg, tune_points(cfg), root / "tune" / model, seeds[0])
      config_lib.apply_overrides(cfg, tuned[model]["best"])
      link = root / f"{model}-seed{seeds[0]}"
      if not link.exists() and not link.is_symlink():
        link.symlink_to(pathlib.Path("tune", model, tuned[model]["best_name"]))
    results.update(run_jobs(seed_jobs(cfg, seeds, model), root))
  return results, tuned


def pretraining(workdir, key: str = "wall_seconds") -> float:
  """results[key] of the run a workdir started from (its start.pretrained), 0 when it started at
  random: that run's wall seconds, or with key="best_epoch" the epoch of the checkpoint it
  started from."""
  workdir = pathlib.Path(workdir)
  config = Workdir(workdir).read_config() or {}
  source = config.get("start", {}).get("pretrained")
  if not source:
    return 0.0
  results = Workdir(source.replace("{seed}", str(config["seed"]))).read_results()
  if results is None:
    raise FileNotFoundError(f"{workdir}: the run it started from, {source}, has no results.json")
  return float(results[key])


def mean_std(values) -> tuple[float, float]:
  v = np.asarray(values, float)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def of_model(results: dict, name: str) -> dict:
  return {k: v for k, v in results.items() if k.rpartition("-seed")[0] == name}


def summarize(results: dict[str, dict], keys=("recall@20", "ndcg@20", "auc")) -> dict:
  """mean ± std over runs of test metrics and of the selection metric; best epochs, wall times,
  whether any run stopped at its epoch cap, and each run's own test figures (`per_run`, so that
  one seed rerun alone can be checked against a recorded study)."""
  out = {}
  for key in keys:
    vals = [r["test"][key] for r in results.values() if key in r["test"]]
    if vals:
      out[key] = mean_std(vals)
  valid = [r["valid"]["recall@20"] for r in results.values() if "recall@20" in r.get("valid", {})]
  if valid:
    out["valid/recall@20"] = mean_std(valid)
  out["best_epochs"] = [r["best_epoch"] for r in results.values()]
  out["wall_seconds"] = [r["wall_seconds"] for r in results.values()]
  out["capped"] = any(r.get("capped", False) for r in results.values())
  out["per_run"] = {name: {key: r["test"][key] for key in keys if key in r["test"]}
                    for name, r in results.items()}
  return out


def fmt(ms: tuple[float, float]) -> str:
  return f"{ms[0]:.4f} ± {ms[1]:.4f}"


def comparison_table(results: dict[str, dict], models) -> str:
  """A markdown table of every model: test recall@20 and ndcg@20 (mean ± std over seeds),
  validation recall@20, best epochs, minutes per run; '(capped)' marks a model any of whose
  runs stopped at its epoch cap rather than by early stopping."""
  rows = ["| model | test recall@20 | test ndcg@20 | valid recall@20 | best epochs | min/run |",
          "|---|---|---|---|---|---|"]
  for model in models:
    s = summarize(of_model(results, model))
    if "recall@20" not in s:
      continue
    cap = " (capped)" if s["capped"] else ""
    rows.append(f"| {model}{cap} | {fmt(s['recall@20'])} | {fmt(s['ndcg@20'])} | "
                f"{s['valid/recall@20'][0]:.4f} | {', '.join(map(str, s['best_epochs']))} | "
                f"{np.mean(s['wall_seconds']) / 60:.1f} |")
  return "\n".join(rows)


def hardware() -> str:
  """Where the runs were summarised: device kind and count, CPU cores, jax version."""
  devices = jax.devices()
  kind = devices[0].platform
  if devices[0].device_kind != kind:
    kind += f" ({devices[0].device_kind})"
  return f"{kind} x{len(devices)}, {os.cpu_count()} CPU cores, jax {jax.__version__}"
