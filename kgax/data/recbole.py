"""RecBole atomic files: <name>.inter (or .train/.valid/.test.inter), .kg, .link, .item, .user.

Each file is tab separated with a typed header line ("user_id:token\titem_id:token\t...").
Users and items are numbered in token order (numeric when every token is an integer); items are
entities 0..n_items-1, a linked item's KG entity is merged into the item, and the other KG
entities and the relations are numbered in order of first appearance in the .kg file (row by row,
head before tail), which reproduces RecBole's own entity order after the items.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pandas as pd

from kgax.data import io
from kgax.data.types import Dataset

_FIELD = re.compile(r"^(\w+):(token|token_seq|float|float_seq)$")
_GENRE_FIELDS = ("class", "genre")    # ml-100k calls the genre list "class", ml-1m "genre"


def read_recbole(path, name: str | None = None) -> Dataset:
  """Reads the RecBole dataset `name` from folder `path` (default: the one name with .inter files
  there, else the folder name).

  With <name>.train.inter present, the benchmark files are read as interactions / valid / test
  (.test.inter required, .valid.inter optional); otherwise <name>.inter holds all interactions.
  The users and items are those of the training file: a validation or test pair with a user or
  item token not in it is dropped and counted in `notes` (a linked KG entity of such an item
  stays a KG entity). Lines may end in LF, CRLF or CR.
  Aux facts: "genre" and "year" of items (.item class/genre, release_year), "age" (MovieLens-1M
  age groups), "gender" and "occupation" of users (.user), all weight 1; zip codes are not used.
  `item_titles` come from movie_title. Rows about users or items without interactions are ignored
  and counted in `notes`, as are dropped duplicate pairs and triples.
  """
  path = pathlib.Path(path)
  name = name or _default_name(path)
  file = lambda ext: path / f"{name}.{ext}"
  if file("train.inter").exists():
    splits = {"train": file("train.inter"), "test": file("test.inter")}
    if file("valid.inter").exists():
      splits["valid"] = file("valid.inter")
  else:
    splits = {"train": file("inter")}
  inter = {k: _table(f, ("user_id", "item_id")) for k, f in splits.items()}
  _, users = io.natural_codes(inter["train"]["user_id"])
  _, items = io.natural_codes(inter["train"]["item_id"])
  n_users, n_items = len(users), len(items)
  notes, pairs = [], {}
  for k, df in inter.items():
    user = pd.Index(users).get_indexer(df["user_id"].to_numpy(dtype=object))
    item = pd.Index(items).get_indexer(df["item_id"].to_numpy(dtype=object))
    known = (user >= 0) & (item >= 0)
    if not known.all():
      notes.append(f"{splits[k].name}: dropped {int((~known).sum())} pairs whose user or item is "
                   f"not in {splits['train'].name}")
    pairs[k], dropped = io.dedup_pairs(user[known], item[known], n_items)
    notes.append(f"{splits[k].name}: {len(pairs[k])} (user, item) pairs, dropped {dropped} "
                 "duplicates")
  for k in ("valid", "test"):
    if k in pairs:
      notes.append(f"{io.overlap(pairs['train'], pairs[k], n_items)} {k} pairs also in train "
                   f"(kept in {k})")
  linked = _read_link(file("link"), items, notes) if file("link").exists() else {}
  entity_ids = np.asarray(items, object).copy()   # an item's KG entity id where it is linked
  entity_ids[list(linked.values())] = list(linked)
  kg, relation_names, others = np.zeros((0, 3), np.int64), (), np.zeros(0, object)
  if file("kg").exists():
    kg, relation_names, others = _read_kg(file("kg"), linked, n_items, notes)
  facts, titles = [], None
  if file("item").exists():
    item_facts, titles = _read_item(file("item"), items, notes)
    facts += item_facts
  if file("user").exists():
    facts += _read_user(file("user"), users, notes)
  return Dataset(
      name=name, n_users=n_users, n_items=n_items, n_entities=n_items + len(others),
      interactions=pairs["train"], kg=kg, relation_names=relation_names, aux=io.make_aux(facts),
      test=pairs.get("test"), valid=pairs.get("valid"), user_ids=np.asarray(users, object),
      item_ids=np.asarray(items, object), entity_ids=np.r_[entity_ids, others],
      item_titles=titles, notes=tuple(notes)).validate()


def _default_name(path: pathlib.Path) -> str:
  names = {re.sub(r"\.(train|valid|test)$", "", f.stem) for f in path.glob("*.inter")}
  return names.pop() if len(names) == 1 else path.name


def _table(file: pathlib.Path, needed: tuple[str, ...]) -> pd.DataFrame:
  """All fields of an atomic file as text; the `needed` token fields must be present, non-empty."""
  io.require(file)
  with open(file, encoding="utf-8", errors="replace") as f:
    fields = f.readline().rstrip("\r\n").split("\t")
  for field in fields:
    if not _FIELD.match(field):
      raise io.fail(file, 1, f"malformed header field {field!r} (expected name:type with type "
                    "token, token_seq, float or float_seq)")
  types = dict(f.split(":") for f in fields)
  if len(types) < len(fields):
    raise io.fail(file, 1, "malformed header: a field name appears twice")
  for n in needed:
    if types.get(n) != "token":
      raise io.fail(file, 1, f"malformed header: no {n}:token field")
  return io.read_table(file, {n: "str" if n in needed else "str?" for n in types}, sep="\t",
                       header="skip", quoted=False)


def _first_duplicate(file, df: pd.DataFrame, column: str) -> None:
  dup = df[column].duplicated().to_numpy()
  io.raise_first(file, df.index, dup, lambda i: f"duplicate {column} {df[column].iloc[i]!r}")


def _read_link(file, items, notes) -> dict[str, int]:
  """{entity token: item id} of the .link rows whose item has interactions."""
  df = _table(file, ("item_id", "entity_id"))
  _first_duplicate(file, df, "item_id")
  _first_duplicate(file, df, "entity_id")
  item = pd.Index(items).get_indexer(df["item_id"].to_numpy(dtype=object))
  known = item >= 0
  notes.append(f"{file.name}: {known.sum()} items linked to KG entities, ignored "
               f"{(~known).sum()} links of items without interactions")
  return dict(zip(df["entity_id"].to_numpy(dtype=object)[known], item[known]))


def _read_kg(file, linked, n_items, notes) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
  """(triples [T, 3], relation names, tokens of the entities numbered from n_items on)."""
  df = _table(file, ("head_id", "relation_id", "tail_id"))
  kg, names, others, dropped = io.token_triples(df["head_id"], df["relation_id"], df["tail_id"],
                                                linked, n_items)
  notes.append(f"{file.name}: {len(kg)} triples, dropped {dropped} duplicates")
  return kg, names, others


def _known(file, df, column, uniques, notes, what) -> tuple[pd.DataFrame, np.ndarray]:
  """Rows of `df` whose `column` token is among `uniques`, with their ids."""
  _first_duplicate(file, df, column)
  ids = pd.Index(uniques).get_indexer(df[column].to_numpy(dtype=object))
  notes.append(f"{file.name}: ignored {(ids < 0).sum()} rows of {what} without interactions")
  return df[ids >= 0], ids[ids >= 0]


def _read_item(file, items, notes) -> tuple[list, np.ndarray | None]:
  """(aux parts "genre" and "year", titles [n_items] or None) from a .item file."""
  df, ids = _known(file, _table(file, ("item_id",)), "item_id", items, notes, "items")
  parts = []
  genre = next((g for g in _GENRE_FIELDS if g in df), None)
  if genre is not None:
    tokens = df[genre].str.split().explode()
    keep = tokens.notna().to_numpy()
    owner = pd.Series(ids, index=df.index).loc[tokens.index].to_numpy()
    parts.append(("genre", owner[keep], False, tokens.to_numpy(dtype=object)[keep],
                  np.ones(keep.sum())))
  if "release_year" in df:
    year = df["release_year"].str.strip().to_numpy(dtype=object)
    has = year != ""
    parts.append(("year", ids[has], False, year[has], np.ones(has.sum())))
  titles = None
  if "movie_title" in df:
    titles = np.full(len(items), "", object)
    titles[ids] = df["movie_title"].to_numpy(dtype=object)
  return parts, titles


def _read_user(file, users, notes) -> list:
  """Aux parts "age" (age group), "gender" and "occupation" from a .user file."""
  df, ids = _known(file, _table(file, ("user_id",)), "user_id", users, notes, "users")
  parts = []
  if "age" in df:
    has = (df["age"].str.strip() != "").to_numpy()
    age = io.parse_ids(file, df["age"][has], df.index[has], "age")
    parts.append(("age", ids[has], True, io.age_bucket(age), np.ones(has.sum())))
  for field in ("gender", "occupation"):
    if field in df:
      value = df[field].str.strip().to_numpy(dtype=object)
      has = value != ""
      parts.append((field, ids[has], True, value[has], np.ones(has.sum())))
  return parts
