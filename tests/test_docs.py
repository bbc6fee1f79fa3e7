"""The results page and the README state no mean ± std that the studies did not record: each
one is in a study output under docs/results/ (its JSON [mean, std] or its table) or in the
notebook that the page cites for it."""

import json
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"\d\.\d{4} ± \d\.\d{4}")


def _recorded() -> str:
  pairs = []
  def walk(x):
    if isinstance(x, list) and len(x) == 2 and all(isinstance(v, (int, float)) for v in x):
      pairs.append(f"{x[0]:.4f} ± {x[1]:.4f}")
    for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ()):
      walk(v)
  results = REPO / "docs" / "results"
  for path in sorted(results.glob("*.json")):
    walk(json.loads(path.read_text()))
  tables = [p.read_text() for p in sorted(results.glob("*.md"))]
  return "\n".join(pairs + tables + [(REPO / "docs" / "notebook" / "results.md").read_text()])


def test_every_mean_and_std_on_the_results_page_and_readme_is_recorded():
  recorded = _recorded()
  for doc in ("docs/results.md", "docs/kg-uptake.md", "README.md"):
    figures = FIGURE.findall((REPO / doc).read_text())
    assert figures, doc
    missing = [f for f in figures if f not in recorded]
    assert not missing, f"{doc}: not in docs/results/ or the notebook: {missing}"
