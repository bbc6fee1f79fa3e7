"""configs/recipes/pretrained_mf.py with start.scale=2 for the KGAT family: MF's user and item
rows start doubled, which keeps MF's ranking but quarters the weight of the L2-normalised layer
outputs against it at the start of the fine-tune. Use a root whose mf-seedS runs are MF runs of
pretrained_mf.py (they are the same runs: MF's settings do not change).

    python experiments/studies/table3.py --dataset ../shared/data/bench/ml-100k-kg \
        --seeds 0 1 2 --root runs/m100-scale --recipe configs/recipes/pretrained_scale.py \
        --config.data.aux_from=../shared/data/raw/recbole-ml-100k \
        --out docs/results/table3-ml-100k-kg-scale

(table2.py with the same options and --models mf kgat kgat_ax gives Table 2.)

Measured (docs/notebook/results.md §2b, ml-100k-kg, test recall@20 over 3 seeds): kgat_ax
0.3422 ± 0.0033, no_kge 0.3427 ± 0.0034, no_att_eu 0.3422 ± 0.0033, no_att_ei 0.3422 ± 0.0032,
no_aux 0.3420 ± 0.0045, kgat 0.3417 ± 0.0048 (MF, the start of every row: 0.3441 ± 0.0043).
"""

from kgax.config import sibling

pretrained = sibling(__file__, "pretrained_mf.py")
paper = pretrained.paper
starts_from = pretrained.starts_from


def get_config(arg: str | None = None):
  c = pretrained.get_config(arg)
  if paper.parse(arg).model in paper.FAMILY:
    c.start.scale = 2.0
  return c
