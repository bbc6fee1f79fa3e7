"""configs/recipes/*.py reproduce the JSON recipes they replaced (experiments/recipes/*.json),
for every model of the studies, with the retired field names mapped to the new ones."""

import pathlib
import re

import pytest

from kgax import config as config_lib, models, options, study

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "configs" / "recipes"

# The JSON recipes as they were (without "_doc"): {models: {field: --config value}}; "*" names
# every model, "a,b" several; a model takes "*" and then, in order, every entry naming it.
JSON = {
    "pretrained_mf": {   # pretrained.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "mf": {"train.epochs": "300", "train.patience": "5"},
        "kgat_ax,no_kge,no_att_eu,no_att_ei,no_aux": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
            "model.identity_init": "true",
        },
        "kgat": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
        },
        "lightgcn": {
            "optim.lr": "5e-3", "optim.l2": "1e-3", "train.epochs": "300", "train.patience": "5",
        },
    },
    "pretrained_scale": {   # pretrained-scale.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "mf": {"train.epochs": "300", "train.patience": "5"},
        "kgat_ax,no_kge,no_att_eu,no_att_ei,no_aux": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
            "model.identity_init": "true", "model.pretrained_scale": "2",
        },
        "kgat": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
            "model.pretrained_scale": "2",
        },
        "lightgcn": {
            "optim.lr": "5e-3", "optim.l2": "1e-3", "train.epochs": "300", "train.patience": "5",
        },
    },
    "pretrained_spread": {   # pretrained-spread.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "mf": {"train.epochs": "300", "train.patience": "5"},
        "kgat_ax": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
            "model.identity_init": "true", "model.pretrained_spread": "2",
        },
        "no_kge,no_att_eu,no_att_ei,no_aux": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
            "model.identity_init": "true",
        },
        "kgat": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "10", "train.eval_every": "1", "train.patience": "3",
            "model.pretrained_spread": "2",
        },
    },
    "lightgcn_start": {   # lightgcn-start.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "lightgcn": {
            "optim.lr": "5e-3", "optim.l2": "1e-3", "train.epochs": "300", "train.patience": "5",
        },
        "kgat": {
            "model.aggregator": "linear", "model.combine": "mean",
            "model.normalize_layers": "false", "model.layers": "(64,64,64)",
            "model.message_dropout": "0.0", "model.pretrained_spread": "2", "optim.lr": "1e-3",
            "optim.kg_lr": "1e-4", "optim.lr_schedule": "cosine", "train.batch_size": "4096",
            "train.epochs": "30", "train.eval_every": "2", "train.patience": "15",
        },
        "kgat_ax,no_kge,no_att_eu,no_att_ei,no_aux": {
            "model.aggregator": "linear", "model.combine": "mean", "model.identity_init": "true",
            "model.layers": "(64,64,64)", "model.message_dropout": "0.0",
            "model.normalize_layers": "false", "model.pretrained_scale": "4",
            "model.pretrained_spread": "2", "model.zero_messages": "true", "optim.kg_lr": "1e-4",
            "optim.lr": "1e-3", "optim.lr_schedule": "cosine", "train.batch_size": "4096",
            "train.epochs": "30", "train.eval_every": "2", "train.patience": "15",
        },
        "kgat_ax,no_kge,no_att_eu,no_att_ei": {"model.fusion_l2": "1"},
    },
    "lightgcn_start_paper_layer": {   # lightgcn-start-paper-layer.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "lightgcn": {
            "optim.lr": "5e-3", "optim.l2": "1e-3", "train.epochs": "300", "train.patience": "5",
        },
        "kgat,kgat_ax,no_kge,no_att_eu,no_att_ei,no_aux": {
            "model.identity_init": "true", "model.pretrained_scale": "1",
            "model.pretrained_spread": "0", "optim.lr": "1e-4", "optim.kg_lr": "1e-4",
            "train.batch_size": "4096", "train.epochs": "10", "train.eval_every": "1",
            "train.patience": "3",
        },
    },
    "last_fm_s": {   # last-fm-s.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "mf": {"train.epochs": "100", "train.patience": "3"},
        "kgat_ax,no_kge,no_att_eu,no_att_ei,no_aux": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "3", "train.eval_every": "1", "train.patience": "1",
            "model.identity_init": "true",
        },
        "kgat": {
            "optim.lr": "1e-4", "optim.kg_lr": "1e-4", "train.batch_size": "4096",
            "train.epochs": "3", "train.eval_every": "1", "train.patience": "1",
        },
        "fm,cke,cfkg": {"train.epochs": "50", "train.patience": "3"},
        "kgcn": {
            "train.epochs": "100", "train.eval_every": "10", "train.patience": "3",
            "train.log_test": "false",
        },
        "lightgcn": {
            "optim.lr": "5e-3", "optim.l2": "1e-3", "train.batch_size": "4096",
            "train.epochs": "100", "train.eval_every": "5", "train.patience": "3",
        },
    },
    "scratch": {   # scratch.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "kgat_ax,kgat": {
            "optim.lr": "5e-3", "optim.lr_schedule": "cosine", "optim.warmup_epochs": "1",
            "train.batch_size": "4096", "train.epochs": "40", "train.eval_every": "2",
            "train.patience": "5",
        },
    },
    "scratch_ml_100k_kg": {   # scratch-ml-100k-kg.json
        "*": {"optim.l2": "1e-2", "train.log_test": "true"},
        "mf": {"train.epochs": "300", "train.patience": "5"},
        "kgat_ax,kgat": {
            "optim.lr": "5e-3", "train.batch_size": "4096", "train.epochs": "30",
            "train.eval_every": "2", "train.patience": "4",
        },
    },
}
# What the KGAT family started from in each recipe's study command (--pretrain and
# --pretrain-from); None: trained from scratch. The other models never started from a run.
PRETRAIN = {"pretrained_mf": "mf", "pretrained_scale": "mf", "pretrained_spread": "mf",
            "lightgcn_start": "lightgcn", "lightgcn_start_paper_layer": "lightgcn",
            "last_fm_s": "mf", "scratch": None, "scratch_ml_100k_kg": None}
# The variants' switches (kgat model options) and the models the JSON recipes were run with.
VARIANTS = {"kgat_ax": {}, "no_kge": {"use_kge": False}, "no_att_eu": {"attend_users": False},
            "no_att_ei": {"attend_items": False},
            "no_aux": {"fusion": "none", "aux_edges": False},
            "kgat": {"attention": "kgat", "fusion": "none", "aux_edges": False}}
MODELS = ("fm", "mf", "cke", "cfkg", "kgcn", "lightgcn", *VARIANTS)
RENAMED = {"model.pretrained_scale": "start.scale", "model.pretrained_spread": "start.spread"}


def json_fields(recipe: str, model: str) -> dict[str, str]:
  fields = dict(JSON[recipe].get("*", {}))
  for key, entry in JSON[recipe].items():
    if model in (part.strip() for part in key.split(",")):
      fields.update(entry)
  return fields


def mapped(fields: dict[str, str]) -> dict[str, str]:
  """Old field names as new ones: model.identity_init is start.neutral=mean, and with
  model.zero_messages start.neutral=zero."""
  out = {RENAMED.get(k, k): v for k, v in fields.items()
         if k not in ("model.identity_init", "model.zero_messages")}
  assert fields.get("model.zero_messages", "false") == "false" or \
      fields.get("model.identity_init") == "true"
  if fields.get("model.identity_init") == "true":
    out["start.neutral"] = "zero" if fields.get("model.zero_messages") == "true" else "mean"
  return out


def paper_default(model: str):
  """The config the JSON fields were applied to: the model's options defaults (the KGAT family:
  kgat.Options and the variant's switches) at the paper's L2 1e-5."""
  if model in VARIANTS:
    c = options.default_config("kgat", "ds")
    c.name = model
    c.model.update(VARIANTS[model])
  else:
    c = options.default_config(model, "ds")
  c.optim.l2 = 1e-5
  return c


def recipe_config(recipe: str, model: str):
  return config_lib.load_file(f"{RECIPES / recipe}.py:model={model},dataset=ds")


@pytest.mark.parametrize("recipe", sorted(JSON))
def test_recipe_reproduces_its_json_for_every_model(recipe):
  module = config_lib.load_module(str(RECIPES / f"{recipe}.py"))
  for model in MODELS:
    got = options.parse(recipe_config(recipe, model)).to_dict()
    fields = mapped(json_fields(recipe, model))
    # every JSON field has its value in the recipe's config ...
    again = config_lib.apply_overrides(recipe_config(recipe, model), fields)
    assert options.parse(again).to_dict() == got, (recipe, model)
    # ... and every other field keeps the paper's default
    want = config_lib.apply_overrides(paper_default(model), fields)
    assert got == options.parse(want).to_dict(), (recipe, model)
    source = PRETRAIN[recipe] if model in VARIANTS else None
    assert module.starts_from(model) == source, (recipe, model)


def test_mapped_names_reach_the_start_section():
  got = options.parse(recipe_config("lightgcn_start", "kgat_ax"))
  assert (got.start.neutral, got.start.scale, got.start.spread) == ("zero", 4.0, 2)
  assert got.model.fusion_l2 == 1.0 and got.name == "kgat_ax"
  got = options.parse(recipe_config("pretrained_mf", "no_aux"))
  assert (got.start.neutral, got.model.fusion, got.optim.lr) == ("mean", "none", 1e-4)
  assert options.parse(recipe_config("pretrained_mf", "kgat")).start.neutral == ""


def test_paper_recipe_is_the_paper_defaults_from_scratch():
  module = config_lib.load_module(str(RECIPES / "paper.py"))
  for model in MODELS:
    got = options.parse(recipe_config("paper", model))
    assert got.to_dict() == options.parse(paper_default(model)).to_dict(), model
    assert module.starts_from(model) is None and not got.start.pretrained
  k = options.parse(recipe_config("paper", "kgat"))
  assert (k.optim.l2, k.optim.lr, k.train.batch_size, k.train.epochs) == (1e-5, 1e-3, 1024, 200)
  assert (k.model.layers, k.model.aggregator, k.model.attention) == ((64, 32, 16), "bi", "kgat")


@pytest.mark.parametrize("recipe", sorted(p.stem for p in RECIPES.glob("*.py")))
def test_every_recipe_builds_every_model_and_documents_its_command(recipe):
  names = [m for m in study.MODELS if m in VARIANTS or m in models.NAMES]
  for model in names:
    options.parse(recipe_config(recipe, model))
  doc = config_lib.load_module(str(RECIPES / f"{recipe}.py")).__doc__
  assert f"configs/recipes/{recipe}.py" in doc
  assert re.search(r"docs/(notebook/)?results\.md", doc), "its measured result's page"
  with pytest.raises(options.ConfigError, match="variant=|model.name|argument model="):
    recipe_config(recipe, "nope")


def test_protocol_jobs_follow_the_recipe(tmp_path):
  """A recipe's starts_from orders the runs and points the fine-tunes at them."""
  jobs = study.protocol_jobs(["kgat_ax", "kgat"], "ds", [0, 1], tmp_path,
                             recipe=str(RECIPES / "lightgcn_start.py"))
  assert [j.name for j in jobs] == ["lightgcn-seed0", "lightgcn-seed1", "kgat_ax-seed0",
                                    "kgat_ax-seed1", "kgat-seed0", "kgat-seed1"]
  assert jobs[0].config.start.pretrained == ""
  assert jobs[2].config.start.pretrained == str(tmp_path / "lightgcn-seed{seed}")
  assert [j.config.seed for j in jobs[2:4]] == [0, 1]
  scratch = study.protocol_jobs(["kgat_ax"], "ds", [0], tmp_path,
                                recipe=str(RECIPES / "scratch.py"))
  assert [j.name for j in scratch] == ["kgat_ax-seed0"] and not scratch[0].config.start.pretrained


def test_last_fm_s_lightgcn_start_cuts_only_the_epochs():
  """Its LightGCN is last_fm_s.py's run to early stopping (G2's runs are reused), its KGAT
  family the recommended config with 10 epochs validated every epoch."""
  lgcn = recipe_config("last_fm_s_lightgcn_start", "lightgcn").to_dict()
  ref = recipe_config("last_fm_s", "lightgcn")
  ref.train.epochs = 300
  assert lgcn == ref.to_dict()
  k = recipe_config("last_fm_s_lightgcn_start", "kgat_ax")
  rec = study.model_config("kgat_ax", "ds")
  assert (k.train.epochs, k.train.eval_every, k.train.patience) == (10, 1, 3)
  assert k.model.to_dict() == rec.model.to_dict() and k.start.to_dict() == rec.start.to_dict()
  assert k.optim.to_dict() == rec.optim.to_dict()
