"""KGAT's text format (Wang et al. 2019 release): read into a `Dataset`, and write a split back.

A folder holds train.txt and test.txt ("user item item ..." per line, a user alone on a line has no
items), kg_final.txt ("head relation tail", items are entities 0..n_items-1) and optionally the id
lists user_list.txt / entity_list.txt / relation_list.txt ("org_id remap_id") and item_list.txt
("org_id remap_id freebase_id"), each with a header line.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from kgax.data import io
from kgax.data.types import Dataset

_LISTS = {"user": 2, "item": 3, "entity": 2, "relation": 2}   # list name -> fields per line


def read_kgat(path, name: str | None = None) -> Dataset:
  """Reads a KGAT folder; `name` defaults to the folder name.

  train.txt is required, test.txt and kg_final.txt optional (no kg_final.txt: an empty KG). A folder
  with test.txt but no train.txt (KGAT's released Last-FM here) is read as one unsplit set of
  interactions (`presplit` False) so that the usual split applies; a note says so. Duplicate
  (user, item) pairs within a file are dropped and counted in `notes`; a test pair also in train
  stays in test. With id lists present, ids beyond a list are errors and the lists give the
  original ids and relation names.

  Ids and sizes: the training file (with the id lists, when larger) fixes n_users and n_items
  (max id + 1); a test pair whose user or item is beyond them is dropped and counted in `notes`,
  never a growth of the catalogue, so a KG entity never becomes an item through test.txt. An id
  that implies an absurd table (`io.check_size`) is an error naming its file and line. Lines may
  end in LF, CRLF or CR.
  """
  path = pathlib.Path(path)
  lists = {k: _read_list(path / f"{k}_list.txt", n) for k, n in _LISTS.items()
           if (path / f"{k}_list.txt").exists()}
  sizes = {k: len(v) for k, v in lists.items()}
  notes = []
  train_file, test_file = path / "train.txt", path / "test.txt"
  if train_file.exists():
    files = [train_file] + ([test_file] if test_file.exists() else [])
  elif test_file.exists():
    files = [test_file]
    notes.append("no train.txt: test.txt read as the unsplit interactions")
  else:
    raise io.fail(train_file, None, "missing required file")
  parts = [_read_cf(f, sizes) for f in files]
  pairs, heads, pair_lines, head_lines = parts[0]
  n_users = max(io.check_size(files[0], heads, head_lines, "user"), sizes.get("user", 0))
  n_items = max(io.check_size(files[0], pairs[:, 1], pair_lines, "item"), sizes.get("item", 0))
  sets = []
  for f, (pairs, *_) in zip(files, parts):
    known = (pairs[:, 0] < n_users) & (pairs[:, 1] < n_items)
    if not known.all():
      notes.append(f"{f.name}: dropped {int((~known).sum())} pairs whose user or item is beyond "
                   f"those of {files[0].name} (users < {n_users}, items < {n_items})")
    pairs, dropped = io.dedup_pairs(pairs[known, 0], pairs[known, 1], max(n_items, 1))
    sets.append(pairs)
    notes.append(f"{f.name}: {len(pairs)} (user, item) pairs, dropped {dropped} duplicates")
  if len(sets) == 2:
    notes.append(f"{io.overlap(sets[0], sets[1], n_items)} test pairs also in train (kept in test)")
  kg, relation_names = _read_kg(path / "kg_final.txt", sizes, lists.get("relation"))
  if len(kg):
    kg, dropped = io.dedup_rows(kg)
    notes.append(f"kg_final.txt: {len(kg)} triples, dropped {dropped} duplicates")
  n_entities = max(int(kg[:, [0, 2]].max()) + 1 if len(kg) else 0, n_items,
                   sizes.get("entity", 0))
  if "entity" in lists and sizes["entity"] != n_entities:
    raise io.fail(path / "entity_list.txt", None,
                  f"lists {sizes['entity']} entities but the items need {n_entities}")
  return Dataset(
      name=name or path.name, n_users=n_users, n_items=n_items, n_entities=n_entities,
      interactions=sets[0], kg=kg, relation_names=relation_names,
      test=sets[1] if len(sets) == 2 else None, user_ids=lists.get("user"),
      item_ids=lists.get("item"), entity_ids=lists.get("entity"), notes=tuple(notes)).validate()


def _read_cf(file: pathlib.Path, sizes: dict) -> tuple[np.ndarray, ...]:
  """(pairs int64 [N, 2], the user of each non-blank line [L], the line of each pair [N], the
  line numbers [L]) of a train.txt / test.txt."""
  values, lines, offsets = io.read_int_lines(file)
  heads = values[offsets[:-1]]
  counts = np.diff(offsets) - 1
  is_item = np.ones(len(values), bool)
  is_item[offsets[:-1]] = False
  pair_lines = np.repeat(lines, counts)
  pairs = np.stack([np.repeat(heads, counts), values[is_item]], axis=1)
  for key, ids, where in (("user", heads, lines), ("item", pairs[:, 1], pair_lines)):
    if key in sizes:
      io.raise_first(file, where, ids >= sizes[key], lambda i: (
          f"{key} id {ids[i]} out of range [0, {sizes[key]}) of {key}_list.txt"))
  return pairs, heads, pair_lines, lines


def _read_kg(file: pathlib.Path, sizes: dict, relations) -> tuple[np.ndarray, tuple[str, ...]]:
  """(triples int64 [T, 3], relation names) of kg_final.txt; empty when the file is absent."""
  names = tuple(relations) if relations is not None else ()
  if not file.exists():
    return np.zeros((0, 3), np.int64), names
  values, lines, offsets = io.read_int_lines(file)
  counts = np.diff(offsets)
  io.raise_first(file, lines, counts != 3, lambda i: f"expected 3 columns, found {counts[i]}")
  kg = values.reshape(-1, 3)
  if relations is not None:
    io.raise_first(file, lines, kg[:, 1] >= len(names), lambda i: (
        f"unknown relation {kg[i, 1]} (relation_list.txt has {len(names)})"))
  else:
    names = tuple(str(r) for r in range(io.check_size(file, kg[:, 1], lines, "relation")))
  if "entity" in sizes:
    n = sizes["entity"]
    io.raise_first(file, lines, kg[:, [0, 2]].max(axis=1) >= n, lambda i: (
        f"entity id {kg[i, [0, 2]].max()} out of range [0, {n}) of entity_list.txt"))
  else:
    io.check_size(file, kg[:, [0, 2]].ravel(), np.repeat(lines, 2), "entity")
  return kg, names


def _read_list(file: pathlib.Path, n_fields: int) -> np.ndarray:
  """Original ids [n] by remap id from an id list with a header line."""
  fields, lines = io.read_lines(file, n_fields)
  header = " ".join(fields.iloc[0].astype(str))
  if not header.startswith("org_id remap_id"):
    raise io.fail(file, 1, f"expected header 'org_id remap_id', found {header!r}")
  fields, lines = fields.iloc[1:], lines[1:]
  remap = io.parse_ids(file, fields[1], lines, "remap_id")
  n = len(remap)
  io.raise_first(file, lines, pd.Series(remap).duplicated().to_numpy(),
                 lambda i: f"duplicate remap_id {remap[i]}")
  io.raise_first(file, lines, remap >= n, lambda i: f"remap_id {remap[i]} out of range [0, {n})")
  ids = np.empty(n, object)
  ids[remap] = fields[0].to_numpy(dtype=object)
  return ids


def write_kgat(path, train: np.ndarray, test: np.ndarray | None = None,
               kg: np.ndarray | None = None) -> None:
  """Writes pairs [N, 2] / [M, 2] and triples [T, 3] as train.txt, test.txt, kg_final.txt.

  One line "user item item ..." per user that has items, users and items in increasing order;
  triples in the given order. test.txt and kg_final.txt are written when given and non-empty, so
  `read_kgat` of the folder returns the same arrays.
  """
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  _write_cf(path / "train.txt", train)
  if test is not None and len(test):
    _write_cf(path / "test.txt", test)
  if kg is not None and len(kg):
    pd.DataFrame(np.asarray(kg, np.int64)).to_csv(path / "kg_final.txt", sep=" ", header=False,
                                                  index=False, lineterminator="\n")


def _write_cf(file: pathlib.Path, pairs: np.ndarray) -> None:
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  pairs, _ = io.dedup_pairs(pairs[:, 0], pairs[:, 1], int(pairs[:, 1].max(initial=0)) + 1)
  first = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]
  users = pd.Series(pairs[:, 0]).astype(str)
  pieces = ("\n" + users + " ").where(first, " ") + pd.Series(pairs[:, 1]).astype(str)
  file.write_text(pieces.str.cat()[1:] + "\n")
