"""Where does the KG help? The controls of controls.py at several training densities: each user
keeps a seeded fraction of its training pairs (data.train_fraction; the others are dropped),
validation and test stay those of the full split, and every model and control of one density
trains on the same thinned pairs (a model that starts from another starts from that model's run
at the same density: a start from denser data is refused).

    python experiments/studies/sparsity.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/sparsity --fractions 1 0.5 0.2 \
        --out docs/results/sparsity-ml-100k-kg [--models kgat_ax] \
        [--controls full none shuffled] [--recipe configs/recipes/NAME.py] [--tuned runs/tune]

The runs of fraction F go to ROOT/fF (ROOT/f1 holds those of the full data, as controls.py's
ROOT would); finished runs are skipped, and the outputs are rewritten after each fraction, so the
study can be stopped and restarted. The table gives, per fraction, each model's test recall@20
under every control (mean ± std over seeds) and the paired differences full - control seed by
seed (mean ± std), and the model it starts from (LightGCN in the recommended protocol) beside it;
OUT.png plots them against the fraction. A KG that helps where interactions are scarce shows as
a full - none gap, and a full - shuffled gap, that widen as the fraction falls.
"""

from __future__ import annotations

import copy
import pathlib

import numpy as np

import common
import controls
from kgax import options, study
from kgax.data import load


def fraction_name(fraction: float) -> str:
  """1.0 -> "f1", 0.5 -> "f0.5": the runs' folder below the study root."""
  return f"f{fraction:g}"


def paired(full: dict, other: dict, key: str = "recall@20") -> tuple[float, float]:
  """mean ± std over seeds of full - other, seed by seed ({name-seedS: results} each)."""
  seed = lambda name: name.rpartition("-seed")[2]
  a = {seed(k): v["test"][key] for k, v in full.items()}
  b = {seed(k): v["test"][key] for k, v in other.items()}
  if sorted(a) != sorted(b):
    raise ValueError(f"unpaired seeds: {sorted(a)} against {sorted(b)}")
  return study.mean_std([a[s] - b[s] for s in sorted(a)])


def main(argv=None):
  def extra(p):
    p.add_argument("--fractions", nargs="+", type=float, default=[1.0, 0.5, 0.2],
                   help="data.train_fraction values, each in (0, 1]")
    p.add_argument("--models", nargs="+", default=["kgat_ax"], choices=tuple(study.MODELS))
    p.add_argument("--controls", nargs="+", default=["full", "none", "shuffled"],
                   choices=tuple(controls.CONTROLS))
  args, overrides = common.study_args(__doc__, argv, default_root="runs/sparsity", extra=extra)
  if "full" not in args.controls:
    args.controls = ["full", *args.controls]
  for f in args.fractions:   # a bad fraction stops the study before any run
    try:
      options.DataOptions(train_fraction=f)
    except options.ConfigError as e:
      raise SystemExit(f"sparsity.py: --fractions: {e}") from None
  per_fraction = {}
  for f in args.fractions:
    sub = copy.copy(args)
    sub.root = str(pathlib.Path(args.root) / fraction_name(f))
    todo = controls.check_configs(
        controls.jobs(sub, {**overrides, "data.train_fraction": str(f)}), "sparsity.py")
    per_fraction[f] = (todo, sub.root)
  data = {"dataset": args.dataset, "seeds": args.seeds, "recipe": args.recipe,
          "fractions": {}}
  for f, (todo, root) in per_fraction.items():   # the outputs grow with each fraction done
    print(f"== data.train_fraction={f:g}: {root}", flush=True)
    results = study.run_jobs(todo, root)
    ds, split = load.load_split(options.parse(todo[0].config).data)
    untrained = ds.n_items - len(np.unique(split.train[:, 1]))
    data["fractions"][fraction_name(f)] = summarize(args, results, f, len(split.train), untrained)
    common.write_outputs(args.out, table(args, data), data)
    plot(args, data, common.output_path(args.out, ".png"))
  return data


def summarize(args, results: dict, fraction: float, n_train: int, untrained: int) -> dict:
  """One fraction's figures: its training pairs and the items left without one; per model and
  control the summary and the paired difference full - control; per source model (the run a
  model starts from) its summary and model - source, paired."""
  out = {"train_fraction": fraction, "train_pairs": n_train, "items_without_train": untrained,
         "models": {}, "sources": {}}
  for model in args.models:
    full = study.of_model(results, model)
    entry = out["models"][model] = {}
    for control in args.controls:
      runs = study.of_model(results, model if control == "full" else f"{control}-{model}")
      entry[control] = study.summarize(runs)
      if control != "full":
        entry[control]["full - control"] = paired(full, runs)
    source = study.starts_from(model, recipe=args.recipe)
    if source:
      src = study.of_model(results, source)
      out["sources"][source] = study.summarize(src)
      entry["full"][f"full - {source}"] = paired(full, src)
  return out


def table(args, data: dict) -> str:
  rows = []
  for name, per in data["fractions"].items():
    head = (f"{per['train_fraction']:g} ({per['train_pairs']:,}; "
            f"{per['items_without_train']:,})")
    for model, entry in per["models"].items():
      cells = []
      for control in args.controls:
        s = entry[control]
        cap = "*" if s["capped"] else ""
        cell = f"{study.fmt(s['recall@20'])}{cap}"
        if control != "full":
          cell += f" ({study.fmt(s['full - control'])})"
        cells.append(cell)
      source = study.starts_from(model, recipe=args.recipe)
      if source:
        s = per["sources"][source]
        cells.append(f"{study.fmt(s['recall@20'])}{'*' if s['capped'] else ''} "
                     f"({study.fmt(entry['full'][f'full - {source}'])})")
      rows.append(f"| {head} | {model} | " + " | ".join(cells) + " |")
  sources = sorted({s for per in data["fractions"].values() for s in per["sources"]})
  header = ["training pairs kept (pairs; items without one)", "model", *args.controls,
            *([f"the run it starts from ({', '.join(sources)})"] if sources else [])]
  return (f"Sparsity on {args.dataset} (test recall@20, mean ± std over seeds {args.seeds}; each "
          "user keeps the fraction of its training pairs, validation and test unchanged)\n\n"
          "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "\n".join(rows)
          + "\n\nIn brackets: full - that column, paired by seed (mean ± std). `*`: a run stopped "
          "at its epoch cap.\n")


def plot(args, data: dict, path: pathlib.Path):
  """Against the fraction of training pairs kept: test recall@20 (mean ± std) of every model and
  control and of each source model (left), and the paired differences full - control and
  full - source (right)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  per = sorted(data["fractions"].values(), key=lambda p: p["train_fraction"])
  x = np.array([p["train_fraction"] for p in per])
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
  lines, gaps = {}, {}
  for m in args.models:
    for c in args.controls:
      lines[f"{m}, {c}"] = [p["models"][m][c]["recall@20"] for p in per]
      if c != "full":
        gaps[f"{m}: full - {c}"] = [p["models"][m][c]["full - control"] for p in per]
    source = study.starts_from(m, recipe=args.recipe)
    if source:
      gaps[f"{m}: full - {source}"] = [p["models"][m]["full"][f"full - {source}"] for p in per]
  for source in sorted({s for p in per for s in p["sources"]}):
    lines[source] = [p["sources"][source]["recall@20"] for p in per]
  for ax, series, label in ((left, lines, "test recall@20"),
                            (right, gaps, "paired difference of test recall@20")):
    for name, values in series.items():
      mean, std = np.array(values).T
      ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel("fraction of each user's training pairs kept")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
  right.axhline(0.0, color="grey", lw=0.8)
  fig.suptitle(pathlib.Path(args.dataset).name)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


if __name__ == "__main__":
  main()
