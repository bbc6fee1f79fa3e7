#!/usr/bin/env bash
# Does KGAT-AX take up a dataset's KG under other fine-tune settings? Seed 0, one LightGCN start,
# each setting with the real and the shuffled KG (data.kg=shuffled); then LightGCN's layer over
# the CKG from scratch, alone and with TransE beside it, and KGAT-AX fine-tuned from each
# instead of from LightGCN. docs/kg-uptake.md reports the table; about
# 2.5 h on 2 CPU cores.
# Finished runs are skipped (kgax train resumes a workdir).
#
#   bash experiments/diagnostics/kg_uptake_probe.sh [DATASET] [ROOT]
#   python experiments/diagnostics/message_terms.py ROOT/default-full
set -euo pipefail
D=${1:-../shared/data/raw/ml-latest-small}
R=${2:-runs/probe}

kgax train --config "configs/lightgcn.py:dataset=$D" --workdir "$R/lightgcn-seed0"
finetune() {   # NAME KG [--config.FIELD=VALUE ...]
  local name=$1 kg=$2
  shift 2
  kgax train --config "configs/kgat_ax.py:dataset=$D$VARIANT" --workdir "$R/$name-$kg" \
      --config.start.pretrained="$R/lightgcn-seed0" --config.data.kg="$kg" "$@"
}
VARIANT=""
for kg in full shuffled; do
  finetune default "$kg"
  finetune lr3e-3 "$kg" --config.optim.lr=3e-3
  finetune kg_lr1e-3 "$kg" --config.optim.kg_lr=1e-3
  finetune neutral_mean "$kg" --config.start.neutral=mean
  finetune triple_tail "$kg" --config.model.attention=triple_tail
  finetune transe_kg_lr1e-3 "$kg" --config.model.kge=transe --config.optim.kg_lr=1e-3
done
finetune kg_lr1e-2 full --config.optim.kg_lr=1e-2
VARIANT=",variant=kgat" finetune kgat full

for kg in full shuffled; do   # from scratch: LightGCN's layer over the CKG, no TransR, no aux
  kgax train --config "configs/kgat_ax.py:dataset=$D,variant=no_aux" --workdir "$R/ckg_long-$kg" \
      --config.model.attention=mean --config.model.use_kge=False --config.start.scale=1.0 \
      --config.start.neutral= --config.optim.lr=5e-3 --config.optim.lr_schedule=constant \
      --config.train.batch_size=2048 --config.train.epochs=600 --config.train.eval_every=5 \
      --config.train.patience=20 --config.data.kg="$kg"
done
for kg in full shuffled; do   # the same with TransE on every CKG edge (CFKG's KG loss) beside it
  kgax train --config "configs/recipes/ckg_transe.py:model=no_aux,dataset=$D" \
      --workdir "$R/joint_transe-$kg" --config.data.kg="$kg"
done
for kg in full shuffled; do   # KGAT-AX started from those runs (their output rows), not LightGCN's
  for start in ckg_long joint_transe; do
    kgax train --config "configs/kgat_ax.py:dataset=$D" --workdir "$R/from_$start-$kg" \
        --config.start.pretrained="$R/$start-$kg" --config.data.kg="$kg"
  done
done
