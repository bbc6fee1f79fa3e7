"""KGAT-AX, its ablations and KGAT (SPEC 2.5) on any dataset.

    kgax train --config configs/kgat_ax.py:dataset=ml-100k-kg,variant=no_aux --workdir runs/x

`dataset` is a registered name (ml-100k-kg, synthetic, synthetic-small, ...) or a folder in any
supported format. Hyperparameters default to the paper's.
"""

import ml_collections

VARIANTS = {
    "kgat_ax": {},
    "no_kge": {"use_kge": False},
    "no_att_eu": {"attend_users": False},
    "no_att_ei": {"attend_items": False},
    "no_aux": {"fusion": "none", "aux_edges": False},
    "kgat": {"attention": "kgat", "fusion": "none", "aux_edges": False},
}


def _parse(arg: str | None) -> dict:
  out = {"dataset": "ml-100k-kg", "variant": "kgat_ax"}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in out:
      raise ValueError(f"config argument {key!r}: expected one of {sorted(out)}")
    out[key] = value
  if out["variant"] not in VARIANTS:
    raise ValueError(f"config argument variant={out['variant']!r}: "
                     f"expected one of {sorted(VARIANTS)}")
  return out


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = _parse(arg)
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = args["dataset"]      # registered name or folder
  c.data.split_seed = 2026
  c.data.test_fraction = 0.2         # raw data only; pre-split data keeps its test set
  c.data.valid_fraction = 0.1        # carved out of train
  # MovieLens: ratings at or above this are positives; None: every rating
  c.data.min_rating = ml_collections.config_dict.placeholder(float)
  c.data.aux_from = ""               # folder whose aux facts (same user/item ids) are added
  c.data.kg_min_degree = 0           # > 1: drop non-item entities in fewer KG triples than this
  c.data.cold_items = 0.0            # fraction of items whose pairs all go to test (cold start)

  c.model = ml_collections.ConfigDict()
  c.model.name = "kgat"              # the model family (kgax/models/kgat.py)
  c.model.variant = args["variant"]
  c.model.embed_dim = 64
  c.model.relation_dim = 64
  c.model.layers = (64, 32, 16)
  c.model.attention = "triple"       # triple | kgat | mean
  c.model.aggregator = "bi"          # bi | gcn | graphsage | linear (LightGCN's: e(l+1) = e_agg)
  c.model.combine = "concat"         # concat (KGAT: e* = e(0) || ... || e(L)) | mean (LightGCN)
  c.model.edge_norm = "head"         # head: pi is the softmax over the head's edges (eq. 6) |
                                     # symmetric: times sqrt(deg(h) / deg(t)), so that uniform
                                     # weights are LightGCN's 1 / sqrt(deg(h) deg(t))
  c.model.normalize_layers = True    # L2-normalise each layer's output (KGAT)
  c.model.l2_on = "output"           # L2 on the batch's final representations e* (KGAT) | layer0:
                                     # on its rows of the node table (LightGCN)
  c.model.graph_l2 = 0.0             # CF-phase L2 on the KG-entity and aux rows of the node
                                     # table (0.5 * mean |row|^2), which layer0 leaves out
  c.model.fusion_l2 = 0.0            # CF-phase L2 on the fusion's distance from the identity,
                                     # 0.5 * |W_f - W_identity|^2 (the paper: no penalty)
  c.model.attention_l2 = 0.0         # CF-phase L2 on the triple attention's distance from its
                                     # neutral start (W1 = [0|0|I], or 0 with zero_messages)
  c.model.fusion = "holographic"     # holographic | hadamard | concat | none
  c.model.aux_edges = True
  c.model.use_kge = True
  c.model.attend_users = True
  c.model.attend_items = True
  c.model.message_dropout = 0.1
  c.model.node_dropout = 0.0         # KGAT's node dropout: each CKG edge dropped with this
                                     # probability per training step (kept ones scaled up)
  c.model.leaky_slope = 0.2
  c.model.drop_target_edges = False  # CF steps propagate without the batch's own (user, item)
                                     # edges, both directions
  c.model.identity_init = False      # the added modules start neutral, for fine-tuning from
                                     # pretrained embeddings: triple attention as the mean
                                     # aggregator (W1 = [0 | 0 | I], w2 = 0) and fusion as
                                     # e_v' = e_v
  c.model.zero_messages = False      # triple attention's W1 and w2 start at zero: no message, so
                                     # with aggregator=linear and combine=mean the model starts
                                     # exactly as the pretrained model whose rows it was given
  c.model.identity_aggregator = False  # aggregator starts as LeakyReLU(e_h + e_agg) (Wa = I,
                                       # truncated to the layer size; bi: Wb = 0)
  c.model.pretrained = ""            # BPR-MF (as KGAT does) or LightGCN workdir to initialise
                                     # users and items from; "{seed}" becomes the run's seed
  c.model.pretrained_spread = 0      # > 0: entities, aux nodes and items without a training
                                     # pair start as the mean of their pretrained neighbours,
                                     # spread this many hops (else as initialised)
  c.model.pretrained_scale = 1.0     # pretrained rows times this: same MF ranking, the
                                     # normalised layer outputs weigh 1 / scale^2 as much
  c.model.update(VARIANTS[args["variant"]])

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.kg_lr = 1e-3
  c.optim.l2 = 1e-5                  # lambda on the CF batch embeddings
  c.optim.kg_l2 = 1e-5
  c.optim.schedule = "alternate"     # alternate (CF then KG phase, own Adam states) | joint
  c.optim.lr_schedule = "constant"   # constant | cosine (warm-up, then decay over train.epochs)
  c.optim.warmup_epochs = 0.0
  c.optim.final_lr_fraction = 0.0    # cosine: the last step's lr as a fraction of lr
  c.optim.freeze = ()                # top-level parameter names kept fixed, e.g. ("node",)
  c.optim.freeze_epochs = 0.0        # ... for this many epochs; 0 = the whole run

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 200
  c.train.batch_size = 1024
  c.train.kg_batch_size = 2048
  c.train.train_item_negatives = False  # BPR negatives only from items with a training pair
  c.train.steps_per_call = 16        # optimizer steps per jitted call (lax.scan)
  c.train.eval_every = 5
  c.train.patience = 10              # evaluations without improvement before stopping
  c.train.select_metric = "recall@20"
  c.train.log_test = False           # also log test metrics at each evaluation (curves only)
  c.train.eval_start = False         # also evaluate before the first step (epoch 0), as a
                                     # selection candidate: a fine-tune can keep its start
  c.train.keep_checkpoints = 2
  c.train.distributed = False        # jax.distributed.initialize() for multi-host runs

  c.eval = ml_collections.ConfigDict()
  c.eval.ks = (20, 40, 60, 80, 100)
  c.eval.batch_size = 256
  return c


def sweep(add):
  """The paper's grid: learning rate x L2 coefficient lambda (KGAT's search space).

  experiments/tune.py runs it (or a part of it, with --grid) and selects on validation.
  """
  for lr in (1e-4, 1e-3, 5e-3, 1e-2):
    for l2 in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
      add(**{"optim.lr": lr, "optim.l2": l2})
