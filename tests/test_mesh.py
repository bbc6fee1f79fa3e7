"""The ("data", "model") mesh on 8 forced CPU devices: every mesh shape trains and evaluates as
one device does, the row tables and their Adam state shrink per device as 1 / model, a
checkpoint written on one mesh restores onto another, and two processes train as one.

The devices are forced in a subprocess (XLA_FLAGS must be set before JAX starts); the
subprocess runs this file as a script.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "test.py")
# (data, model) and whether the edge arrays are split too (train.shard_edges)
MESHES = [((1, 1), False), ((1, 8), False), ((2, 4), False), ((8, 1), False), ((2, 4), True)]
MODELS = {   # name -> (config argument, overrides)
    "kgat_ax": ("model=kgat", {}),
    "kgat": ("model=kgat", {"model.attention": "kgat", "model.fusion": "none",
                            "model.aux_edges": False}),
    "lightgcn": ("model=lightgcn", {}),
}


def _env(devices):
  return dict(os.environ, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _worker(model: str) -> dict:
  """Per mesh: the losses of two chunks of CF steps (and KG steps) from the same start, the
  validation metrics of the parameters they reach, and XLA's per-device argument bytes of the
  compiled CF step (parameters, Adam state, graph, batches)."""
  import jax
  from kgax import config as config_lib, experiment, pipeline, sharding, train
  arg, overrides = MODELS[model]
  cfg = config_lib.load_file(f"{CONFIG}:{arg}")
  for key, value in overrides.items():
    section, field = key.split(".")
    cfg[section][field] = value
  exp = experiment.build(cfg)
  opts = exp.opts
  sample = pipeline.make_sampler(opts, exp.ds, exp.split, exp.graph)
  batches = sample(0)
  valid = exp.evaluator("valid")
  out = {}
  for shape, shard_edges in MESHES:
    mesh = sharding.make_mesh(shape)
    graph, graph_sh = sharding.step_graph(mesh, exp.graph, exp.lib, shard_edges)
    tx_cf, tx_kg = experiment.make_optimizers(opts, sample.steps)
    state = exp.init_state(tx_cf, tx_kg)
    layout = sharding.Layout.for_model(mesh, exp.lib, state.params)
    target = layout.abstract(state)
    state = layout.place(state)
    cf_fn, kg_fn = train.make_step_fns(opts, mesh, sample.steps, layout=layout, state=target,
                                       graph_sharding=graph_sh)
    graph = sharding.place(graph, graph_sh)
    own_heads, edge_share = _own_rows(graph)
    state, cf_loss, kg_loss = train.train_epoch(state, batches, opts=opts, graph=graph,
                                                cf_fn=cf_fn, kg_fn=kg_fn)
    # evaluated as training evaluates: placed parameters, the graph as the step reads it
    metrics = exp.evaluate_fn(trim=layout.trim, graph=graph)(state.params, valid)
    chunk = pipeline.chunks(batches[0], opts.train.steps_per_call)[0]
    zeros = np.zeros((*chunk.shape[:2], 4), np.int32)
    compiled = cf_fn.lower(state.params, state.opt_cf, graph, chunk, zeros,
                           jax.random.key(0)).compile()
    # bytes one device holds of the row tables and their Adam moments
    tables = set(getattr(exp.lib, "ROW_TABLES", ()))
    leaves = jax.tree_util.tree_leaves_with_path((state.params, state.opt_cf))
    table_bytes = sum(x.addressable_shards[0].data.nbytes for path, x in leaves
                      if any(getattr(k, "key", None) in tables for k in path))
    out["x".join(map(str, shape)) + ("+edges" if shard_edges else "")] = {
        "cf_loss": cf_loss, "kg_loss": kg_loss, "metrics": metrics,
        "graph_bytes": sharding.bytes_per_device(graph, graph_sh), "own_heads": own_heads,
        "edge_share": edge_share,
        "argument_bytes": compiled.memory_analysis().argument_size_in_bytes,
        "table_bytes": table_bytes, "padding_rows": {n: layout.padded_rows(n) - r
                                                     for n, r in layout.rows.items()}}
  return out


def _own_rows(graph) -> tuple[bool | None, float | None]:
  """(whether each device's edge blocks hold only heads of its own table rows, the largest
  share of the real edges one device holds, padding included); (None, None) when the edges are
  not cut into blocks."""
  from kgax.graph import Graph
  if isinstance(graph, Graph):
    if graph.blocks is None:
      return None, None
    cuts = [(graph.heads, graph.weights, graph.blocks.rows)]
  else:   # LightGCN's Blocks: by user and by item
    cuts = [(graph.users, graph.user_norm, graph.by_user.rows),
            (graph.items, graph.item_norm, graph.by_item.rows)]
  own, share = True, 0.0
  for heads, weights, rows in cuts:
    n_real = int(np.sum(np.asarray(weights) > 0))
    for shard, w in zip(heads.addressable_shards, weights.addressable_shards):
      b = shard.index[0].start // shard.data.shape[0]
      h = np.asarray(shard.data)[np.asarray(w.data) > 0]
      own &= bool(np.all((h >= b * rows) & (h < (b + 1) * rows)))
      share = max(share, shard.data.shape[0] / n_real)
  return own, share


def _run_worker(model):
  proc = subprocess.run([sys.executable, __file__, "worker", model], capture_output=True,
                        text=True, env=_env(8), timeout=900, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_mesh_trains_as_one_device(model):
  out = _run_worker(model)
  one = out["1x1"]
  for name, got in out.items():
    np.testing.assert_allclose(got["cf_loss"], one["cf_loss"], rtol=1e-5, err_msg=name)
    if one["kg_loss"] is not None:
      np.testing.assert_allclose(got["kg_loss"], one["kg_loss"], rtol=1e-5, err_msg=name)
    for metric, value in one["metrics"].items():
      np.testing.assert_allclose(got["metrics"][metric], value, rtol=1e-4, atol=1e-6,
                                 err_msg=f"{name} {metric}")
  # The row tables and their Adam moments take 1 / model of the bytes per device (up to the
  # zero padding rows), and XLA's accounting of the compiled step's arguments falls by as much.
  tables = one["table_bytes"]
  assert tables > 0
  for name, model_size in (("1x8", 8), ("2x4", 4), ("8x1", 1)):
    got = out[name]
    assert tables / model_size <= got["table_bytes"] <= tables / model_size * 1.5, (name, got)
    saved = one["argument_bytes"] - got["argument_bytes"]
    assert saved >= (tables - got["table_bytes"]) * 0.99, (name, saved, got)
    if model_size == 1:
      assert got["table_bytes"] == tables
  # On a "model" axis the edges are cut at the row tables' shard boundaries: each device holds
  # (and sums) the edges of its own rows, a 1 / model share of them up to the padding of
  # unequal blocks, and far less of the graph than a replica. (8, 1) cuts nothing.
  edges = out["2x4+edges"]
  assert edges["table_bytes"] == out["2x4"]["table_bytes"]
  for name, model_size in (("1x8", 8), ("2x4", 4), ("2x4+edges", 4)):
    assert out[name]["own_heads"] is True, name
    assert out[name]["edge_share"] <= 2.5 / model_size, (name, out[name]["edge_share"])
    assert out[name]["graph_bytes"] < one["graph_bytes"] / 2, name
  assert out["8x1"]["own_heads"] is None and one["own_heads"] is None

EVALUATE_ON_MESHES = """
import json, sys
import jax
from kgax import inference
out = {}
for shape in ((2, 4), (8, 1)):
  run = inference.Run.open(sys.argv[1], "best", mesh=shape)
  node = run.placed["node"]
  metrics = run.evaluate("test")
  metrics["devices"] = run.mesh.size
  metrics["shards"] = len({str(s.index) for s in node.addressable_shards})
  out[str(shape)] = metrics
print(json.dumps(out))
"""


def _train(workdir, devices, mesh, *extra):
  return subprocess.run([sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG,
                         "--workdir", str(workdir), f"--config.train.mesh={mesh}", *extra],
                        capture_output=True, text=True, env=_env(devices), timeout=900,
                        cwd=REPO)


@pytest.mark.slow
def test_checkpoints_restore_onto_another_mesh(tmp_path):
  """A run on a (2, 4) mesh of 8 devices is evaluated on 1 device, the run of 1 device on 8
  devices ((2, 4) and (8, 1) in one process), and a run stopped on 1 device resumes on (1, 8):
  the metrics are those of the uninterrupted run on one device."""
  whole = _train(tmp_path / "one", 1, "(1,1)")
  assert whole.returncode == 0, whole.stderr[-2000:]
  want = json.loads((tmp_path / "one" / "results.json").read_text())

  sharded = _train(tmp_path / "eight", 8, "(2,4)")
  assert sharded.returncode == 0, sharded.stderr[-2000:]
  got = json.loads((tmp_path / "eight" / "results.json").read_text())
  assert got["best_epoch"] == want["best_epoch"]
  for split in ("valid", "test"):
    for k, v in want[split].items():
      assert got[split][k] == pytest.approx(v, rel=1e-4, abs=1e-6), (split, k)
  # kgax evaluate on 1 device reads the 8-device checkpoint
  out = tmp_path / "eval.json"
  proc = subprocess.run([sys.executable, "-m", "kgax.cli", "evaluate", "--workdir",
                         str(tmp_path / "eight"), "--output", str(out)],
                        capture_output=True, text=True, env=_env(1), timeout=900, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  evaluated = json.loads(out.read_text())
  assert evaluated["step"] == got["best_epoch"]
  for k, v in got["test"].items():
    assert evaluated[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k

  # the 1-device checkpoint evaluated on meshes of 8 devices
  proc = subprocess.run([sys.executable, "-c", EVALUATE_ON_MESHES, str(tmp_path / "one")],
                        capture_output=True, text=True, env=_env(8), timeout=900, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  for shape, metrics in json.loads(proc.stdout.strip().splitlines()[-1]).items():
    assert metrics["devices"] == 8 and metrics["shards"] == (4 if shape == "(2, 4)" else 1)
    for k, v in want["test"].items():
      assert metrics[k] == pytest.approx(v, rel=1e-5, abs=1e-7), (shape, k)

  # killed after epoch 2 on 1 device, resumed on (1, 8)
  env = _env(1)
  env["KGAX_KILL_AT"] = "after_latest_save:2"
  killed = subprocess.run([sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG,
                           "--workdir", str(tmp_path / "moved"), "--config.train.mesh=(1,1)"],
                          capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
  assert killed.returncode == -9, killed.stderr[-2000:]
  resumed = _train(tmp_path / "moved", 8, "(1,8)")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming from epoch" in resumed.stdout
  got = json.loads((tmp_path / "moved" / "results.json").read_text())
  assert got["best_epoch"] == want["best_epoch"]
  for k, v in want["test"].items():
    assert got["test"][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


def _free_port() -> int:
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("mesh", ["(2,2)"])   # (-1,1) runs too; one mesh keeps the suite short
def test_two_processes_match_one(mesh, tmp_path):
  """2 processes x 2 devices (localhost coordinator, JAX's CPU collectives) give the
  results.json metrics of 1 process with 4 devices; only process 0 writes metrics and
  results, and on a (2, 2) mesh each process writes its own checkpoint shards."""
  one = _train(tmp_path / "one", 4, mesh)
  assert one.returncode == 0, one.stderr[-2000:]
  want = json.loads((tmp_path / "one" / "results.json").read_text())
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "kgax.cli", "train", "--config", CONFIG, "--workdir",
       str(tmp_path / "two"), f"--config.train.mesh={mesh}", "--config.train.distributed=true",
       f"--config.train.coordinator=localhost:{port}", "--config.train.num_processes=2",
       f"--config.train.process_id={i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, env=_env(2), cwd=REPO) for i in range(2)]
  try:
    outs = [p.communicate(timeout=900) for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-2000:]
  got = json.loads((tmp_path / "two" / "results.json").read_text())
  assert got["best_epoch"] == want["best_epoch"]
  for split in ("valid", "test"):
    for k, v in want[split].items():
      assert got[split][k] == pytest.approx(v, rel=1e-5, abs=1e-6), (split, k)
  rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
  if mesh == "(2,2)":
    best = next((tmp_path / "two" / "checkpoints" / "best").glob("*/default"))
    assert {d.name for d in best.glob("ocdbt.process_*")} == {"ocdbt.process_0",
                                                              "ocdbt.process_1"}


def test_mesh_field_is_checked():
  from kgax import options, sharding
  with pytest.raises(options.ConfigError, match=r"config.train.mesh=\(0, 1\)"):
    options.TrainOptions(mesh=(0, 1))
  with pytest.raises(options.ConfigError, match="config.train.mesh"):
    options.TrainOptions(mesh=(-1, -1))
  with pytest.raises(ValueError, match=r"config.train.mesh=\(3, 1\): does not fit the 4"):
    sharding.mesh_shape((3, 1), 4)
  assert sharding.mesh_shape((-1, 2), 8) == (4, 2)
  assert sharding.mesh_shape((2, -1), 8) == (2, 4)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
  sys.path.insert(0, str(REPO))
  print(json.dumps(_worker(sys.argv[2])))
