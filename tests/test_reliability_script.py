"""experiments/diagnostics/reliability.py --quick: it runs, prints a line per case, and its
tallies agree with its cases (the full run's numbers are in docs/reliability.md)."""

import json
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "diagnostics" / "reliability.py"


@pytest.mark.slow
def test_quick_run_reports_consistent_tallies(tmp_path):
  out = tmp_path / "tally.json"
  proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                        capture_output=True, text=True, cwd=REPO, timeout=600)
  assert proc.returncode in (0, 1), proc.stderr[-2000:]
  tally = json.loads(out.read_text())
  kills, inputs = tally["kills"], tally["inputs"]

  # a progress line per case, and the summary lines agree with the file
  assert len(re.findall(r"^\[kill \d+/\d+\] ", proc.stdout, re.M)) == len(kills["cases"]) == 2
  assert len(re.findall(r"^\[input \d+/\d+\] ", proc.stdout, re.M)) == len(inputs["cases"]) == 5
  assert f"kills: {kills['tried']} tried, {kills['identical']} identical" in proc.stdout
  assert f"bad inputs: {inputs['tried']} tried, {inputs['passed']} as expected" in proc.stdout

  # kills: every case is tried or counted as not killed; failures are listed
  killed = [c for c in kills["cases"] if c["killed"] or c["identical"] is False]
  assert kills["tried"] == len(killed) and kills["tried"] + kills["not_killed"] == 2
  assert kills["identical"] == sum(c["identical"] is True for c in killed)
  assert len(kills["failing"]) == kills["tried"] - kills["identical"]
  assert kills["cases"][0]["killed"]   # the deterministic point is reached

  # inputs: passed splits into clean and ok; every failure comes with its output
  tried = [r for r in inputs["cases"] if not r.get("skipped")]
  assert inputs["tried"] == len(tried) and len(inputs["skipped"]) == 5 - len(tried)
  assert inputs["passed"] == inputs["clean"] + inputs["ok"] == sum(r["passed"] for r in tried)
  assert inputs["clean_expected"] + inputs["ok_expected"] == inputs["tried"]
  assert len(inputs["failing"]) == inputs["tried"] - inputs["passed"]
  assert all(r["problems"] and "stderr" in r for r in inputs["failing"])
  assert proc.returncode == (1 if inputs["failing"] or kills["failing"] else 0)

  # the quick cases are ones kgax handles: this is also a small regression check
  assert kills["identical"] == kills["tried"], kills["failing"]
  assert inputs["passed"] == inputs["tried"], inputs["failing"]
  assert tally["command"].startswith("python experiments/diagnostics/reliability.py --quick")
  assert "kgax-reliability-" not in out.read_text()   # temporary paths are written as $TMP
