"""KGIN (Wang et al. WWW 2021; docs/model.md §3): intents as attentive combinations of KG
relations, intent-aware user aggregation, relational-path item aggregation, an independence
loss between intents. The authors' code's formulation (model.formulation=code: a learned
intent query, the mean added in the user step, independence over the intent logits; L2 on the
batch's propagated e*) with RecBole's settings: d 64, 2 hops, 4 intents, independence weight
1e-4, L2 1e-5, Adam lr 1e-3, batch 1024; validation every 5 epochs, patience 5, at most 300
epochs. Evaluation is deterministic: no dropout, the whole KG.

    kgax train --config configs/kgin.py:dataset=ml-100k-kg --workdir runs/kgin
    kgax run --dataset ../shared/data/bench/ml-100k-kg --models kgin --seeds 0

Measured on the ml-100k-kg benchmark split, seed 0 (2 CPU cores, 16 min): test recall@20
0.3338, ndcg@20 0.3972 (best epoch 40), against RecBole 1.2.1's KGIN 0.3317 / 0.3964 on the same
files (its best checkpoint scored on the full KG); seeds 0, 1, 2: 0.3353 +- 0.0028 /
0.3978 +- 0.0032 (experiments/studies/table2.py --models kgin, docs/results.md row F). The
paper's formulation with 3 hops and L2 on the layer-0 rows (the model's defaults) reached
0.3188 / 0.3766.
"""

from kgax import options
from kgax.config import sibling

sweep = sibling(__file__, "mf.py").sweep


def get_config(arg: str | None = None):
  args = options.parse_arg(arg, dataset=options.DataOptions.name)
  c = options.default_config("kgin", args.dataset)
  c.model.formulation = "code"
  c.model.l2_on = "output"
  c.model.n_layers = 2
  c.optim.l2 = 1e-5
  c.train.epochs = 300
  c.train.patience = 5
  return c
