"""experiments/diagnostics/compare_recbole.py without RecBole: the atomic files, the settings,
the log parser, the runner file and the kgax side's bench process."""

import json
import pathlib
import py_compile
import sys

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments" / "diagnostics"))
import compare_recbole  # noqa: E402
from kgax.data import kgat, split as split_lib  # noqa: E402

# 5 users, 6 items (entities 0..5), entities 6..8 beyond the items. Item 4 has no interactions,
# item 5 no KG triple (its link would dangle).
TRAIN = np.array([[u, i] for u in range(5) for i in range(4) if (u + i) % 4 != 3] + [[0, 5]])
TEST = np.array([[0, 3], [1, 2], [2, 5], [3, 0], [4, 3]])   # none also in TRAIN
KG = np.array([[0, 0, 6], [1, 0, 6], [2, 1, 7], [7, 2, 3], [4, 1, 8], [8, 0, 6]])


def _inter(file: pathlib.Path) -> np.ndarray:
  df = pd.read_csv(file, sep="\t", dtype=str)
  assert list(df.columns) == ["user_id:token", "item_id:token"]
  return df.to_numpy().astype(np.int64)


def _folder(tmp_path) -> pathlib.Path:
  src = tmp_path / "tiny"
  kgat.write_kgat(src, TRAIN, TEST, KG)
  return src


def test_atomic_files_reproduce_kgax_split(tmp_path):
  src = _folder(tmp_path)
  _, ds, _, folder, counts = compare_recbole.convert(str(src), {}, tmp_path / "work")
  want = split_lib.split_dataset(kgat.read_kgat(src), seed=2026, valid_fraction=0.1)
  assert folder == tmp_path / "work" / "tiny" and len(want.valid) > 0
  for part in ("train", "valid", "test"):
    np.testing.assert_array_equal(_inter(folder / f"tiny.{part}.inter"), getattr(want, part))

  kg = pd.read_csv(folder / "tiny.kg", sep="\t", dtype=str)
  assert list(kg.columns) == ["head_id:token", "relation_id:token", "tail_id:token"]
  assert kg.iloc[3].tolist() == ["e7", "r2", "e3"] and len(kg) == len(KG)

  link = pd.read_csv(folder / "tiny.link", sep="\t", dtype=str)
  assert list(link.columns) == ["item_id:token", "entity_id:token"]
  assert link.to_numpy().tolist() == [[str(i), f"e{i}"] for i in range(5)]   # item 5 dropped
  assert counts["dropped_links"] == 1 and counts["linked_items"] == 5

  item = pd.read_csv(folder / "tiny.item", sep="\t", dtype=str)
  assert list(item.columns) == ["item_id:token"]
  assert item["item_id:token"].tolist() == [str(i) for i in range(ds.n_items)] and ds.n_items == 6


def test_overrides_reach_the_split(tmp_path):
  src = _folder(tmp_path)
  cfg, _, got, folder, _ = compare_recbole.convert(str(src), {"data.split_seed": "7"}, tmp_path)
  want = split_lib.split_dataset(kgat.read_kgat(src), seed=7, valid_fraction=0.1)
  assert cfg.model.attention == "kgat" and cfg.data.split_seed == 7
  np.testing.assert_array_equal(got.valid, want.valid)
  np.testing.assert_array_equal(_inter(folder / "tiny.valid.inter"), want.valid)


def test_recbole_settings_follow_kgax_config(tmp_path):
  cfg = compare_recbole.kgax_config("synthetic", "kgat", {"train.batch_size": "512"})
  s = compare_recbole.recbole_settings(cfg, tmp_path / "ds", n_items=100, epochs=3)
  assert (s["dataset"], s["epochs"], s["train_batch_size"], s["layers"]) == ("ds", 3, 512,
                                                                             [64, 32, 16])
  assert s["benchmark_filename"] == ["train", "valid", "test"] and s["embedding_size"] == 64
  assert s["eval_batch_size"] == cfg.eval.batch_size * 100 and s["learning_rate"] == cfg.optim.lr


# Lines as RecBole 1.2.1 logs them; on a terminal its set_color adds ANSI colour codes.
LOG = "".join(line + "\n" for line in (
    "24 Nov 08:34    INFO  [Training]: train_batch_size = [1024] train_neg_sample_args: [...]",
    "24 Nov 08:37    INFO  epoch 0 training [time: 188.31s, train_loss1: 34.2360, "
    "train_loss2: 73.1685]",
    "24 Nov 08:37    INFO  epoch 0 evaluating [time: 0.36s, valid_score: 0.054800]",
    "24 Nov 08:38    INFO  \x1b[1;32mepoch 1 training\x1b[0m [\x1b[1;34mtime\x1b[0m: 17.52s, "
    "\x1b[1;34mtrain_loss1\x1b[0m: 30.1000]",
    "24 Nov 08:38    INFO  epoch 10 training [time: 9.5s, train loss: 3.0000]"))


def test_parse_epoch_times():
  assert compare_recbole.parse_epoch_times(LOG) == [188.31, 17.52, 9.5]
  assert compare_recbole.parse_epoch_times("no epochs here\n") == []


def test_table_ratios():
  rows = [{"system": "RecBole", "model": "KGAT", "epoch_seconds": 20.0, "eval_seconds": 1.0},
          {"system": "kgax", "model": "KGAT", "epoch_seconds": 5.0, "eval_seconds": 0.5}]
  md = compare_recbole.table(rows).splitlines()
  assert md[0].startswith("| system |") and len(md) == 4
  assert md[3] == "| kgax | KGAT | 5.00 | 0.50 | 4.00 | 2.00 |"


def test_table_with_evaluation_only():
  """--epochs 0: RecBole has no epoch time, kgax's is an estimate; the evaluation ratio stays."""
  rows = [{"system": "RecBole", "model": "KGAT", "epoch_seconds": None, "eval_seconds": 3.0},
          {"system": "kgax", "model": "KGAT", "epoch_seconds": 240.0, "eval_seconds": 2.0,
           "epoch_estimated": True}]
  md = compare_recbole.table(rows).splitlines()
  assert md[2] == "| RecBole | KGAT | - | 3.00 | - | 1.00 |"
  assert md[3] == "| kgax | KGAT | 240.00 (est.) | 2.00 | - | 1.50 |"


def test_runner_is_its_own_script_reading_the_settings_path(tmp_path):
  """RecBole's side is a file of its own, run with the RecBole environment's python and given
  the settings file (it cannot be imported here: no torch in kgax's environment)."""
  assert compare_recbole.RUNNER.is_file() and compare_recbole.RUNNER.parent == \
      compare_recbole.REQUIREMENTS.parent
  py_compile.compile(str(compare_recbole.RUNNER), cfile=str(tmp_path / "r.pyc"), doraise=True)
  text = compare_recbole.RUNNER.read_text()
  assert "sys.argv[1]" in text and "kgax" not in text.split('"""')[2]
  assert "import recbole" not in pathlib.Path(compare_recbole.__file__).read_text()


def test_kgax_side_runs_bench_in_its_own_process(tmp_path):
  folder = tmp_path / "work" / "synthetic-tiny"
  folder.mkdir(parents=True)
  tiny = {"train.batch_size": "128", "train.kg_batch_size": "256", "train.steps_per_call": "4",
          "eval.batch_size": "64", "model.embed_dim": "16"}
  res = compare_recbole.bench_kgax("synthetic-tiny", "kgat_ax", tiny, 0, folder)
  assert (res["model"], res["variant"], res["batch_size"]) == ("kgat", "kgat_ax", 128)
  assert res["layers"] == [64, 32, 16] and not res["epoch_measured"] and res["eval_seconds"] > 0
  assert json.loads((tmp_path / "work" / "kgax-kgat_ax.json").read_text()) == res
