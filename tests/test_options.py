"""Options: every bad value stops `options.parse` (and the CLI) with one line naming its field."""

import dataclasses
import pathlib

import ml_collections
import numpy as np
import pytest

from kgax import cli, models, options

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "configuration.md"


def _config(model="kgat", **fields):
  """default_config(model) with dotted `fields` ("train__epochs" for train.epochs) set."""
  c = options.default_config(model)
  for key, value in fields.items():
    section, _, name = key.partition("__")
    if name:
      c[section][name] = value
    else:
      c[section] = value
  return c


def _error(c) -> str:
  with pytest.raises(options.ConfigError) as e:
    options.parse(c)
  message = str(e.value)
  assert "\n" not in message
  return message


def _available(name: str) -> bool:
  return (REPO / "kgax" / "models" / f"{name}.py").is_file()


@pytest.mark.parametrize("fields,start", [
    (dict(optim__lr=-1), "config.optim.lr=-1.0: expected a positive number"),
    (dict(optim__lr=-1e-5), "config.optim.lr=-1e-05: expected a positive number"),
    (dict(optim__lr=0.0), "config.optim.lr=0.0: expected a positive number"),
    (dict(optim__kg_lr=-1e-3), "config.optim.kg_lr=-0.001: expected a positive number"),
    (dict(optim__l2=-0.1), "config.optim.l2=-0.1: expected a number >= 0"),
    (dict(optim__final_lr_fraction=1.5), "config.optim.final_lr_fraction=1.5: expected"),
    (dict(optim__schedule="both"), "config.optim.schedule='both': expected one of"),
    (dict(train__epochs=-3), "config.train.epochs=-3: expected a positive number"),
    (dict(train__batch_size=0), "config.train.batch_size=0: expected a positive number"),
    (dict(train__eval_every=0), "config.train.eval_every=0: expected a positive number"),
    (dict(train__kg_batch_size=-8), "config.train.kg_batch_size=-8: expected a positive"),
    (dict(train__patience=0), "config.train.patience=0: expected a positive number"),
    (dict(train__select_metric="recal@20"), "config.train.select_metric='recal@20': expected"),
    (dict(train__select_metric="recall@7"), "config.train.select_metric='recall@7': expected"),
    (dict(train__select_metric="recall"), "config.train.select_metric='recall': expected"),
    (dict(data__kg="random"), "config.data.kg='random': expected one of ('full', 'none', "
                              "'shuffled')"),
    (dict(data__test_fraction=1.5), "config.data.test_fraction=1.5: expected"),
    (dict(data__valid_fraction=-0.1), "config.data.valid_fraction=-0.1: expected"),
    (dict(data__name=""), "config.data.name='': expected"),
    (dict(start__neutral="x"), "config.start.neutral='x': expected one of ('', 'mean', 'zero')"),
    (dict(start__scale=0.0), "config.start.scale=0.0: expected a positive number"),
    (dict(start__spread=-1), "config.start.spread=-1: expected a number >= 0"),
    (dict(eval__ks=()), "config.eval.ks=(): expected positive cut-offs"),
    (dict(eval__ks=(20, 0)), "config.eval.ks=(20, 0): expected positive cut-offs"),
    (dict(eval__batch_size=0), "config.eval.batch_size=0: expected a positive number"),
])
def test_bad_value_is_named(fields, start):
  assert _error(_config(**fields)).startswith(start)


def test_a_model_built_from_kg_relations_refuses_data_kg_none():
  assert _error(_config("kgin", data__kg="none")) == (
      "config.data.kg='none': kgin is built from KG relations, so it cannot train without a KG")
  assert options.parse(_config("kgin", data__kg="shuffled")).kg_need == (
      "kgin is built from KG relations")


@pytest.mark.parametrize("model", ["cke", "cfkg"])
def test_a_kg_loss_on_kg_triples_has_no_phase_under_data_kg_none(model):
  """CKE's and CFKG's KG loss trains on KG triples only: with the KG shuffled it keeps its
  phase (and needs the triples); under the no-KG control the model trains on interactions."""
  shuffled = options.parse(_config(model, data__kg="shuffled"))
  assert shuffled.kg_phase and shuffled.kg_need == f"{model}'s KG loss trains on KG triples"
  none = options.parse(_config(model, data__kg="none"))
  assert not none.kg_phase and none.kg_need == ""
  kgat = options.parse(_config("kgat", data__kg="none"))   # TransR on interact and aux edges
  assert kgat.kg_phase


def test_build_refuses_a_model_that_needs_kg_triples_on_a_dataset_without_any(tmp_path):
  """A KGAT folder without kg_final.txt has an empty KG: CFKG is refused with one line naming
  the dataset, before any training; MF builds."""
  from kgax import experiment
  from kgax.data.kgat import write_kgat
  write_kgat(tmp_path / "nokg", np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2]]),
             np.array([[0, 2], [1, 0], [2, 1]]))
  with pytest.raises(options.ConfigError) as info:
    experiment.build(_config("cfkg", data__name=str(tmp_path / "nokg")))
  assert str(info.value) == ("config.model.name='cfkg': cfkg's KG loss trains on KG triples and "
                             "nokg has none")
  assert experiment.build(_config("mf", data__name=str(tmp_path / "nokg"))).graph.n_items == 3


@pytest.mark.parametrize("model", ["mf", "fm", "kgcn", "lightgcn", "kgat"])
def test_a_model_without_kg_triples_trains_on_data_kg_none(model):
  assert options.parse(_config(model, data__kg="none")).kg_need == ""


def test_select_metric_names_the_allowed_metrics_and_ks():
  message = _error(_config(train__select_metric="recall@7"))
  assert "K in eval.ks (20, 40, 60, 80, 100)" in message
  assert "recall" in message.partition("METRIC in")[2]
  c = _config(train__select_metric="ndcg@5")
  c.eval.ks = (5, 10)
  assert options.parse(c).train.select_metric == "ndcg@5"   # K is read from eval.ks


@pytest.mark.parametrize("model", ["kgat", "mf", "fm", "cke", "cfkg", "kgcn", "lightgcn"])
def test_model_embed_dim_zero_is_named(model):
  message = _error(_config(model, model__embed_dim=0))
  assert message.startswith("config.model.")
  assert "embed_dim=0" in message


@pytest.mark.parametrize("field,value,expected", [
    ("train.epochs", "10", "expected an integer"),
    ("train.epochs", 2.5, "expected an integer"),
    ("train.batch_size", True, "expected an integer"),
    ("data.split_seed", False, "expected an integer"),
    ("optim.lr", "fast", "expected a number"),
    ("optim.lr", True, "expected a number"),
    ("optim.lr", float("nan"), "expected a number"),
    ("train.log_test", 1, "expected true or false"),
    ("data.kg", 3, "expected a string"),
    ("data.name", None, "expected a string"),
    ("eval.ks", 20, "expected a tuple of int"),
    ("eval.ks", (20, "40"), "expected an integer"),   # names the bad item
    ("model.embed_dim", "64", "expected an integer"),
    ("model.fusion_l2", "none", "expected a number"),
    ("seed", "0", "expected an integer"),
    ("name", 3, "expected a string"),
])
def test_wrong_type_is_named(field, value, expected):
  c = options.default_config("kgat").to_dict()   # a plain dict takes any type
  *parents, leaf = field.split(".")
  node = c
  for p in parents:
    node = node[p]
  node[leaf] = value
  message = _error(c)
  shown = value[1] if isinstance(value, tuple) else value
  assert message.startswith(f"config.{field}={shown!r}: {expected}")


@pytest.mark.parametrize("section,field", [
    ("train", "epoch"), ("data", "nam"), ("optim", "learning_rate"), ("start", "pretrain"),
    ("eval", "k"), ("model", "embed"), ("model", "drop_target_edges"), (None, "sed"),
    (None, "trian")])
def test_unknown_field_is_named(section, field):
  c = _config()
  if section is None:
    c[field] = 1
    dotted = field
  else:
    c[section][field] = 1
    dotted = f"{section}.{field}"
  message = _error(c)
  assert message.startswith(f"config.{dotted}: no such field (expected one of ")
  if section == "train":
    assert "epochs" in message   # lists the fields it could have meant


def test_unknown_and_missing_model_name_are_named():
  message = _error(_config(model__name="gat"))
  assert message.startswith("config.model.name='gat': expected one of")
  assert "'kgat'" in message and "'lightgcn'" in message
  c = _config()
  del c.model["name"]
  assert _error(c).startswith("config.model.name: missing")


@pytest.mark.parametrize("model", ["mf", "lightgcn"])
def test_neutral_start_needs_a_model_that_has_one(model):
  message = _error(_config(model, start__neutral="mean"))
  assert message.startswith(f"config.start.neutral='mean': expected '' ({model} has no "
                            f"neutral start)")
  assert options.parse(_config("kgat", start__neutral="zero")).start.neutral == "zero"


@pytest.mark.parametrize("name", models.NAMES)
def test_default_config_parses_to_the_defaults(name):
  if not _available(name):
    pytest.skip(f"kgax/models/{name}.py is not written yet")
  c = options.default_config(name)
  assert isinstance(c, ml_collections.ConfigDict)
  opts = options.parse(c)
  lib = models.get(name)
  assert opts.model == lib.Options()
  assert opts.model_lib is lib
  assert (opts.seed, opts.name) == (0, name)
  for key, cls in options.SECTIONS.items():
    assert getattr(opts, key) == cls()
  # every field is in the ConfigDict, so each one can be overridden
  assert set(c.model) == {f.name for f in dataclasses.fields(lib.Options)}
  for key, cls in options.SECTIONS.items():
    assert set(c[key]) == {f.name for f in dataclasses.fields(cls)}


def test_default_config_takes_the_dataset():
  assert options.parse(options.default_config("mf", "synthetic-tiny")).data.name == \
      "synthetic-tiny"
  c = options.default_config("mf")
  c.data.min_rating = 4.0   # the placeholder keeps None-valued fields overridable
  assert options.parse(c).data.min_rating == 4.0


def test_parse_error_is_a_value_error_on_one_line():
  assert issubclass(options.ConfigError, ValueError)
  with pytest.raises(ValueError, match=r"^config\.train\.epochs=-3"):
    options.parse(_config(train__epochs=-3))


def test_parse_arg_refuses_unknown_keys():
  args = options.parse_arg("model=mf,dataset=x", model="kgat", dataset="d")
  assert (args.model, args.dataset) == ("mf", "x")
  with pytest.raises(options.ConfigError, match="config argument 'modle=mf'"):
    options.parse_arg("modle=mf", model="kgat")
  with pytest.raises(options.ConfigError, match="config argument 'model'"):
    options.parse_arg("model", model="kgat")


def test_cli_refuses_a_bad_value_before_writing_anything(tmp_path, capsys):
  workdir = tmp_path / "run"
  rc = cli.main(["train", "--config", str(REPO / "configs" / "test.py"), "--workdir",
                 str(workdir), "--config.optim.lr=-1"])
  out, err = capsys.readouterr()
  assert rc == 2
  assert err.startswith("kgax: error: config.optim.lr")
  assert err == "kgax: error: config.optim.lr=-1.0: expected a positive number\n"
  assert not workdir.exists()
  assert list(tmp_path.iterdir()) == []
  assert out == ""


@pytest.mark.parametrize("override,start", [
    ("--config.train.epoch=3", "kgax: error: --config.train.epoch: no such field"),
    ("--config.train.select_metric=recall@7", "kgax: error: config.train.select_metric"),
    ("--config.data.kg=random", "kgax: error: config.data.kg='random'"),
])
def test_cli_names_other_bad_overrides(tmp_path, capsys, override, start):
  workdir = tmp_path / "run"
  rc = cli.main(["train", "--config", f"{REPO / 'configs' / 'test.py'}:model=mf", "--workdir",
                 str(workdir), override])
  err = capsys.readouterr().err
  assert rc == 2
  assert err.startswith(start) and err.count("\n") == 1
  assert not workdir.exists()


@pytest.mark.parametrize("name", models.NAMES)
def test_test_config_parses_for_every_model(name):
  if not _available(name):
    pytest.skip(f"kgax/models/{name}.py is not written yet")
  from kgax import config as config_lib
  opts = options.parse(config_lib.load_file(f"{REPO / 'configs' / 'test.py'}:model={name}"))
  assert opts.model.name == name
  assert opts.model.embed_dim == 16 and opts.eval.ks == (5, 10, 20)


def test_markdown_lists_every_field():
  text = options.markdown()
  for key, cls in options.SECTIONS.items():
    for f in dataclasses.fields(cls):
      assert f"| `{key}.{f.name}` |" in text
  for name in models.NAMES:
    if _available(name):
      assert f"## model: {name}" in text
      for f in dataclasses.fields(models.get(name).Options):
        assert f"| `model.{f.name}` |" in text
  for line in text.splitlines():   # each table row has exactly its three cells
    if line.startswith("| `"):
      assert line.replace("\\|", "").count("|") == 4, line
  # the documented error line is the one the CLI prints
  assert "`kgax: error: config.optim.lr=-1.0: expected a positive number`" in text


def test_configuration_doc_is_current():
  stale = "docs/configuration.md is stale: regenerate it with `python -m kgax.options " \
          "--markdown docs/configuration.md`"
  assert DOCS.is_file(), stale
  generated, marker, guide = DOCS.read_text().partition(options.HAND_WRITTEN)
  assert marker and generated == options.markdown() + "\n", stale
  assert "## Devices, meshes and processes" in guide


def test_regenerating_keeps_the_hand_written_guide(tmp_path):
  doc = tmp_path / "c.md"
  doc.write_text("stale tables\n" + options.HAND_WRITTEN + "\n## Guide\nkept\n")
  options.write_markdown(str(doc))
  assert doc.read_text() == (options.markdown() + "\n" + options.HAND_WRITTEN
                             + "\n## Guide\nkept\n")
