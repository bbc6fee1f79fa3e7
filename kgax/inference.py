"""Checkpoint-driven evaluation, recommendation and attention-path explanations."""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from kgax import checkpoint, coldstart, evaluate, experiment, options, sampling, sharding
from kgax.data.types import DataError, Dataset, Split
from kgax.graph import Graph
from kgax.workdir import Workdir


@functools.partial(jax.jit, static_argnames="k")
def _top_k(scores, rows, cols, k):
  """(scores, items) [B, k]: the top k of scores [B, I] without the (row, item) entries, in the
  evaluator's order (ties by lower index, -0.0 tied with 0.0)."""
  scores, items = evaluate.excluded_top_k(scores, rows, cols, k)
  return jnp.take_along_axis(scores, items, axis=1), items


@dataclasses.dataclass
class Run:
  """A trained workdir: its options, data, graph and the parameters of one checkpoint. Opening
  one only reads."""

  workdir: pathlib.Path
  exp: experiment.Experiment
  placed: dict    # the checkpoint's parameters, padded and sharded by `layout` when it has one
  step: int
  mesh: jax.sharding.Mesh | None = None
  layout: sharding.Layout | None = None

  @functools.cached_property
  def params(self) -> dict:
    """The parameters as the model sees them (padding rows cut off)."""
    if self.layout is None or not self.layout.rows:
      return self.placed
    return jax.jit(self.layout.trim)(self.placed)

  @classmethod
  def open(cls, workdir: str | pathlib.Path, which: str = "best", mesh=None) -> Run:
    """Reads checkpoint `which` of `workdir`. With `mesh` (a shape such as (2, 4) or (-1, 1),
    as config.train.mesh) the state is restored onto that mesh of this process's devices,
    whatever mesh wrote it: row tables sharded along "model", evaluation's users split over
    every device."""
    wd = Workdir(workdir)
    stored = wd.read_config()
    if stored is None:
      raise FileNotFoundError(f"{wd.config_path}: not found (is this a kgax workdir?)")
    try:
      opts = options.parse(stored)
    except options.ConfigError as e:
      raise options.ConfigError(f"{wd.config_path}: written by another kgax version ({e})"
                                ) from None
    exp = experiment.build(stored, opts)
    if opts.eval.cold_items == "auto":   # the rule the run selected on validation
      selected = (wd.read_results() or {}).get("cold_items", {}).get("selected")
      if selected not in coldstart.RULES:
        raise DataError(f"{wd.path / 'results.json'}: eval.cold_items='auto' and no selected "
                        "rule recorded (is the run finished?)")
      exp.cold_selected = selected
    tx_cf, tx_kg = experiment.make_optimizers(opts)
    target = jax.eval_shape(lambda: {f.name: getattr(s, f.name) for s in
                                     [exp.init_state(tx_cf, tx_kg)]
                                     for f in dataclasses.fields(s)})
    layout = None
    if mesh is not None:
      try:
        mesh = sharding.make_mesh(mesh)
      except ValueError as e:
        raise options.ConfigError(str(e).replace("config.train.mesh", "--mesh")) from None
      layout = sharding.Layout.for_model(mesh, exp.lib, target["params"])
      target = layout.abstract(target)
    ckpt = checkpoint.Checkpoints(wd.checkpoints, metric=opts.train.select_metric,
                                  read_only=True, trim=layout.trim if layout else None)
    state = ckpt.restore(which, target)
    return cls(wd.path, exp, state["params"], int(state["epoch"]), mesh, layout)

  @property
  def opts(self) -> options.RunOptions:
    return self.exp.opts

  @property
  def lib(self):
    return self.exp.lib

  @property
  def ds(self) -> Dataset:
    return self.exp.ds

  @property
  def split(self) -> Split:
    return self.exp.split

  @property
  def graph(self) -> Graph:
    return self.exp.graph

  @functools.cached_property
  def _score_fn(self):
    """users [B] -> scores [B, n_items] for the restored parameters."""
    m, graph, params, lib = self.opts.model, self.graph, self.params, self.lib
    if hasattr(lib, "user_item_embeddings"):
      user_emb, item_emb = jax.jit(functools.partial(experiment.item_embeddings, lib, m))(
          params, graph, self.exp.cold_items)
      return jax.jit(lambda users: user_emb[users] @ item_emb.T)
    score = jax.jit(lambda p, g, users: lib.score_users(p, g, m, users))
    return lambda users: score(params, graph, users)

  def evaluate(self, split: str = "test") -> dict[str, float]:
    """Metrics on test (train and validation excluded) or validation (train excluded)."""
    trim = self.layout.trim if self.layout else None
    return self.exp.evaluate_fn(trim=trim, graph=self._step_graph)(
        self.placed, self.exp.evaluator(split, mesh=self.mesh))

  @functools.cached_property
  def _step_graph(self) -> Graph:
    """The graph as a step on the run's mesh reads it (cut into head blocks on a "model"
    axis; kgax/sharding.py `step_graph`)."""
    if self.mesh is None:
      return self.graph
    return sharding.place(*sharding.step_graph(self.mesh, self.graph, self.lib))

  def recommend(self, users: np.ndarray, k: int, batch_size: int = 256):
    """Top-k (items [U, k], scores [U, k]) per user, train and validation items excluded."""
    s, n_items = self.split, self.ds.n_items
    users = np.asarray(users)
    rows, cols = evaluate.batched_pairs(np.concatenate([s.train, s.valid]), self.ds.n_users,
                                        n_items, users, batch_size)
    k = min(k, n_items)
    items, scores = [], []
    for b, start in enumerate(range(0, len(users), batch_size)):
      part = users[start:start + batch_size]
      padded = np.r_[part, np.zeros(batch_size - len(part), part.dtype)].astype(np.int32)
      sc, it = _top_k(self._score_fn(jnp.asarray(padded)), rows[b], cols[b], k)
      items.append(np.asarray(it)[:len(part)])
      scores.append(np.asarray(sc)[:len(part)])
    return np.concatenate(items), np.concatenate(scores)

  # Names --------------------------------------------------------------------------------------
  def user_index(self, original: str) -> int:
    ids = self.ds.user_ids
    if ids is None:
      u = int(original) if original.lstrip("-").isdigit() else -1
    else:
      found = np.flatnonzero(np.asarray(ids).astype(str) == original)
      u = int(found[0]) if len(found) else -1
    if not 0 <= u < self.ds.n_users:
      raise DataError(f"user {original!r}: not in dataset {self.ds.name}")
    return u

  def _original(self, ids, i) -> str:
    return str(ids[i]) if ids is not None else str(i)

  def item_name(self, i: int) -> str:
    title = self.ds.item_titles[i] if self.ds.item_titles is not None else None
    orig = self._original(self.ds.item_ids, i)
    return f"{orig} ({title})" if title else orig

  def node_name(self, v: int) -> str:
    g = self.graph
    if v < g.n_items:
      return f"item {self.item_name(v)}"
    if v < g.n_entities:
      return f"entity {self._original(self.ds.entity_ids, v)}"
    if v < g.aux_start:
      return f"user {self._original(self.ds.user_ids, v - g.user_start)}"
    if v < g.sink:
      return f"aux {self.ds.aux.node_names[v - g.aux_start]}"
    return "sink"

  def relation_name(self, r: int) -> str:
    names = ("interact", *self.ds.relation_names, *self.ds.aux.attr_names)
    n = len(names)
    return names[r] if r < n else f"~{names[r - n]}"

  # Explanations -------------------------------------------------------------------------------
  @functools.cached_property
  def attention(self) -> np.ndarray:
    """Attention weight of every edge in every layer [L, E] (deterministic pass)."""
    _, pi = jax.jit(lambda p, g: self.lib.propagate(p, g, self.opts.model,
                                                      return_attention=True))(self.params,
                                                                              self.graph)
    return np.asarray(pi)

  @functools.cached_property
  def _attention(self) -> np.ndarray:
    """Mean attention weight per edge over layers [E]."""
    return self.attention.mean(0)

  def paths(self, user: int, item: int, n_paths: int = 3):
    """The highest-attention paths user -> ... -> item of 2 or 3 hops.

    A path's weight is the product of the attention weights pi(h, r, t) along it (h attends to t).
    Returns [(weight, [(node, relation, node), ...]), ...], best first.
    """
    g = self.graph
    h, r, t = (np.asarray(a)[:g.n_real_edges] for a in (g.heads, g.relations, g.tails))
    pi = self._attention[:g.n_real_edges]
    u = g.user_start + user
    first = np.flatnonzero(h == u)
    last = np.flatnonzero(t == item)
    found = []
    # 2 hops: u -> a -> item
    a_of = dict(zip(t[first].tolist(), first.tolist()))
    for e in last:
      if h[e] in a_of:
        e1 = a_of[h[e]]
        found.append((pi[e1] * pi[e], [e1, e]))
    # 3 hops: u -> a -> b -> item, over edges a -> b between the two frontiers
    b_of = dict(zip(h[last].tolist(), last.tolist()))
    mid = np.flatnonzero(np.isin(h, t[first]) & np.isin(t, h[last]))
    for e2 in mid:
      e1, e3 = a_of[h[e2]], b_of[t[e2]]
      found.append((pi[e1] * pi[e2] * pi[e3], [e1, e2, e3]))
    found.sort(key=lambda x: -x[0])
    return [(float(w), [(int(h[e]), int(r[e]), int(t[e])) for e in es])
            for w, es in found[:n_paths]]

  def explain_text(self, user: str, k: int, n_paths: int = 3) -> list[str]:
    u = self.user_index(user)
    items, scores = self.recommend(np.array([u]), k)
    lines = [f"top {k} for user {user} (checkpoint epoch {self.step}):"]
    explain = hasattr(self.lib, "propagate")   # attention paths: KGAT-family models
    for rank, (i, s) in enumerate(zip(items[0], scores[0]), 1):
      lines.append(f"{rank:3d}. {self.item_name(int(i))}  score {s:.4f}")
      for w, steps in (self.paths(u, int(i), n_paths) if explain else []):
        hops = " ".join(f"-[{self.relation_name(rr)}]-> {self.node_name(tt)}"
                        for _, rr, tt in steps)
        lines.append(f"       {w:.3g}: {self.node_name(steps[0][0])} {hops}")
    return lines

  def write_recommendations(self, path: str | pathlib.Path, k: int) -> int:
    """user<TAB>item<TAB>rank<TAB>score for every test user (original ids)."""
    users = sampling.distinct(self.split.test[:, 0])
    items, scores = self.recommend(users, k)
    uid = (np.asarray(self.ds.user_ids).astype(str)[users] if self.ds.user_ids is not None
           else users.astype(str))
    iid = (np.asarray(self.ds.item_ids).astype(str) if self.ds.item_ids is not None
           else np.arange(self.ds.n_items).astype(str))
    table = pd.DataFrame({
        "user": np.repeat(uid, items.shape[1]), "item": iid[items.ravel()],
        "rank": np.tile(np.arange(1, items.shape[1] + 1), len(users)),
        "score": scores.ravel()})
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")   # written whole, then moved into place
    table.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    tmp.replace(path)
    return items.size
