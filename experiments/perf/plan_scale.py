"""Memory plan for a graph too large to build here: compile only, no data.

    python experiments/perf/plan_scale.py --graphs 1e6:1e7 1e7:1e8 3e7:3e8 1e8:1e9 \
        --devices 64 256 [--config configs/kgat_ax.py] [--out docs/bench/plan-scale]

For each device count N (a virtual mesh of N forced host devices, one subprocess each) and each
graph NODES:EDGES, builds the shapes of a synthetic CKG (no arrays: jax.ShapeDtypeStruct only)
and compiles the CF step of the config's model, as `kgax train` jits it
(kgax.train.make_step_fns), on several layouts of the mesh:

  replicated   mesh (N, 1): every table and edge array on every device (data parallelism)
  tables       mesh (1, N): node table and Adam moments row-sharded over N devices (train.mesh);
               edge arrays replicated: what kgax trains with today
  tables+edges mesh (1, N) and train.shard_edges: the edge arrays also split over the N
               devices evenly (GSPMD places the gathers and segment sums)
  head blocks  mesh (1, N), what `kgax train` does on a "model" axis: the edges cut at the node
               table's shard boundaries (kgax/graph.py partition_by_head), each device summing
               the edges of its own rows (blocks taken as equal: the best case)

Per device it reports the bytes of the parameters, the optimizer state, the graph arrays and the
batch (from the shardings) and XLA's temporaries and peak (its memory analysis of the compiled
program: arguments + outputs - aliased + temporaries), against the HBM of one H100 (80 GB) and
one TPU v5e chip (16 GB). The compiler is the CPU backend's: a GPU or TPU compiler fuses
differently, so the temporaries are an estimate. Writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
HBM = {"H100 (80 GB)": 80e9, "TPU v5e (16 GB)": 16e9}
LAYOUTS = ("replicated", "tables", "tables+edges", "head blocks")


def abstract_graph(n_nodes: int, n_edges: int, *, n_kg_relations: int, n_aux_relations: int,
                   users: float, items: float, aux: float, pair_fraction: float):
  """A kgax.graph.Graph of ShapeDtypeStructs: n_nodes nodes (users, items and other entities,
  aux nodes in the given fractions, and the sink) and n_edges edges (padded to a multiple of
  1024, as kgax.graph pads them) spread evenly over the relations (both directions);
  pair_fraction of the edges are distinct (head, relation) pairs; one aux fact per 10 nodes."""
  import jax
  import numpy as np
  from kgax.graph import Graph
  i32 = lambda n: jax.ShapeDtypeStruct((int(n),), np.int32)
  f32 = lambda n: jax.ShapeDtypeStruct((int(n),), np.float32)
  n_edges = -(-n_edges // 1024) * 1024   # padded as kgax.graph pads them
  n_users, n_items, n_aux = int(n_nodes * users), int(n_nodes * items), int(n_nodes * aux)
  n_entities = n_nodes - 1 - n_users - n_aux
  n_rel = 2 * (1 + n_kg_relations + n_aux_relations)
  sizes = [n_edges // n_rel] * n_rel
  sizes[0] += n_edges - sum(sizes)
  n_pairs = int(n_edges * pair_fraction)
  pair_sizes = [n_pairs // n_rel] * n_rel
  pair_sizes[0] += n_pairs - sum(pair_sizes)
  n_facts = n_nodes // 10 if n_aux_relations else 0
  n_owners = max(n_facts // 4, 1)
  return Graph(heads=i32(n_edges), relations=i32(n_edges), tails=i32(n_edges),
               weights=f32(n_edges), aux_owners=i32(n_owners), aux_owner_index=i32(n_facts),
               aux_node=i32(n_facts), aux_weight=f32(n_facts), relation_order=i32(n_edges),
               tail_order=i32(n_edges), head_pair_nodes=i32(n_pairs),
               head_pair_index=i32(n_edges), head_pair_sizes=tuple(pair_sizes),
               relation_sizes=tuple(sizes), n_items=n_items, n_entities=n_entities,
               n_users=n_users, n_aux=n_aux, n_kg_relations=n_kg_relations,
               n_aux_relations=n_aux_relations, n_real_edges=n_edges)


def head_blocks(graph, mesh):
  """The abstract `graph` cut into equal HeadBlocks over the mesh's "model" axis (each block
  ceil(E / n) edges, padded to a multiple of 128)."""
  import jax
  from kgax.graph import HeadBlocks
  n = mesh.shape["model"]
  per_block = -(-graph.n_edges // (n * 128)) * 128
  edge = lambda x: (jax.ShapeDtypeStruct((n * per_block,), x.dtype)
                    if x.shape == (graph.n_edges,) else x)
  return jax.tree.map(edge, graph).replace(
      blocks=HeadBlocks(mesh, "model", -(-graph.n_nodes // n)))


def plan_one(args) -> list[dict]:
  """Runs in a process with forced host devices: one record per graph and layout."""
  return [r for nodes, edges in args.graphs for r in _plan_graph(args, nodes, edges)]


def _plan_graph(args, nodes: float, edges: float) -> list[dict]:
  import jax
  import numpy as np
  from kgax import config as config_lib, experiment, options, sharding, train
  n = jax.device_count()
  cfg = config_lib.load_file(args.config)
  config_lib.apply_overrides(cfg, dict(args.overrides))
  opts = options.parse(cfg)
  m = opts.model
  graph = abstract_graph(int(nodes), int(edges), n_kg_relations=args.kg_relations,
                         n_aux_relations=args.aux_relations if m.fusion != "none" else 0,
                         users=args.users, items=args.items, aux=args.aux,
                         pair_fraction=args.pair_fraction)
  lib = opts.model_lib
  tx_cf, tx_kg = experiment.make_optimizers(opts)
  params = jax.eval_shape(lambda: lib.init(jax.random.key(0), m, graph))
  state = jax.eval_shape(lambda p: experiment.TrainState(
      params=p, opt_cf=tx_cf.init(p), opt_kg=tx_kg.init(p), epoch=np.int32(0),
      best=np.float32(0), best_epoch=np.int32(0), bad_evals=np.int32(0)), params)
  spc, batch = opts.train.steps_per_call, opts.train.batch_size
  out = []
  for name in LAYOUTS:
    shape = (n, 1) if name == "replicated" else (1, n)
    mesh = sharding.make_mesh(shape)
    layout = sharding.Layout.for_model(mesh, lib, params)
    target = layout.abstract(state)
    g = graph
    if name == "head blocks":
      g = head_blocks(graph, mesh)
    g_sh = sharding.graph_shardings(mesh, g, shard_edges=name == "tables+edges")
    g = jax.tree.map(lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh),
                     g, g_sh)
    cf_fn, _ = train.make_step_fns(opts, mesh, layout=layout, state=target,
                                   graph_sharding=g_sh)
    data = sharding.batch_sharded(mesh, axis=1)
    cf = jax.ShapeDtypeStruct((spc, batch, 3), np.int32, sharding=data)
    kg = jax.ShapeDtypeStruct((spc, batch, 4), np.int32, sharding=data)
    key = jax.eval_shape(lambda: jax.random.key(0))
    t0 = time.time()
    stats = cf_fn.lower(target.params, target.opt_cf, g, cf, kg, key).compile().memory_analysis()
    seconds = time.time() - t0
    p_sh = layout.shardings(target.params)
    o_sh = layout.shardings(target.opt_cf)
    rec = {"nodes": nodes, "edges": edges, "devices": n, "mesh": list(mesh.devices.shape),
           "layout": name,
           "params": sharding.bytes_per_device(target.params, p_sh),
           "opt_state": sharding.bytes_per_device(target.opt_cf, o_sh),
           "graph": sharding.bytes_per_device(g, g_sh),
           "batch": 2 * spc * batch * 4 * 4 // mesh.shape["data"],
           "arguments": int(stats.argument_size_in_bytes),
           "outputs": int(stats.output_size_in_bytes),
           "aliased": int(stats.alias_size_in_bytes),
           "temporaries": int(stats.temp_size_in_bytes), "compile_seconds": seconds}
    rec["peak"] = rec["arguments"] + rec["outputs"] - rec["aliased"] + rec["temporaries"]
    out.append(rec)
    print(json.dumps(rec), flush=True)
  return out


def table(records: list[dict]) -> str:
  gb = lambda b: f"{b / 1e9:,.1f}"
  head = ("| nodes | edges | devices | layout | mesh | params GB | Adam GB | graph GB | "
          "temporaries GB | peak GB | " + " | ".join(f"fits {k}" for k in HBM) + " |")
  rows = [head, "|" + "---|" * (10 + len(HBM))]
  for r in records:
    fits = " | ".join("yes" if r["peak"] <= v else "no" for v in HBM.values())
    rows.append(f"| {r['nodes']:.0e} | {r['edges']:.0e} | {r['devices']} | {r['layout']} | "
                f"{tuple(r['mesh'])} | {gb(r['params'])} | {gb(r['opt_state'])} | "
                f"{gb(r['graph'])} | {gb(r['temporaries'])} | {gb(r['peak'])} | {fits} |")
  return "\n".join(rows)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="configs/kgat_ax.py")
  p.add_argument("--graphs", nargs="+", default=["1e8:1e9"], metavar="NODES:EDGES")
  p.add_argument("--devices", type=int, nargs="+", default=[64, 256])
  p.add_argument("--users", type=float, default=0.4, help="fraction of the nodes")
  p.add_argument("--items", type=float, default=0.1, help="fraction of the nodes")
  p.add_argument("--aux", type=float, default=0.01, help="fraction of the nodes")
  p.add_argument("--kg-relations", type=int, default=9)
  p.add_argument("--aux-relations", type=int, default=3)
  p.add_argument("--pair-fraction", type=float, default=0.3,
                 help="distinct (head, relation) pairs per edge")
  p.add_argument("--set", dest="overrides", nargs=2, action="append", default=[],
                 metavar=("FIELD", "VALUE"), help="a config override, e.g. train.batch_size 1024")
  p.add_argument("--out", help="writes OUT.md and OUT.json")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  try:
    args.graphs = [tuple(float(v) for v in g.split(":")) for g in args.graphs]
    assert all(len(g) == 2 and g[0] >= 10 and g[1] >= 1 for g in args.graphs)
  except (ValueError, AssertionError):
    p.error(f"--graphs {' '.join(map(str, args.graphs))}: expected NODES:EDGES, e.g. 1e8:1e9")
  if args.worker:
    plan_one(args)
    return None
  records = []
  for n in args.devices:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                         f"--xla_force_host_platform_device_count={n}".strip())
    cmd = [sys.executable, __file__, "--worker", *(argv if argv is not None else sys.argv[1:])]
    t0 = time.time()
    print(f"[{n} devices] compiling {len(LAYOUTS)} layouts x {len(args.graphs)} graphs ...",
          flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
      sys.exit(f"plan_scale: {n} devices failed:\n{proc.stderr[-3000:]}")
    got = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    print(f"[{n} devices] done in {time.time() - t0:.0f} s", flush=True)
    records += got
  md = (f"Compiled CF step of {args.config} on synthetic CKGs (CPU compiler, virtual meshes), "
        "bytes per device:\n\n"
        + table(records) + "\n")
  print(md)
  if args.out:
    pathlib.Path(f"{args.out}.md").write_text(md)
    pathlib.Path(f"{args.out}.json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "records": records},
        indent=1))
  return records


if __name__ == "__main__":
  main()
