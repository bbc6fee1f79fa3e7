"""Metric curves of finished or running workdirs, from their metrics.jsonl, as one PNG.

    python experiments/diagnostics/plot_curves.py runs/a runs/b --split test --metric recall@20 --x wall \
        --out docs/results/curves.png [--labels A B]

Test-split rows exist when the run logged them (`--config.train.log_test=true`; reporting only,
never used for selection). For each workdir it also prints the evaluation with the best
validation metric, with the test value and CF loss of that epoch (runs stopped by hand have no
results.json), and with --evals every evaluation's validation and test values.
"""

import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kgax import study  # noqa: E402


def _rows(workdir) -> list[dict]:
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").open()]


def read_curve(workdir, split: str, metric: str, x: str):
  rows = [r for r in _rows(workdir) if r.get("split") == split and metric in r]
  return [r[x] for r in rows], [r[metric] for r in rows]


def best_validation(workdir, metric: str) -> dict | None:
  """The evaluation with the highest validation `metric` (the first, on ties): its epoch, that
  value, the test value at the same epoch (when logged) and the epoch's CF loss; None without
  validation rows. For runs stopped by hand, which have no results.json."""
  rows = _rows(workdir)
  valid = [r for r in rows if r.get("split") == "valid" and metric in r]
  if not valid:
    return None
  best = max(valid, key=lambda r: r[metric])   # max keeps the first of equal values
  same = lambda pred: next((r for r in rows if r.get("epoch") == best["epoch"] and pred(r)), {})
  return {"epoch": best["epoch"], "valid": best[metric],
          "test": same(lambda r: r.get("split") == "test").get(metric),
          "cf_loss": same(lambda r: "cf_loss" in r).get("cf_loss")}


def evaluations(workdir, metric: str) -> str:
  """Every evaluation of a run on one line, "epoch: valid/test" (test "-" where not logged)."""
  rows = _rows(workdir)
  by_epoch = {}
  for r in rows:
    if r.get("split") in ("valid", "test") and metric in r:
      by_epoch.setdefault(r["epoch"], {})[r["split"]] = r[metric]
  fmt = lambda v: "-" if v is None else f"{v:.4f}"
  return " ".join(f"{e}: {fmt(v.get('valid'))}/{fmt(v.get('test'))}"
                  for e, v in sorted(by_epoch.items()))


def pretraining(workdir) -> float:
  """Wall seconds of the run a run started from (config.start.pretrained), else 0."""
  try:
    return study.pretraining(workdir)
  except FileNotFoundError as e:
    raise SystemExit(str(e)) from None


def time_to(xs, ys, level: float):
  """The first x at which y >= level (None if never)."""
  return next((x for x, y in zip(xs, ys) if y >= level), None)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("workdirs", nargs="+")
  p.add_argument("--labels", nargs="*")
  p.add_argument("--split", default="test", choices=("test", "valid"))
  p.add_argument("--metric", default="recall@20")
  p.add_argument("--x", default="wall", choices=("wall", "epoch"))
  p.add_argument("--hline", type=float, nargs="*", default=[], help="reference levels")
  p.add_argument("--no-pretraining-time", action="store_true",
                 help="with --x wall, do not add the wall time of the run a run started from")
  p.add_argument("--evals", action="store_true",
                 help="also print every evaluation of each run: epoch: valid/test")
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  labels = args.labels or [pathlib.Path(w).name for w in args.workdirs]
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for workdir, label in zip(args.workdirs, labels):
    xs, ys = read_curve(workdir, args.split, args.metric, args.x)
    if not xs:
      raise SystemExit(f"{workdir}: no {args.split} rows with {args.metric} in metrics.jsonl")
    offset = 0.0
    if args.x == "wall" and not args.no_pretraining_time:
      offset = pretraining(workdir)
      xs = [x + offset for x in xs]
    ax.plot(xs, ys, marker="o", ms=3, label=label)
    reached = ", ".join(f"{level} at {t:.0f}" if (t := time_to(xs, ys, level)) is not None
                        else f"{level} never" for level in args.hline)
    print(f"{label}: pretraining {offset:.0f} s" + (f"; {args.split} {args.metric} {reached}"
                                                  if reached else ""))
    if (best := best_validation(workdir, args.metric)) is not None:
      fmt = lambda v: "-" if v is None else f"{v:.4f}"
      print(f"{label}: best valid {args.metric} {best['valid']:.4f} at epoch {best['epoch']} "
            f"(test {fmt(best['test'])}, cf_loss {fmt(best['cf_loss'])})")
    if args.evals:
      print(f"{label}: {args.metric} per evaluation (valid/test) "
            f"{evaluations(workdir, args.metric)}")
  for level in args.hline:
    ax.axhline(level, color="gray", ls="--", lw=0.8)
  ax.set_xlabel("wall seconds" if args.x == "wall" else "epoch")
  ax.set_ylabel(f"{args.split} {args.metric}")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=120)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
