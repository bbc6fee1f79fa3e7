"""KGAT-AX with LightGCN's layer, started as the study's LightGCN run of the same seed.

The KGAT family propagates linearly (model.aggregator=linear: e(l+1) is the attentive neighbour
sum) and scores the mean of its layers 0-3 without normalising them (combine=mean,
normalize_layers=False). KGAT-AX starts as exactly that LightGCN model: its rows are LightGCN's
output embeddings times 4 (start.scale), so that the mean over four layers gives LightGCN's
scores while the triple attention's messages start at zero and the fusion as the identity
(start.neutral=zero); KG entities and aux nodes start as the mean of their pretrained
neighbours, two hops out (start.spread). KGAT's message is e_t, with no weights to start at
zero: it starts from LightGCN's rows unscaled (at scale 4 its fine-tune collapses). The fusion
is held near the identity (model.fusion_l2=1, the variants with a fusion). The fine-tune runs
at most 30 epochs at lr 1e-3 with cosine decay, TransR at 1e-4, batch 4096, validation every 2
epochs, patience 15. LightGCN keeps its tuned settings (lr 5e-3, L2 1e-3, at most 300 epochs,
patience 5); the other baselines the paper's settings. L2 1e-2 otherwise, test rows logged.
configs/kgat_ax.py and configs/lightgcn.py are these settings as the recommended protocol.

    python experiments/studies/table2.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/lgcn-start --recipe configs/recipes/lightgcn_start.py \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k \
        --models lightgcn kgat kgat_ax --out docs/results/table2-ml-100k-kg-lgcn-start

(table3.py with the same options, without --models, gives Table 3.)

Measured (docs/notebook/results.md §5c, ml-100k-kg, test recall@20 over 3 seeds): LightGCN
0.3547 ± 0.0044, KGAT (LightGCN's layer, from LightGCN) 0.3517 ± 0.0002, KGAT-AX (LightGCN's
layer, started as LightGCN) 0.3549 ± 0.0025 (ndcg@20 0.4241 ± 0.0032, valid recall@20 0.3390);
Table 3: no_kge 0.3552 ± 0.0025, no_att_eu 0.3556 ± 0.0033, no_att_ei 0.3550 ± 0.0025, no_aux
0.3550 ± 0.0020.
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")


def starts_from(model: str) -> str | None:
  return "lightgcn" if model in paper.FAMILY else None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  if args.model == "lightgcn" or args.model in paper.FAMILY:
    # the recommended protocol: configs/lightgcn.py, and configs/kgat_ax.py for the family
    c = paper.recommended(args.model, args.dataset)
  else:
    c = paper.base(args.model, args.dataset)
    c.optim.l2 = 1e-2
  c.train.log_test = True
  return c
