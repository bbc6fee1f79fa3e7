"""The recommended protocol (lightgcn_start.py) cut to what 2 CPU cores afford on last-fm-s.

LightGCN as in last_fm_s.py, run to early stopping (at most 300 epochs, validation every 5,
patience 3; lr 5e-3, L2 1e-3, batch 4096). KGAT-AX starts as that LightGCN model
(configs/kgat_ax.py: LightGCN's layer, rows scaled by 4, messages at zero, fusion the identity)
and is fine-tuned for at most 10 epochs (cosine decay from lr 1e-3 over them), validated every
epoch, patience 3: a KGAT-AX epoch on last-fm-s is about 2-3 minutes on 2 CPU cores, so the
recommended 30 epochs do not fit three seeds. Test rows logged.

    python experiments/studies/table2.py --dataset ../shared/data/bench/last-fm-s --seeds 0 1 2 \
        --root runs/lfm-lgcn-start --recipe configs/recipes/last_fm_s_lightgcn_start.py \
        --models lightgcn kgat_ax --out docs/results/table2-last-fm-s-lgcn-start

(its LightGCN runs are G2's: link runs/lfm-uncapped/lightgcn-seedS into the root first.)

Measured (docs/results.md, last-fm-s, row R; test over 3 seeds): kgat_ax recall@20
0.2882 ± 0.0016, ndcg@20 0.1886 ± 0.0009 (best epochs 7, 9, 7), against its LightGCN start
0.2754 ± 0.0012 and 0.1748 ± 0.0003: +4.66% and +7.92%. Its KG controls (controls.py with the
same options): no KG 0.2796 ± 0.0025, shuffled 0.2811 ± 0.0028, real
0.2882 ± 0.0016.
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")
last_fm_s = sibling(__file__, "last_fm_s.py")


def starts_from(model: str) -> str | None:
  return "lightgcn" if model in paper.FAMILY else None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  if args.model in paper.FAMILY:
    c = paper.recommended(args.model, args.dataset)
    c.train.epochs, c.train.eval_every, c.train.patience = 10, 1, 3
    c.train.log_test = True
  else:
    c = last_fm_s.get_config(arg)
    if args.model == "lightgcn":
      c.train.epochs = 300
  return c
