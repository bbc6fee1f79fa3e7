"""Models: each module is a set of pure functions over a parameter pytree.

Every model module provides
    Options                                          frozen dataclass: the model's fields, their
                                                     defaults and checks (config.model), and the
                                                     properties use_kge, aux_edges (kg_triples
                                                     when use_kge) that the trainer reads
    init(key, m, graph) -> params
    cf_loss(params, graph, m, batch[B,3], rng, l2)   BPR (or the model's ranking loss)
and either
    user_item_embeddings(params, graph, m) -> (users [U, D], items [I, D])   score = dot product
or
    score_users(params, graph, m, users[B]) -> [B, n_items]
and, when it trains a KG loss (m.use_kge),
    kg_loss(params, graph, m, batch[B,4], l2)        on (h, r, t, t') quadruples
and, when its added modules can start neutral (config.start.neutral),
    neutral_start(params, m, kind) -> params
and, optionally,
    ROW_TABLES                                       names of the parameters that are tables
                                                     (one row per node, user or item): on a mesh
                                                     with a "model" axis they are row-sharded
                                                     (kgax/sharding.py)
    NEEDS_KG                                         True when the model cannot be built
                                                     without KG triples (data.kg="none")
"""

import importlib

NAMES = ("kgat", "mf", "fm", "cke", "cfkg", "kgcn", "lightgcn", "kgin")


def get(name: str):
  """The model module for `config.model.name`."""
  if name not in NAMES:
    raise ValueError(f"config.model.name={name!r}: expected one of {NAMES}")
  return importlib.import_module(f"kgax.models.{name}")
