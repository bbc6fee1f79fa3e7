"""Hyperparameter selection on validation: one run per point of a grid, the best by validation.

    python experiments/studies/tune.py --config configs/mf.py:dataset=DIR --root runs/tune/mf \
        [--grid optim.l2=1e-5,1e-3,1e-2] [--grid optim.lr=1e-3,5e-3] [--seed 0] [--config.k=v ...]

Without --grid the config file's sweep(add) is the grid; several --grid options make a product.
Each point trains in ROOT/<point> (finished points are skipped, so the script can be restarted).
The winner is the point with the best validation `config.train.select_metric`; test metrics are
shown next to it but never used. Writes ROOT/tune.json ({"best": {field: value}, "points": [...]})
and ROOT/tune.md; the study scripts apply the winner with --tuned (see common.py).
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import sys

from kgax import config as config_lib, study


def _split_values(values: str) -> list[str]:
  """"1,(64,32),x" -> ["1", "(64,32)", "x"]: commas inside brackets belong to the value."""
  out, depth, start = [], 0, 0
  for k, ch in enumerate(values):
    depth += (ch in "([") - (ch in ")]")
    if ch == "," and depth == 0:
      out.append(values[start:k])
      start = k + 1
  out.append(values[start:])
  return out


def parse_grid(specs: list[str]) -> list[dict]:
  """["a.b=1,2", "c=x"] -> [{"a.b": "1", "c": "x"}, {"a.b": "2", "c": "x"}]; a tuple value
  keeps its commas: "model.layers=(64,),(64,32)" has two points."""
  axes = []
  for spec in specs:
    key, eq, values = spec.partition("=")
    parts = _split_values(values)
    if not eq or not key or not values or not all(parts):
      raise SystemExit(f"--grid {spec!r}: expected FIELD=V1,V2,...")
    axes.append([(key, v) for v in parts])
  return [dict(point) for point in itertools.product(*axes)]


def tune(config_spec: str, grid: list[dict], root, seed: int = 0, overrides=None) -> dict:
  base = config_lib.apply_overrides(config_lib.load_file(config_spec), overrides or {})
  out = study.tune(base, grid, root, seed, source=config_spec)
  print(f"Tuning {config_spec}: " + (pathlib.Path(root) / "tune.md").read_text())
  return out


def main(argv=None):
  overrides, rest = config_lib.split_overrides(list(sys.argv[1:] if argv is None else argv))
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", required=True)
  p.add_argument("--root", required=True)
  p.add_argument("--grid", action="append", default=[], help="FIELD=V1,V2,... (repeatable)")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(rest)
  grid = parse_grid(args.grid) if args.grid else config_lib.load_sweep(args.config)
  return tune(args.config, grid, args.root, args.seed, overrides)


if __name__ == "__main__":
  main()
