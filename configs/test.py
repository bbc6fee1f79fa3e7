"""A tiny configuration for tests and smoke runs: seconds on a CPU.

    kgax train --config configs/test.py --workdir /tmp/kgax-test
    kgax train --config configs/test.py:model=lightgcn --workdir /tmp/kgax-test-lightgcn
"""

from kgax import options


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset="synthetic-tiny", model="kgat")
  c = options.default_config(args.model, args.dataset)
  if args.model in ("kgat", "cke"):
    c.model.relation_dim = 16
  if args.model == "kgat":
    c.model.layers = (16, 8)
  c.model.embed_dim = 16
  c.train.epochs = 4
  c.train.batch_size = 128
  c.train.kg_batch_size = 256
  c.train.steps_per_call = 4
  c.train.eval_every = 2
  c.train.patience = 3
  c.eval.ks = (5, 10, 20)
  c.eval.batch_size = 64
  return c
