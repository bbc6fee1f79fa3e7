"""KGAT's protocol: the KGAT family fine-tuned from the study's BPR-MF run of the same seed.

MF keeps batch 1024 and lr 1e-3 (at most 300 epochs, patience 5); the KGAT family starts from
its user and item rows and is fine-tuned at lr 1e-4 (the paper grid's smallest; at 1e-3 the
TransR phase wipes out much of MF's ranking in the first epoch), TransR too, batch 4096, the
paper's layer, validation every epoch, patience 3, at most 10 epochs. The triple-attention
variants start their added modules neutral (start.neutral=mean: the attention as the mean
aggregator, the fusion as the identity); KGAT's attention has no weights to start. LightGCN
keeps its tuned settings (lr 5e-3, L2 1e-3, at most 300 epochs, patience 5); the other
baselines train from scratch with the paper's settings. L2 1e-2 for all (experiments/studies/
tune.py's selection for MF on ml-100k-kg), test rows logged for the curves.

    python experiments/studies/table2.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/ml-100k-kg --recipe configs/recipes/pretrained_mf.py \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k \
        --out docs/results/table2-ml-100k-kg

(table3.py, figure3.py and cold_start.py with the same options give the other tables.)

Measured (docs/notebook/results.md §2, ml-100k-kg, test recall@20 over 3 seeds): fm
0.3370 ± 0.0014, mf 0.3441 ± 0.0043, cke 0.3431 ± 0.0020, cfkg 0.3104 ± 0.0025, kgcn
0.3210 ± 0.0044, lightgcn 0.3547 ± 0.0044, kgat 0.3405 ± 0.0056, kgat_ax 0.3386 ± 0.0047;
Table 3: no_kge 0.3377 ± 0.0053, no_att_eu 0.3387 ± 0.0046, no_att_ei 0.3386 ± 0.0048, no_aux
0.3373 ± 0.0044. Section 3 (ml-latest-small, same recipe): fm 0.2193 ± 0.0068, mf
0.1972 ± 0.0016, cke 0.2043 ± 0.0097, cfkg 0.2284 ± 0.0038, kgcn 0.1964 ± 0.0072, kgat
0.1973 ± 0.0007, kgat_ax 0.1945 ± 0.0029.
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")


def starts_from(model: str) -> str | None:
  return "mf" if model in paper.FAMILY else None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  if args.model in ("mf", "lightgcn"):   # configs/mf.py, configs/lightgcn.py
    c = paper.recommended(args.model, args.dataset)
  else:
    c = paper.base(args.model, args.dataset)
    c.optim.l2 = 1e-2
  c.train.log_test = True
  if args.model in paper.FAMILY:
    c.optim.lr = c.optim.kg_lr = 1e-4
    c.train.batch_size = 4096
    c.train.epochs, c.train.eval_every, c.train.patience = 10, 1, 3
    if args.model != "kgat":   # KGAT's attention has no weights to start neutral
      c.start.neutral = "mean"
  return c
