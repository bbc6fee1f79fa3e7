"""Sweep throughput: R runs stacked into one vmapped program (kgax.sweep) against the same R runs
trained one after another (kgax.train.train_and_evaluate), end to end.

    python experiments/perf/bench_sweep.py [--dataset ../shared/data/bench/ml-100k-kg] \
        [--models mf lightgcn] [--runs 1 4 8 16] [--epochs 5] [--out docs/bench/sweep-cpu]

Each of the R runs is the model's recommended config (configs/MODEL.py) with its own seed
(0 .. R-1), train.epochs epochs and no early stopping (one validation, at the last epoch). Both
sides are timed from the config to results.json (data, compile, sampling, steps, validation,
checkpoints, final evaluation), in this process, after an untimed one-epoch warm-up of each
path (so neither pays the process's first compiles of shared functions, as a study or a sweep
running many runs in one process does not). Runs per hour = R / wall seconds * 3600.
Besides the walls, the row gives the stacked epoch's seconds, one run's host sampling of an
epoch and one full-ranking evaluation, to show where the time goes. `--sequential-max N` times
only N sequential runs and scales their wall to R (marked "extrapolated"); `--repeats N`
measures both sides N times, interleaved, and keeps the fastest of each; `--width` sets the
sweep's runs per vmap (auto: all on an accelerator, 1 on a CPU; all; N). Writes OUT.json and
OUT.md. The dataset defaults to synthetic-small when the path is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

import jax
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kgax import config as config_lib, experiment, pipeline, sweep, train  # noqa: E402

DEFAULT_DATASET = REPO.parent / "shared" / "data" / "bench" / "ml-100k-kg"


def _config(model: str, dataset: str, epochs: int):
  cfg = config_lib.load_file(f"{REPO / 'configs' / (model + '.py')}:dataset={dataset}")
  cfg.train.epochs = epochs
  cfg.train.eval_every = epochs   # one validation, at the end
  cfg.train.patience = 1000       # no early stopping
  cfg.train.tensorboard = False
  return cfg


def _quiet(fn, *args, **kwargs):
  with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    return fn(*args, **kwargs)


def _epoch_seconds(workdir: pathlib.Path) -> list[float]:
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r["epoch_seconds"] for r in rows if "epoch_seconds" in r]


def _host_costs(cfg) -> dict:
  """Seconds of one run's host sampling of an epoch and of one full-ranking evaluation."""
  exp = experiment.build(cfg)
  sample = pipeline.make_sampler(exp.opts, exp.ds, exp.split, exp.graph)
  sample(0)
  t0 = time.time()
  sample(1)
  t_sample = time.time() - t0
  tx = experiment.make_optimizers(exp.opts, sample.steps)
  params = exp.init_state(*tx).params
  evaluate_fn = exp.evaluate_fn()
  valid = exp.evaluator("valid", experiment.evaluate.RANKING_METRICS)
  evaluate_fn(params, valid)
  t0 = time.time()
  evaluate_fn(params, valid)
  t_eval = time.time() - t0
  return {"sample_seconds": t_sample, "eval_seconds": t_eval}


def _sequential(cfg, runs: int, root: pathlib.Path, sequential_max: int | None) -> dict:
  """The R runs trained one after another: wall (scaled to R when fewer are run), results."""
  n = runs if sequential_max is None else min(runs, sequential_max)
  shutil.rmtree(root, ignore_errors=True)
  t0 = time.time()
  results = {}
  for run in sweep.expand(cfg, list(range(runs)), {})[:n]:
    results[run.name] = _quiet(train.train_and_evaluate, run.config, root / run.name)
  epochs = [s for name in results for s in _epoch_seconds(root / name)[1:]]
  return {"seconds": (time.time() - t0) * runs / n, "extrapolated": n < runs,
          "epoch_seconds": float(np.mean(epochs)) if epochs else float("nan"),
          "results": results}


def _stacked(cfg, runs: int, width, root: pathlib.Path) -> dict:
  shutil.rmtree(root, ignore_errors=True)
  t0 = time.time()
  results = _quiet(sweep.sweep, cfg, list(range(runs)), {}, root, width=width)
  return {"seconds": time.time() - t0, "results": results,
          "epoch_seconds": _epoch_seconds(root / next(iter(results)))}


def bench(cfg, runs: int, width, sw: dict, seq: dict) -> dict:
  """A row: the stacked sweep `sw` of R runs against the sequential measurement `seq`."""
  t_sweep, stacked, epochs = sw["seconds"], sw["results"], sw["epoch_seconds"]
  diff = max(abs(stacked[n]["test"]["recall@20"] - r["test"]["recall@20"])
             for n, r in seq["results"].items())
  return {
      "model": cfg.model.name, "runs": runs, "epochs": cfg.train.epochs,
      "width": sweep.default_width() if width == "auto" else width,
      "sweep_seconds": t_sweep, "sequential_seconds": seq["seconds"],
      "sequential_extrapolated": seq["extrapolated"],
      "sweep_runs_per_hour": runs / t_sweep * 3600,
      "sequential_runs_per_hour": runs / seq["seconds"] * 3600,
      "speedup": seq["seconds"] / t_sweep,
      # the first epoch holds the compile: the means are over the later ones
      "sweep_epoch_seconds": float(np.mean(epochs[1:] or epochs)),
      "sequential_epoch_seconds": seq["epoch_seconds"],
      "sweep_first_epoch_seconds": epochs[0],
      "max_abs_diff_test_recall@20": diff,
      "test_recall@20": float(np.mean([r["test"]["recall@20"] for r in stacked.values()])),
  }


def markdown(report: dict) -> str:
  intro = (
      f"{report['host']}; jax {report['jax']} on {report['backend']}. R runs (seeds 0 .. R-1, no "
      "early stopping) as one stacked `kgax sweep` against the same runs trained one after "
      "another (`kgax train`), each timed end to end in one warmed-up process (data, compile, "
      "steps, validation, checkpoints, final evaluation). Epoch seconds: the mean over the "
      "epochs after the first (which holds the compile); a stacked epoch trains all R runs. "
      "Host costs: one run's sampling of an epoch, one full-ranking validation. Width: runs per "
      "vmap (1: lax.map, the runs one after another inside the one program; all: one jax.vmap "
      "over the R runs). Max diff: the largest |test recall@20| difference between a stacked "
      "run and the same run trained alone.")
  lines = [f"# Sweep throughput: {report['dataset']}, {report['epochs']} epochs per run", "",
           intro, "",
           "| model | R | width | sweep s | sequential s | sweep runs/h | sequential runs/h "
           "| speedup | stacked epoch s | single epoch s | sample s/run/epoch | eval s/run "
           "| max diff |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in report["rows"]:
    seq = f"{r['sequential_seconds']:.1f}" + (" (extrapolated)" if r["sequential_extrapolated"]
                                              else "")
    lines.append(
        f"| {r['model']} | {r['runs']} | {r['width'] or 'all'} | {r['sweep_seconds']:.1f} | "
        f"{seq} | "
        f"{r['sweep_runs_per_hour']:.0f} | {r['sequential_runs_per_hour']:.0f} | "
        f"{r['speedup']:.2f}x | {r['sweep_epoch_seconds']:.2f} | "
        f"{r['sequential_epoch_seconds']:.2f} | {r['sample_seconds']:.3f} | "
        f"{r['eval_seconds']:.3f} | {r['max_abs_diff_test_recall@20']:.1e} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", default=str(DEFAULT_DATASET))
  p.add_argument("--models", nargs="+", default=["mf", "lightgcn"])
  p.add_argument("--runs", type=int, nargs="+", default=[1, 4, 8, 16])
  p.add_argument("--epochs", type=int, default=5)
  p.add_argument("--sequential-max", type=int, default=None,
                 help="time at most this many sequential runs and scale to R")
  p.add_argument("--width", nargs="+", default=["auto"],
                 help="runs per vmap, one sweep each: auto (all on an accelerator, 1 on a CPU), "
                 "all, or N")
  p.add_argument("--repeats", type=int, default=1,
                 help="measure each side this many times, interleaved, and keep the fastest")
  p.add_argument("--out", default=str(REPO / "docs" / "bench" / "sweep-cpu"))
  args = p.parse_args(argv)
  widths = [int(w) if w.isdigit() else {"auto": "auto", "all": None}[w] for w in args.width]
  dataset = args.dataset
  if not pathlib.Path(dataset).exists():
    print(f"{dataset}: not found; using synthetic-small")
    dataset = "synthetic-small"
  report = {"dataset": pathlib.Path(dataset).name, "epochs": args.epochs,
            "host": f"{platform.machine()}, {platform.processor() or platform.system()}, "
                    f"{os.cpu_count()} CPU cores",
            "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": jax.device_count(), "rows": []}
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  for model in args.models:
    cfg = _config(model, dataset, args.epochs)
    costs = _host_costs(cfg)
    with tempfile.TemporaryDirectory() as tmp:   # both paths warm: what one process reuses
      warm = _config(model, dataset, 1)
      warm.seed = 1000
      _quiet(train.train_and_evaluate, warm, pathlib.Path(tmp) / "single")
      for w, width in zip(args.width, widths):
        _quiet(sweep.sweep, warm, [1000], {}, pathlib.Path(tmp) / f"sweep-{w}", width=width)
    for runs in args.runs:
      with tempfile.TemporaryDirectory() as tmp:
        seqs, sweeps = [], {w: [] for w in args.width}
        for _ in range(args.repeats):   # interleaved: a load change touches both sides
          seqs.append(_sequential(cfg, runs, pathlib.Path(tmp) / "single", args.sequential_max))
          for w, width in zip(args.width, widths):
            sweeps[w].append(_stacked(cfg, runs, width, pathlib.Path(tmp) / f"sweep-{w}"))
        seq = min(seqs, key=lambda m: m["seconds"])
        for w, width in zip(args.width, widths):
          sw = min(sweeps[w], key=lambda m: m["seconds"])
          row = {**bench(cfg, runs, width, sw, seq), **costs, "repeats": args.repeats}
          report["rows"].append(row)
          print(f"{model} R={runs} width={w}: sweep {row['sweep_seconds']:.1f}s, sequential "
                f"{row['sequential_seconds']:.1f}s, speedup {row['speedup']:.2f}x", flush=True)
          out.with_suffix(".json").write_text(json.dumps(report, indent=2))
          out.with_suffix(".md").write_text(markdown(report))
  print(markdown(report))


if __name__ == "__main__":
  main()
