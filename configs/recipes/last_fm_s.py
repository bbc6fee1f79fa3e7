"""The pretrained protocol (pretrained_mf.py) cut to what 2 CPU cores afford on last-fm-s.

last-fm-s has 337,178 training pairs; a KGAT epoch at batch 4096 is about 2 minutes. BPR-MF for at
most 100 epochs (validation every 5, patience 3), then the KGAT family from it for at most 3
epochs at lr 1e-4 (TransR too), batch 4096, validation every epoch, patience 1; the
triple-attention variants start neutral (start.neutral=mean). FM, CKE and CFKG train from
scratch for at most 50 epochs (patience 3). KGCN learns slowly but a step is cheap: at most
100 epochs, validated every 10 (patience 3); it scores every (user, item) pair through its
sampled neighbourhoods, so it logs no test rows. LightGCN at lr 5e-3, L2 1e-3, batch 4096, at
most 100 epochs (validation every 5, patience 3). L2 1e-2 otherwise, test rows logged.

    python experiments/studies/table2.py --dataset ../shared/data/bench/last-fm-s --seeds 0 1 2 \
        --root runs/last-fm-s --recipe configs/recipes/last_fm_s.py \
        --models fm mf cke cfkg kgcn lightgcn kgat kgat_ax --out docs/results/table2-last-fm-s

(table3.py --variants kgat_ax no_kge no_att_eu no_att_ei kgat, figure3.py and cold_start.py
with the same options give the other tables.)

Measured (docs/notebook/results.md §3b, last-fm-s, test recall@20 over 3 seeds): fm
0.2349 ± 0.0017, mf 0.2678 ± 0.0010, cke 0.2536 ± 0.0014, cfkg 0.2345 ± 0.0017, kgcn
0.2353 ± 0.0017, lightgcn 0.2670 ± 0.0020, kgat 0.2710 ± 0.0015, kgat_ax 0.2797 ± 0.0015;
Table 3: no_kge 0.2785 ± 0.0011, no_att_eu 0.2797 ± 0.0014, no_att_ei 0.2796 ± 0.0016. Cold
items ranked among the cold items only (cold-only recall@20): kgat_ax 0.2055 ± 0.0161, kgat
0.1469 ± 0.0324, mf 0.0046 ± 0.0001.
"""

from kgax.config import sibling

paper = sibling(__file__, "paper.py")


def starts_from(model: str) -> str | None:
  return "mf" if model in paper.FAMILY else None


def get_config(arg: str | None = None):
  args = paper.parse(arg)
  c = paper.base(args.model, args.dataset)
  c.optim.l2 = 1e-2
  c.train.log_test = True
  t = c.train
  if args.model == "mf":
    t.epochs, t.patience = 100, 3
  elif args.model in paper.FAMILY:
    c.optim.lr = c.optim.kg_lr = 1e-4
    t.batch_size, t.epochs, t.eval_every, t.patience = 4096, 3, 1, 1
    if args.model != "kgat":   # KGAT's attention has no weights to start neutral
      c.start.neutral = "mean"
  elif args.model in ("fm", "cke", "cfkg"):
    t.epochs, t.patience = 50, 3
  elif args.model == "kgcn":
    t.epochs, t.eval_every, t.patience, t.log_test = 100, 10, 3, False
  elif args.model == "lightgcn":
    c.optim.lr, c.optim.l2 = 5e-3, 1e-3
    t.batch_size, t.epochs, t.eval_every, t.patience = 4096, 100, 5, 3
  return c
