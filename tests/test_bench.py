"""The speed harness runs end to end and reports consistent figures (no wall-clock limits)."""

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
import bench  # noqa: E402


def test_bench_reports_every_figure(tmp_path, capsys):
  out = tmp_path / "b.json"
  res = bench.main([f"--config={REPO / 'configs' / 'test.py'}", "--epochs", "1", "--out", str(out)])
  assert json.loads(out.read_text()) == res
  for key in ("cf_step_seconds", "kg_step_seconds", "epoch_seconds", "eval_seconds",
              "compile_seconds", "peak_rss_bytes"):
    assert res[key] > 0, key
  assert res["epoch_measured"] and res["edges"] > 0 and 0 <= res["test_recall@20"] <= 1
  assert res["cf_steps_per_epoch"] % 4 == 0   # whole calls of steps_per_call steps
  table = capsys.readouterr().out
  assert "| dataset |" in table and res["dataset"] in table
