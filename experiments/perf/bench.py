"""Speed and memory of one configuration on one dataset, measured in one process.

    python experiments/perf/bench.py --config configs/kgat_ax.py:dataset=PATH_OR_NAME \
        [--config.train.batch_size=1024] [--epochs 1] [--out docs/bench/NAME.json]

Measures, after a compile warm-up: seconds per CF step and per KG step, seconds per training epoch
(CF phase + KG phase, sampling included: as in training, the next epoch is sampled on a host
thread during this one), one full-ranking evaluation of all test users, compile time, peak host
RSS and peak device memory; prints a markdown row and writes JSON.

    python experiments/perf/bench.py --config ... --plan [--out PLAN.json]

compiles the CF chunk, the KG chunk and the evaluation's propagation without running them and
prints XLA's buffer assignment for each on the current backend (arguments, outputs, temporaries):
whether a dataset fits a device before it is used. The figures are the compiler's for the backend
it runs on; another backend fuses differently, so a plan made on CPU is an estimate for a GPU.

    python experiments/perf/bench.py --config ... --profile 2 [--out NAME.json]

also traces 2 CF chunks and 2 KG chunks with jax.profiler after the timing and prints where the
device time goes: each XLA op's total time, grouped into kinds (gather, scatter, matmul, ...).
`--header` prints the header of the markdown rows (bench_accelerator.sh's table).

The steps, optimizers, sampler and evaluation are training's own (kgax.experiment.build,
kgax.pipeline, kgax.train.make_step_fns), so the figures are those of `kgax train`.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import pathlib
import platform
import re
import resource
import sys
import tempfile
import time
import warnings

import jax
import numpy as np

from kgax import config as config_lib, evaluate, experiment, pipeline, sharding, train


def _block(tree):
  return jax.block_until_ready(tree)


# Kinds of XLA op, by the first pattern found in the op's name or HLO text ("loop_gather_fusion",
# "wrapped_scatter.2", "%dot.1 = f32[...] dot(...)").
OP_KINDS = (("scatter", r"scatter"), ("sort", r"(^|[^a-z])sort"), ("gather", r"gather"),
            ("matmul", r"(^|[^a-z])(dot|convolution|gemm|cublas)"), ("fft", r"(^|[^a-z])fft"),
            ("reduce", r"(^|[^a-z])reduce"), ("copy / transpose", r"(^|[^a-z])(copy|transpose)"))


def op_kind(text: str) -> str:
  for kind, pattern in OP_KINDS:
    if re.search(pattern, text):
      return kind
  return "elementwise / other"


def profile_summary(xplane, top: int = 25) -> dict:
  """Device time per XLA op in a jax.profiler trace, summed by op name: the events of each device
  plane's "XLA Ops" line, or of its stream lines (one event per kernel) where it has none; on a
  host-only trace (CPU), the XLA client's and Eigen's threads. `xplane`: the trace's .xplane.pb
  path, or its already-read `jax.profiler.ProfileData`."""
  data = (jax.profiler.ProfileData.from_file(xplane) if isinstance(xplane, (str, pathlib.Path))
          else xplane)
  planes = [p for p in data.planes if p.name.startswith("/device:")]
  lines = [l for p in planes for l in p.lines if l.name == "XLA Ops"]
  if not lines:
    lines = [l for p in planes for l in p.lines if l.name.startswith("Stream")]
  if not lines:   # CPU
    lines = [l for p in data.planes if p.name == "/host:CPU" for l in p.lines
             if l.name.startswith(("tf_XLA", "XLA"))]
  ops = collections.defaultdict(lambda: {"ns": 0.0, "count": 0, "text": ""})
  for line in lines:
    for ev in line.events:
      if ev.name.startswith("ThunkExecutor"):   # CPU: wraps the ops it runs
        continue
      op = ops[ev.name]
      op["ns"] += ev.duration_ns
      op["count"] += 1
      if not op["text"]:
        with warnings.catch_warnings():   # the stats' binding type warns on Python 3.12
          warnings.simplefilter("ignore", DeprecationWarning)
          stats = dict(ev.stats)
        op["text"] = str(stats.get("long_name") or stats.get("hlo_op") or ev.name)
  total = sum(o["ns"] for o in ops.values()) or 1.0
  kinds = collections.Counter()
  for name, o in ops.items():
    kinds[op_kind(f"{name} {o['text']}")] += o["ns"]
  ranked = sorted(ops.items(), key=lambda kv: -kv[1]["ns"])
  return {"total_ms": total / 1e6,
          "kinds": [{"kind": k, "ms": ns / 1e6, "share": ns / total}
                    for k, ns in kinds.most_common()],
          "ops": [{"name": n, "ms": o["ns"] / 1e6, "count": o["count"], "share": o["ns"] / total,
                   "kind": op_kind(f"{n} {o['text']}"), "text": o["text"][:200]}
                  for n, o in ranked[:top]]}


def profile_table(prof: dict) -> str:
  rows = [f"device time traced: {prof['total_ms']:.1f} ms", "", "| kind | ms | share |",
          "|---|---|---|"]
  rows += [f"| {k['kind']} | {k['ms']:.1f} | {k['share']:.1%} |" for k in prof["kinds"]]
  rows += ["", "| op | kind | calls | ms | share | HLO |", "|---|---|---|---|---|---|"]
  rows += [f"| {o['name']} | {o['kind']} | {o['count']} | {o['ms']:.1f} | {o['share']:.1%} | "
           f"`{o['text'][:90].replace('|', '/')}` |" for o in prof["ops"]]
  return "\n".join(rows)


def _setup(cfg):
  """The run's experiment, mesh, sampler, step functions and optimizers, as training builds
  them; and the seconds the data and graph took."""
  t0 = time.time()
  exp = experiment.build(cfg)
  t_data = time.time() - t0
  opts = exp.opts
  if not opts.kg_phase:
    raise ValueError("bench times CF and KG steps: use a config that trains a KG loss "
                     "(config.model.use_kge=True, with a KG: not data.kg='none')")
  mesh = sharding.make_mesh()
  sampler = pipeline.make_sampler(opts, exp.ds, exp.split, exp.graph)
  cf_fn, kg_fn = train.make_step_fns(opts, mesh, sampler.steps)
  tx_cf, tx_kg = experiment.make_optimizers(opts, sampler.steps)
  return exp, mesh, sampler, (cf_fn, kg_fn), (tx_cf, tx_kg), t_data


def _facts(exp) -> dict:
  ds, split, graph, opts = exp.ds, exp.split, exp.graph, exp.opts
  return {"dataset": ds.name, "users": ds.n_users, "items": ds.n_items,
          "train": len(split.train), "test": len(split.test), "nodes": graph.n_nodes,
          "edges": graph.n_real_edges, "model": opts.model.name, "variant": opts.name,
          "batch_size": opts.train.batch_size, "layers": list(getattr(opts.model, "layers", ()))}


def bench(cfg, epochs: int = 1, profile: int = 0, trace_dir: str | None = None) -> dict:
  exp, mesh, sampler, (cf_fn, kg_fn), (tx_cf, tx_kg), t_data = _setup(cfg)
  opts = exp.opts
  graph = jax.device_put(exp.graph, sharding.replicated(mesh))
  state = jax.device_put(exp.init_state(tx_cf, tx_kg), sharding.replicated(mesh))
  params, opt_cf, opt_kg = state.params, state.opt_cf, state.opt_kg
  spc = opts.train.steps_per_call

  prefetch = pipeline.Prefetch(sampler, 0, epochs + 1)   # as in training: the next epoch's
                                                         # batches are drawn during this one's

  def sample(epoch):
    cf, kg = prefetch(epoch)
    return pipeline.chunks(cf, spc), pipeline.chunks(kg, spc)

  cf, kg = sample(0)
  zeros = np.zeros((*cf.shape[1:3], 4), np.int32)   # no KG batch in a CF step (alternate)
  key = jax.random.key(0)
  t0 = time.time()
  params, opt_cf, _ = _block(cf_fn(params, opt_cf, graph, cf[0], zeros, key))
  params, opt_kg, _ = _block(kg_fn(params, opt_kg, graph, kg[0], kg[0], key))
  compile_s = time.time() - t0

  def run_cf(params, opt, chunks, n):   # n chunks of CF steps, not waited for
    for c in range(min(n, chunks.shape[0])):
      params, opt, _ = cf_fn(params, opt, graph, chunks[c], zeros, key)
    return params, opt

  def run_kg(params, opt, chunks, n):
    for c in range(min(n, chunks.shape[0])):
      params, opt, _ = kg_fn(params, opt, graph, chunks[c], chunks[c], key)
    return params, opt

  t0 = time.time()
  params, opt_cf = _block(run_cf(params, opt_cf, cf, 4))
  cf_step = (time.time() - t0) / (min(4, cf.shape[0]) * cf.shape[1])
  t0 = time.time()
  params, opt_kg = _block(run_kg(params, opt_kg, kg, 8))
  kg_step = (time.time() - t0) / (min(8, kg.shape[0]) * kg.shape[1])

  epoch_s = []
  for e in range(epochs):
    t0 = time.time()
    cf, kg = sample(e + 1)
    params, opt_cf = run_cf(params, opt_cf, cf, cf.shape[0])
    params, opt_kg = run_kg(params, opt_kg, kg, kg.shape[0])
    _block(params)
    epoch_s.append(time.time() - t0)

  prof = None
  if profile:
    trace_dir = trace_dir or tempfile.mkdtemp(prefix="kgax-trace-")
    with jax.profiler.trace(trace_dir):
      params, opt_cf = run_cf(params, opt_cf, cf, profile)
      params, opt_kg = _block(run_kg(params, opt_kg, kg, profile))
    prof = profile_summary(sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))[-1])

  prefetch.close()
  ev = exp.evaluator("test", evaluate.RANKING_METRICS)   # as training's test curve rows
  evaluate_fn = exp.evaluate_fn()
  evaluate_fn(params, ev)   # compile
  t0 = time.time()
  metrics = evaluate_fn(params, ev)
  eval_s = time.time() - t0
  return {
      **_facts(exp),
      "device": jax.devices()[0].device_kind, "n_devices": jax.device_count(),
      "jax": jax.__version__, "host": platform.processor() or platform.machine(),
      "data_seconds": t_data, "compile_seconds": compile_s,
      "cf_step_seconds": cf_step, "kg_step_seconds": kg_step,
      "cf_steps_per_epoch": int(cf.shape[0] * cf.shape[1]),
      "kg_steps_per_epoch": int(kg.shape[0] * kg.shape[1]),
      # With --epochs 0 the epoch time is estimated from the measured step times.
      "epoch_seconds": float(np.median(epoch_s)) if epoch_s else
                       cf.shape[0] * cf.shape[1] * cf_step
                       + kg.shape[0] * kg.shape[1] * kg_step,
      "epoch_measured": bool(epoch_s), "eval_seconds": eval_s,
      "test_recall@20": metrics.get("recall@20"),
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "peak_device_bytes": sharding.peak_memory(),
      "profile": prof,
  }


def _buffers(jitted, *args) -> dict:
  """XLA's memory analysis of one compiled function: bytes of arguments, outputs, outputs that
  reuse (donated) arguments, temporaries, and their peak sum."""
  stats = jitted.lower(*args).compile().memory_analysis()
  if stats is None:
    return {}
  out = {"arguments": int(stats.argument_size_in_bytes),
         "outputs": int(stats.output_size_in_bytes),
         "aliased": int(stats.alias_size_in_bytes),
         "temporaries": int(stats.temp_size_in_bytes)}
  out["peak"] = out["arguments"] + out["outputs"] - out["aliased"] + out["temporaries"]
  return out


def plan(cfg) -> dict:
  """Compiles without running: XLA's buffer sizes for a CF chunk, a KG chunk and the evaluation's
  propagation (see the module docstring)."""
  exp, _, sampler, (cf_fn, kg_fn), (tx_cf, tx_kg), t_data = _setup(cfg)
  opts, graph, lib = exp.opts, exp.graph, exp.lib
  state = jax.eval_shape(lambda: exp.init_state(tx_cf, tx_kg))
  spc, key = opts.train.steps_per_call, jax.random.key(0)
  t0 = time.time()
  cf, kg = sampler(0)
  t_sample = time.time() - t0
  cf, kg = pipeline.chunks(cf, spc)[0], pipeline.chunks(kg, spc)[0]
  zeros = np.zeros((*cf.shape[:2], 4), np.int32)
  t0 = time.time()
  res = {"cf_chunk": _buffers(cf_fn, state.params, state.opt_cf, graph, cf, zeros, key),
         "kg_chunk": _buffers(kg_fn, state.params, state.opt_kg, graph, kg, kg, key)}
  if hasattr(lib, "user_item_embeddings"):
    embed = jax.jit(lambda p, g: lib.user_item_embeddings(p, g, opts.model))
    res["evaluation_propagation"] = _buffers(embed, state.params, graph)
  facts = _facts(exp)
  return {**{k: facts[k] for k in ("dataset", "users", "items", "train", "nodes", "edges",
                                   "model", "variant", "batch_size")},
          "steps_per_chunk": int(cf.shape[0]), "layers": facts["layers"],
          "backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
          "jax": jax.__version__, "data_seconds": t_data, "sample_epoch_seconds": t_sample,
          "compile_seconds": time.time() - t0, "buffers": res}


def plan_table(res: dict) -> str:
  gb = lambda b: f"{b / 2**30:.2f}"
  rows = [f"XLA buffers on {res['device']} ({res['backend']}), {res['dataset']}: "
          f"{res['edges']:,} CKG edges, {res['nodes']:,} nodes, batch {res['batch_size']}; "
          f"sampling one epoch on the host: {res['sample_epoch_seconds']:.1f} s",
          "",
          "| function | arguments GiB | outputs GiB | aliased GiB | temporaries GiB | peak GiB |",
          "|---|---|---|---|---|---|"]
  for name, b in res["buffers"].items():
    if b:
      rows.append(f"| {name} | {gb(b['arguments'])} | {gb(b['outputs'])} | {gb(b['aliased'])} | "
                  f"{gb(b['temporaries'])} | {gb(b['peak'])} |")
  return "\n".join(rows)


def markdown_row(res: dict) -> str:
  gb = lambda b: "-" if b is None else f"{b / 2**30:.2f}"
  return (f"| {res['dataset']} | {res['device']} x{res['n_devices']} | {res['edges']:,} | "
          f"{res['cf_step_seconds']*1e3:.1f} | {res['kg_step_seconds']*1e3:.1f} | "
          f"{res['epoch_seconds']:.2f}{'' if res['epoch_measured'] else ' (est.)'} | "
          f"{res['eval_seconds']:.2f} | "
          f"{res['compile_seconds']:.1f} | {gb(res['peak_rss_bytes'])} | "
          f"{gb(res['peak_device_bytes'])} |")


HEADER = ("| dataset | device | CKG edges | CF step ms | KG step ms | epoch s | eval s | "
          "compile s | peak RSS GiB | peak device GiB |\n|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
  overrides, rest = config_lib.split_overrides(list(sys.argv[1:] if argv is None else argv))
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", help="configs/x.py[:arg] (or a recipe with its argument)")
  p.add_argument("--header", action="store_true", help="print the markdown rows' header only")
  p.add_argument("--epochs", type=int, default=1,
                 help="full epochs to time (0: estimate from the step times)")
  p.add_argument("--plan", action="store_true",
                 help="compile only and print XLA's buffer sizes (fits in device memory?)")
  p.add_argument("--profile", type=int, default=0, metavar="N",
                 help="trace N CF and N KG chunks after the timing and print device time per op")
  p.add_argument("--trace-dir", default=None, help="where --profile writes the trace")
  p.add_argument("--out", default=None)
  args = p.parse_args(rest)
  if args.header:
    print(HEADER)
    return None
  if not args.config:
    p.error("--config is required")
  cfg = config_lib.apply_overrides(config_lib.load_file(args.config), overrides)
  if args.plan:
    res = plan(cfg)
    print(plan_table(res))
  else:
    res = bench(cfg, args.epochs, args.profile, args.trace_dir)
    if res["profile"]:
      print(profile_table(res["profile"]))
    print(HEADER)
    print(markdown_row(res))
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
  return res


if __name__ == "__main__":
  main()
