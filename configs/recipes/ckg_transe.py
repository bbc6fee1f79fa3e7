"""The KGAT family trained from scratch as LightGCN's layer over the whole CKG, with TransE.

configs/kgat_ax.py's layer (aggregator=linear, the mean of layers 0-3, unnormalised, no
dropout) with uniform attention (model.attention=mean: a node's next layer is the mean of its
CKG neighbours', pi = 1 / deg h, not LightGCN's 1 / sqrt(deg h * deg t)), over users, items,
KG entities and aux nodes alike;
beside it, each epoch's KG phase trains TransE (model.kge=transe, docs/model.md §2.1) on every
CKG edge, so that the triples bind the very rows the score reads, as in CFKG. From a random
start (no pretrained run): lr 5e-3 constant (TransE 1e-3), batch 2048, at most 600 epochs,
validation every 5, patience 20. Use it with variant no_aux (the KG alone); the baselines get
their own configs (configs/<model>.py).

    python experiments/studies/controls.py --dataset ../shared/data/raw/ml-latest-small \
        --seeds 0 1 2 --root runs/ckg-transe --recipe configs/recipes/ckg_transe.py \
        --models no_aux --controls full shuffled \
        --out docs/results/controls-ml-latest-small-ckg-transe

Measured (docs/results.md row U, docs/kg-uptake.md; ml-latest-small, test recall@20, 3
seeds): no_aux 0.2285 +- 0.0026, with the KG shuffled 0.2276 +- 0.0034, without a KG
0.2254 +- 0.0026: above LightGCN (0.2158 +- 0.0088) and level with CFKG (0.2308 +- 0.0036), but not
through the KG. With 30% of each user's training pairs it is through the KG: 0.1250 +- 0.0016,
shuffled 0.1184 +- 0.0010, none 0.1127 +- 0.0035 (LightGCN 0.1208 +- 0.0013, CFKG 0.1342 +- 0.0046):

    python experiments/studies/sparsity.py --dataset ../shared/data/raw/ml-latest-small \
        --seeds 0 1 2 --root runs/sparsity-mls-ckg --recipe configs/recipes/ckg_transe.py \
        --models no_aux --controls full none shuffled --fractions 0.3 \
        --out docs/results/sparsity-ml-latest-small-ckg-transe
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")


def starts_from(model: str) -> str | None:
  return None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  c = paper.recommended(args.model, args.dataset)
  if args.model in paper.FAMILY:
    c.model.attention, c.model.kge = "mean", "transe"
    c.start.pretrained, c.start.scale, c.start.neutral = "", 1.0, ""
    c.optim.lr, c.optim.kg_lr, c.optim.lr_schedule = 5e-3, 1e-3, "constant"
    t = c.train
    t.batch_size, t.epochs, t.eval_every, t.patience = 2048, 600, 5, 20
  return c
