"""Epoch time against graph size, from bench.py JSON files, as a PNG (log-log) and a markdown table.

    python experiments/perf/plot_scaling.py docs/bench/cpu-*.json --out docs/bench/scaling-cpu.png

One line per (device, variant, batch size); x = CKG edges, y = seconds per training epoch
(estimated epochs, from step times, are drawn hollow).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(paths) -> list[dict]:
  rows = []
  for path in paths:
    res = json.loads(pathlib.Path(path).read_text())
    for field in ("edges", "epoch_seconds", "device"):
      if field not in res:
        raise SystemExit(f"{path}: not a bench.py result (no {field!r})")
    rows.append(res)
  return sorted(rows, key=lambda r: r["edges"])


def series_key(res: dict) -> str:
  return f"{res['device']} {res.get('variant') or res.get('model')} b{res.get('batch_size')}"


def plot(rows: list[dict], out: pathlib.Path) -> None:
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for key in dict.fromkeys(series_key(r) for r in rows):
    part = [r for r in rows if series_key(r) == key]
    line, = ax.plot([r["edges"] for r in part], [r["epoch_seconds"] for r in part], label=key)
    for r in part:
      ax.plot(r["edges"], r["epoch_seconds"], "o", color=line.get_color(),
              mfc=line.get_color() if r.get("epoch_measured", True) else "none")
      ax.annotate(r["dataset"], (r["edges"], r["epoch_seconds"]), fontsize=7,
                  xytext=(4, -10), textcoords="offset points")
  ax.set(xscale="log", yscale="log", xlabel="CKG edges", ylabel="seconds per epoch")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)
  fig.tight_layout()
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=120)
  plt.close(fig)


def table(rows: list[dict]) -> str:
  lines = ["| dataset | device | variant | batch | CKG edges | epoch s | s per M edges |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    est = "" if r.get("epoch_measured", True) else " (est.)"
    lines.append(f"| {r['dataset']} | {r['device']} | {r.get('variant') or r.get('model')} | "
                 f"{r.get('batch_size')} | {r['edges']:,} | {r['epoch_seconds']:.2f}{est} | "
                 f"{r['epoch_seconds'] / (r['edges'] / 1e6):.1f} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("results", nargs="+", help="bench.py JSON files")
  p.add_argument("--out", required=True, help="PNG path (a .md table is written beside it)")
  args = p.parse_args(argv)
  rows = load(args.results)
  out = pathlib.Path(args.out)
  plot(rows, out)
  md = table(rows)
  out.with_suffix(".md").write_text(md)
  print(md)
  return rows


if __name__ == "__main__":
  main()
