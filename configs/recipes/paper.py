"""The paper's hyperparameters (KGAT, Wang et al. KDD 2019) for every model, from scratch.

Adam at lr 1e-3 (TransR too), batch 1024 (KG batch 2048), L2 1e-5, at most 200 epochs,
validation every 5 epochs, patience 10. The KGAT family (kgat, kgat_ax and its ablations) has
the paper's layer, the kgat.Options defaults: bi-interaction aggregator, L2-normalised layers
(64, 32, 16) concatenated with layer 0, message dropout 0.1; the baselines their own options'
defaults. The other recipes start from `base` and set their fields on it.

    kgax run --dataset ../shared/data/bench/ml-100k-kg --recipe configs/recipes/paper.py \
        --models mf kgat kgat_ax --seeds 0 1 2 \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k

Measured: docs/results.md reports no run of this recipe as a whole. The nearest figures are
section 1's BPR-MF at L2 1e-5 (seed 0, at most 300 epochs, patience 5: valid recall@20 0.3075,
test 0.3343) and section 4's KGAT-AX at L2 1e-5 with batch 4096 and lr 5e-3 (seed 0, at most
30 epochs: test recall@20 0.2773).
"""

from kgax import options
from kgax.config import sibling

kgat_ax = sibling(__file__, "../kgat_ax.py")
FAMILY = tuple(kgat_ax.VARIANTS)   # kgat_ax, its ablations and kgat: the kgat model family


def parse(arg: str | None):
  """A recipe's argument "model=NAME,dataset=D" (NAME: a kgax.study.MODELS name)."""
  return options.parse_arg(arg, model="kgat_ax", dataset=options.DataOptions.name)


def base(model: str, dataset: str):
  """The paper-default config of `model`: a variant of the kgat family, or a baseline."""
  if model in FAMILY:
    c = kgat_ax.variant(options.default_config("kgat", dataset), model)
  else:
    c = options.default_config(model, dataset)
  c.optim.l2 = 1e-5
  return c


def recommended(model: str, dataset: str):
  """`model`'s own config file (configs/<model>.py): its recommended settings, which recipes
  reuse instead of restating them."""
  from kgax import study
  if model not in study.MODELS:
    raise options.ConfigError(f"config argument model={model!r}: expected one of "
                              f"{sorted(study.MODELS)}")
  return study.model_config(model, dataset)


def get_config(arg: str | None = None):
  args = parse(arg)
  return base(args.model, args.dataset)


def starts_from(model: str) -> str | None:
  return None
