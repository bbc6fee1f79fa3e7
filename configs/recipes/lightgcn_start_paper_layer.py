"""KGAT-AX with the paper's layer, fine-tuned from the study's LightGCN run of the same seed, as
KGAT's protocol fine-tunes from BPR-MF.

The paper's layer (bi-interaction aggregator, L2-normalised layers (64, 32, 16) concatenated
with layer 0, message dropout 0.1). User and item rows start as LightGCN's output embeddings,
unscaled; KG entities and aux nodes start at random (start.spread=0: spread from the pretrained
rows, they make the holographic fusion's first steps large); the triple attention and the fusion
start neutral (start.neutral=mean). Fine-tuned at lr 1e-4 (TransR too), batch 4096, validation
every epoch, patience 3, at most 10 epochs; the whole KGAT family alike. LightGCN keeps its
tuned settings (lr 5e-3, L2 1e-3, at most 300 epochs, patience 5), as in lightgcn_start.py; the
other baselines the paper's settings. L2 1e-2 otherwise, test rows logged.

    python experiments/studies/table3.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/lgcn-paper --recipe configs/recipes/lightgcn_start_paper_layer.py \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k \
        --out docs/results/table3-ml-100k-kg-lgcn-paper

(table2.py and figure3.py with the same options and --models lightgcn kgat kgat_ax.)

Measured (docs/notebook/results.md §5f, ml-100k-kg, test recall@20 over 3 seeds): kgat_ax
0.3541 ± 0.0022, no_kge 0.3530 ± 0.0012, no_att_eu 0.3541 ± 0.0022, no_att_ei 0.3541 ± 0.0021,
no_aux 0.3539 ± 0.0021, kgat 0.3528 ± 0.0010; LightGCN (the start) 0.3547 ± 0.0044.
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")


def starts_from(model: str) -> str | None:
  return "lightgcn" if model in paper.FAMILY else None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  if args.model == "lightgcn":   # configs/lightgcn.py
    c = paper.recommended(args.model, args.dataset)
  else:
    c = paper.base(args.model, args.dataset)
    c.optim.l2 = 1e-2
  c.train.log_test = True
  if args.model in paper.FAMILY:
    c.start.neutral, c.start.scale, c.start.spread = "mean", 1.0, 0
    c.optim.lr = c.optim.kg_lr = 1e-4
    c.train.batch_size = 4096
    c.train.epochs, c.train.eval_every, c.train.patience = 10, 1, 3
  return c
