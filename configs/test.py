"""A tiny configuration for tests and smoke runs: seconds on a CPU."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import kgat_ax  # noqa: E402


def get_config(arg: str | None = None):
  c = kgat_ax.get_config(arg or "dataset=synthetic-tiny")
  c.model.embed_dim = 16
  c.model.relation_dim = 16
  c.model.layers = (16, 8)
  c.train.epochs = 4
  c.train.batch_size = 128
  c.train.kg_batch_size = 256
  c.train.steps_per_call = 4
  c.train.eval_every = 2
  c.train.patience = 3
  c.eval.ks = (5, 10, 20)
  c.eval.batch_size = 64
  return c
