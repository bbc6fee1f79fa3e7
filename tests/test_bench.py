"""experiments/perf (the speed harness) runs end to end and reports consistent figures (no
wall-clock limits), and experiments/diagnostics/plot_curves.py reads workdirs."""

import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments" / "perf"))
sys.path.insert(0, str(REPO / "experiments" / "diagnostics"))
import bench  # noqa: E402


def test_bench_reports_every_figure(tmp_path, capsys):
  out = tmp_path / "b.json"
  res = bench.main([f"--config={REPO / 'configs' / 'test.py'}", "--epochs", "1", "--out", str(out)])
  assert json.loads(out.read_text()) == res
  for key in ("cf_step_seconds", "kg_step_seconds", "epoch_seconds", "eval_seconds",
              "compile_seconds", "peak_rss_bytes"):
    assert res[key] > 0, key
  assert res["epoch_measured"] and res["edges"] > 0 and 0 <= res["test_recall@20"] <= 1
  assert (res["model"], res["variant"], res["batch_size"]) == ("kgat", "kgat", 128)
  # whole calls of equal length, at most steps_per_call (4) steps each, fewer repeats than calls
  calls = -(-res["cf_steps_per_epoch"] // 4)
  assert res["cf_steps_per_epoch"] % calls == 0
  table = capsys.readouterr().out
  assert "| dataset |" in table and res["dataset"] in table


def test_profile_sums_device_time_per_op(tmp_path, capsys):
  """--profile traces a few chunks and attributes the traced time to ops and kinds of op."""
  res = bench.main([f"--config={REPO / 'configs' / 'test.py'}", "--epochs", "0", "--profile", "2",
                    "--trace-dir", str(tmp_path / "trace")])
  prof = res["profile"]
  assert prof["total_ms"] > 0 and prof["ops"]
  assert abs(sum(k["share"] for k in prof["kinds"]) - 1) < 1e-6
  assert sum(o["ms"] for o in prof["ops"]) <= prof["total_ms"] * (1 + 1e-6)
  assert all(o["count"] >= 1 for o in prof["ops"])
  assert "| kind | ms | share |" in capsys.readouterr().out


def _trace(planes):
  """A stand-in for jax.profiler.ProfileData: {plane: {line: [(event, ns, stats)]}}."""
  ns = types.SimpleNamespace
  return ns(planes=[ns(name=p, lines=[ns(name=l, events=[ns(name=e, duration_ns=d, stats=st)
                                                           for e, d, st in evs])
                                      for l, evs in lines.items()])
                    for p, lines in planes.items()])


def test_profile_summary_reads_device_planes():
  """On a GPU trace the "XLA Ops" line is read (not the host's threads, nor the module line);
  without it, the stream lines' kernels; times are summed per op name."""
  ops = [("input_scatter_fusion.1", 4e6, [("long_name", "%s = f32[24] fusion(...)")]),
         ("loop_gather_fusion", 1e6, []), ("input_scatter_fusion.1", 2e6, []),
         ("gemm_fusion_dot.3", 1e6, [])]
  trace = _trace({"/device:GPU:0": {"XLA Ops": ops, "XLA Modules": [("jit_cf", 9e6, [])]},
                  "/host:CPU": {"tf_XLAEigen": [("host_op", 5e6, [])]}})
  prof = bench.profile_summary(trace)
  assert prof["total_ms"] == pytest.approx(8.0)
  top = prof["ops"][0]
  assert (top["name"], top["count"], top["ms"], top["kind"]) == (
      "input_scatter_fusion.1", 2, pytest.approx(6.0), "scatter")
  assert top["text"].startswith("%s = f32[24]")
  assert {k["kind"]: k["ms"] for k in prof["kinds"]} == pytest.approx(
      {"scatter": 6.0, "gather": 1.0, "matmul": 1.0})
  streams = _trace({"/device:GPU:0": {"Stream #1(Compute)": ops[:2], "Stream #2": ops[2:]}})
  assert bench.profile_summary(streams)["total_ms"] == pytest.approx(8.0)


def test_op_kind_reads_the_op_name_and_hlo_text():
  assert bench.op_kind("input_scatter_fusion.3") == "scatter"
  assert bench.op_kind("wrapped_scatter.22") == "scatter"
  assert bench.op_kind("loop_gather_fusion") == "gather"
  assert bench.op_kind("%g = f32[3,4] gather(f32[8,4] %a, s32[3,1] %i)") == "gather"
  assert bench.op_kind("dot.100") == "matmul"
  assert bench.op_kind("input_reduce_fusion.1") == "reduce"
  assert bench.op_kind("multiply_bitcast_fusion.5") == "elementwise / other"
  assert bench.op_kind("%c = f32[8] add(f32[8] %a, f32[8] %b)") == "elementwise / other"


def test_plan_reports_xla_buffers(tmp_path, capsys):
  """--plan compiles without running and reports each function's buffers; the peak adds them up,
  and the donated parameters and optimizer state are reused by the chunk's outputs."""
  out = tmp_path / "p.json"
  res = bench.main([f"--config={REPO / 'configs' / 'test.py'}", "--plan", "--out", str(out)])
  assert json.loads(out.read_text()) == res
  assert set(res["buffers"]) == {"cf_chunk", "kg_chunk", "evaluation_propagation"}
  for name, b in res["buffers"].items():
    assert b["arguments"] > 0 and b["temporaries"] > 0, name
    assert b["peak"] == b["arguments"] + b["outputs"] - b["aliased"] + b["temporaries"]
  assert 0 < res["buffers"]["cf_chunk"]["aliased"] <= res["buffers"]["cf_chunk"]["outputs"]
  assert "| cf_chunk |" in capsys.readouterr().out


def test_plan_scale_compiles_a_graph_it_never_builds(tmp_path):
  """plan_scale.py: per device, the row-sharded tables hold 1 / N of the replicated bytes, the
  split edge arrays fall by about N, and each record's peak adds XLA's buffers up."""
  import plan_scale
  out = tmp_path / "plan"
  records = plan_scale.main(["--graphs", "2e4:2e5", "--devices", "8", "--set",
                             "train.batch_size", "256", "--out", str(out)])
  assert json.loads((tmp_path / "plan.json").read_text())["records"] == records
  by = {r["layout"]: r for r in records}
  assert set(by) == set(plan_scale.LAYOUTS) and all(r["devices"] == 8 for r in records)
  rep, tables, edges = by["replicated"], by["tables"], by["tables+edges"]
  for r in records:
    assert r["peak"] == r["arguments"] + r["outputs"] - r["aliased"] + r["temporaries"] > 0
  # tables: the node table (and its Adam moments) split 8 ways, up to small replicated weights
  assert tables["params"] < rep["params"] / 4 and tables["opt_state"] < rep["opt_state"] / 4
  assert tables["graph"] == rep["graph"] and edges["params"] == tables["params"]
  # the edge arrays (7 of the graph's [E] arrays, 4 bytes each) split 8 ways
  n_edges = -(-200_000 // 1024) * 1024
  assert rep["graph"] - edges["graph"] == pytest.approx(7 * 4 * n_edges * 7 / 8, rel=1e-6)
  assert "| 2e+04 | 2e+05 | 8 | tables+edges | (1, 8) |" in (tmp_path / "plan.md").read_text()


def test_plot_curves_writes_png(tmp_path, capsys):
  import plot_curves
  run = tmp_path / "run"
  run.mkdir()
  rows = [{"epoch": e, "split": "test", "wall": 10.0 * e, "recall@20": 0.1 * e} for e in (1, 2)]
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert plot_curves.read_curve(run, "test", "recall@20", "wall") == ([10.0, 20.0], [0.1, 0.2])
  (run / "config.json").write_text(json.dumps({"seed": 3, "start": {"pretrained": ""}}))
  plot_curves.main([str(run), "--out", str(tmp_path / "c.png")])
  assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
  assert plot_curves.time_to([10.0, 20.0], [0.1, 0.2], 0.15) == 20.0
  assert plot_curves.time_to([10.0, 20.0], [0.1, 0.2], 0.5) is None
  # A run that started from an MF run is charged that run's wall time.
  mf = tmp_path / "mf-seed3"
  mf.mkdir()
  (mf / "results.json").write_text(json.dumps({"wall_seconds": 7.5}))
  (run / "config.json").write_text(json.dumps(
      {"seed": 3, "start": {"pretrained": str(tmp_path / "mf-seed{seed}")}}))
  assert plot_curves.pretraining(run) == 7.5
  plot_curves.main([str(run), "--hline", "0.15", "--out", str(tmp_path / "c.png")])
  assert "pretraining 8 s; test recall@20 0.15 at 28" in capsys.readouterr().out


def test_plot_curves_reports_the_best_validation_epoch(tmp_path, capsys):
  import plot_curves
  run = tmp_path / "run"
  run.mkdir()
  rows = [{"epoch": 1, "cf_loss": 0.5}, {"epoch": 1, "split": "valid", "recall@20": 0.2},
          {"epoch": 1, "split": "test", "recall@20": 0.25},
          {"epoch": 2, "cf_loss": 0.4}, {"epoch": 2, "split": "valid", "recall@20": 0.3},
          {"epoch": 2, "split": "test", "recall@20": 0.31},
          {"epoch": 3, "cf_loss": 0.3}, {"epoch": 3, "split": "valid", "recall@20": 0.3}]
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert plot_curves.best_validation(run, "recall@20") == {
      "epoch": 2, "valid": 0.3, "test": 0.31, "cf_loss": 0.4}   # the first of equal values
  assert (plot_curves.evaluations(run, "recall@20")
          == "1: 0.2000/0.2500 2: 0.3000/0.3100 3: 0.3000/-")
  (run / "config.json").write_text(json.dumps({"seed": 0, "start": {}}))
  plot_curves.main([str(run), "--split", "valid", "--x", "epoch", "--out", str(tmp_path / "v.png")])
  assert "best valid recall@20 0.3000 at epoch 2 (test 0.3100, cf_loss 0.4000)" in \
      capsys.readouterr().out
  (run / "metrics.jsonl").write_text(json.dumps(rows[1]) + "\n")   # no test row, no loss
  assert plot_curves.best_validation(run, "recall@20")["test"] is None


def test_plot_scaling_table_and_png(tmp_path):
  import plot_scaling
  paths = []
  for n, (edges, sec, measured) in enumerate([(2_000_000, 40.0, False), (1_000, 0.5, True)]):
    res = {"dataset": f"d{n}", "device": "cpu", "variant": "kgat_ax", "batch_size": 1024,
           "edges": edges, "epoch_seconds": sec, "epoch_measured": measured}
    paths.append(tmp_path / f"{n}.json")
    paths[-1].write_text(json.dumps(res))
  rows = plot_scaling.main([str(p) for p in paths] + ["--out", str(tmp_path / "s.png")])
  assert [r["edges"] for r in rows] == [1_000, 2_000_000]
  assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
  md = (tmp_path / "s.md").read_text()
  assert "| d1 | cpu | kgat_ax | 1024 | 1,000 | 0.50 | 500.0 |" in md
  assert "40.00 (est.) | 20.0 |" in md
  bad = tmp_path / "bad.json"
  bad.write_text("{}")
  with pytest.raises(SystemExit, match="bad.json: not a bench.py result"):
    plot_scaling.main([str(bad), "--out", str(tmp_path / "x.png")])


def test_bench_eval_times_every_part():
  import bench_eval
  out = bench_eval.main(["--users", "8", "--items", "300", "--dim", "4", "--truth", "3",
                         "--excluded", "5", "--repeat", "1", "--all-users", "20"])
  assert {"score product", "top_k(100)", "auc_from_entries", "sort of the rows",
          "20 users, 1 thread(s)"} <= set(out)
  assert all(v > 0 for v in out.values())


def test_bench_accelerator_script_writes_a_row_per_set(tmp_path):
  """The accelerator command (here on CPU, on the tiny preset) writes each set's JSON and log and
  one markdown table with a row per set; extra arguments reach bench.py."""
  env = dict(os.environ, SETS="tiny:1", PYTHON=sys.executable)
  subprocess.run(["bash", "experiments/perf/bench_accelerator.sh", str(tmp_path), "acc",
                  "--config.train.batch_size=512"], cwd=REPO, env=env, check=True,
                 capture_output=True)
  res = json.loads((tmp_path / "acc-synthetic-tiny-kgat_ax.json").read_text())
  assert res["batch_size"] == 512 and res["epoch_measured"] and res["variant"] == "kgat_ax"
  assert res["layers"] == [64, 32, 16]   # the paper's layer (configs/recipes/paper.py)
  table = (tmp_path / "acc.md").read_text().splitlines()
  assert table[0].startswith("| dataset |") and len(table) == 3
  assert table[2].startswith("| synthetic-tiny |")


def test_bench_header_and_missing_config(capsys):
  assert bench.main(["--header"]) is None
  assert capsys.readouterr().out.strip() == bench.HEADER
  with pytest.raises(SystemExit):
    bench.main(["--epochs", "1"])
