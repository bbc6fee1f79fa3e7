"""MovieLens releases to the collaborative knowledge graph of docs/model.md §4.

CSV releases (ml-20m, ml-25m, ml-latest, ml-latest-small): ratings.csv, and optionally movies.csv,
tags.csv, genome-scores.csv, genome-tags.csv. Older releases: ml-100k (u.data, u.item, u.user) and
ml-1m / ml-10m (ratings.dat, movies.dat, users.dat, tags.dat with "::" separators).

Id layout: users and items (movies with a kept rating) are numbered in increasing MovieLens id.
Entities are the items, then the genres, then the release years, then the Freebase entities not
linked to an item (in order of first appearance in the triples file). `entity_ids` are the movieId
of an item (its Freebase id when linked), "genre=<name>", "year=<year>" and Freebase ids.
Relations: "genre", "year" (where there are such triples), then the Freebase relations in order of
first appearance.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import numpy as np
import pandas as pd

from kgax.data import io
from kgax.data.types import Dataset

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
ML1M_OCCUPATIONS = ("other", "academic/educator", "artist", "clerical/admin",
                    "college/grad student", "customer service", "doctor/health care",
                    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
                    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
                    "technician/engineer", "tradesman/craftsman", "unemployed", "writer")
NO_GENRE = ("(no genres listed)", "unknown")   # genre markers that say "no genre"
_YEAR = r"\((\d{4})\)\s*$"


class _Release(NamedTuple):
  """What one release provides, in MovieLens ids; frames are indexed by file line."""
  ratings: tuple[np.ndarray, np.ndarray, np.ndarray]   # user, movie, rating [N] each
  movies: pd.DataFrame | None    # movie, title, year ("" when unknown)
  genres: pd.DataFrame | None    # movie, genre (one row per pair)
  tags: pd.DataFrame | None      # user, movie, tag
  users: pd.DataFrame | None     # user, age (years or ML-1M age code), gender, occupation


def read_movielens(path, *, min_rating: float | None = None, genome_top_k: int = 10,
                   link_file=None, freebase_triples=None, item_tags: bool = True,
                   name: str | None = None) -> Dataset:
  """Reads a MovieLens release folder into a `Dataset` (`name` defaults to the folder name).

  interactions: ratings >= min_rating (None: every rating is a positive), de-duplicated. Only
  movies with such a rating are items (so every item is rankable) and only users with one are
  users; rows of other files about other movies or users are ignored and counted in `notes`.
  KG: movie -genre-> genre, movie -year-> release year, plus Freebase triples when `link_file`
  (KB4Rec style "movieId<TAB>freebase_id" lines) and `freebase_triples` ("head relation tail"
  Freebase ids, whitespace separated) are both given.
  Aux facts: "genome" (per movie the top `genome_top_k` genome tags, weight = relevance; 0 or None
  skips the genome), "user_tag" (tags a user applied, lower-cased, weight = applications),
  "tag" (the same per movie, when `item_tags`), and for ml-100k / ml-1m "age" (ML-1M age groups),
  "gender" and "occupation" of users (weight 1). Tag facts list their applications as sources
  (`AuxFacts`), so that `load.load_split` keeps only those of training pairs.
  """
  path = pathlib.Path(path)
  if (path / "ratings.csv").exists():
    release = _csv_release(path)
  elif (path / "u.data").exists():
    release = _ml100k_release(path)
  elif (path / "ratings.dat").exists():
    release = _dat_release(path)
  else:
    raise io.fail(path / "ratings.csv", None, "missing required file (nor u.data or ratings.dat)")
  if (link_file is None) != (freebase_triples is None):
    raise io.fail(link_file or freebase_triples, None,
                  "link_file and freebase_triples must be given together")
  notes = []
  user, movie, rating = release.ratings
  if min_rating is not None:
    keep = rating >= min_rating
    notes.append(f"kept {keep.sum()} of {len(keep)} ratings >= {min_rating}")
    user, movie = user[keep], movie[keep]
  user, users = io.dense_codes(user)
  item, items = io.dense_codes(movie)
  del movie, rating
  n_users, n_items = len(users), len(items)
  pairs, dropped = io.dedup_pairs(user, item, n_items)
  del user, item
  notes.append(f"{len(pairs)} (user, item) pairs from {n_users} users and {n_items} movies, "
               f"dropped {dropped} duplicates")
  titles = None
  if release.movies is not None:
    at = io.lookup(items, release.movies["movie"].to_numpy())
    notes.append(f"ignored {(at < 0).sum()} movies without (kept) ratings")
    titles = np.full(n_items, "", object)
    titles[at[at >= 0]] = release.movies["title"].to_numpy(dtype=object)[at >= 0]
  kg, relation_names, entity_ids = _kg(release, items, notes)
  if link_file is not None:
    fb, fb_names, fb_ids, linked = _freebase(pathlib.Path(link_file),
                                             pathlib.Path(freebase_triples), items,
                                             len(entity_ids), notes)
    fb[:, 1] += len(relation_names)
    kg, relation_names = np.r_[kg, fb], relation_names + fb_names
    entity_ids = np.r_[entity_ids, fb_ids]
    entity_ids[list(linked.values())] = list(linked)
  facts = []
  if genome_top_k and (path / "genome-scores.csv").exists():
    facts.append(_genome(path, items, genome_top_k, notes))
  if release.tags is not None:
    facts += _tags(release.tags, users, items, item_tags, notes)
  if release.users is not None:
    facts += _demographics(release.users, users, notes)
  return Dataset(
      name=name or path.name, n_users=n_users, n_items=n_items, n_entities=len(entity_ids),
      interactions=pairs, kg=kg, relation_names=relation_names, aux=io.make_aux(facts),
      user_ids=users.astype(str).astype(object), item_ids=items.astype(str).astype(object),
      entity_ids=entity_ids, item_titles=titles, notes=tuple(notes)).validate()


def _ratings(df: pd.DataFrame, user: str, movie: str, rating: str) -> tuple[np.ndarray, ...]:
  return df[user].to_numpy(), df[movie].to_numpy(), df[rating].to_numpy(np.float32)


def _csv_release(path: pathlib.Path) -> _Release:
  read = lambda f, cols: io.read_table(path / f, cols, header="check")
  ratings = _ratings(read("ratings.csv", {"userId": "id", "movieId": "id", "rating": "float",
                                         "timestamp": "int"}), "userId", "movieId", "rating")
  movies = genres = None
  if (path / "movies.csv").exists():
    df = read("movies.csv", {"movieId": "id", "title": "str?", "genres": "str?"})
    movies = pd.DataFrame({"movie": df["movieId"], "title": df["title"],
                           "year": df["title"].str.extract(_YEAR)[0].fillna("")})
    genres = _genre_lists(df["movieId"], df["genres"])
  return _Release(ratings, movies, genres, read_tags(path), None)


def _dat_release(path: pathlib.Path) -> _Release:
  read = lambda f, cols: io.read_table(path / f, cols, sep="::", encoding="latin-1", quoted=False)
  ratings = _ratings(read("ratings.dat", {"user": "id", "movie": "id", "rating": "float",
                                         "timestamp": "int"}), "user", "movie", "rating")
  movies = genres = users = None
  if (path / "movies.dat").exists():
    df = read("movies.dat", {"movie": "id", "title": "str?", "genres": "str?"})
    movies = df[["movie", "title"]].assign(year=df["title"].str.extract(_YEAR)[0].fillna(""))
    genres = _genre_lists(df["movie"], df["genres"])
  tags = read_tags(path)
  if (path / "users.dat").exists():
    df = read("users.dat", {"user": "id", "gender": "str", "age": "id", "occupation": "id",
                            "zip": "str?"})
    occupation = df["occupation"].to_numpy()
    io.raise_first(path / "users.dat", df.index, occupation >= len(ML1M_OCCUPATIONS),
                   lambda i: f"unknown occupation code {occupation[i]}")
    users = df[["user", "age", "gender"]].assign(
        occupation=np.asarray(ML1M_OCCUPATIONS, object)[occupation])
  return _Release(ratings, movies, genres, tags, users)


def _ml100k_release(path: pathlib.Path) -> _Release:
  read = lambda f, cols, sep: io.read_table(path / f, cols, sep=sep, encoding="latin-1",
                                            quoted=False)
  ratings = _ratings(read("u.data", {"user": "id", "movie": "id", "rating": "float",
                                     "timestamp": "int"}, "\t"), "user", "movie", "rating")
  movies = genres = users = None
  if (path / "u.item").exists():
    flags = [f"g{k}" for k in range(len(ML100K_GENRES))]
    df = read("u.item", {"movie": "id", "title": "str?", "date": "str?", "video_date": "str?",
                         "url": "str?", **{f: "id" for f in flags}}, "|")
    movies = df[["movie", "title"]].assign(year=df["date"].str.extract(r"(\d{4})\s*$")[0]
                                           .fillna(""))
    row, genre = np.nonzero(df[flags].to_numpy() > 0)
    genres = pd.DataFrame({"movie": df["movie"].to_numpy()[row],
                           "genre": np.asarray(ML100K_GENRES, object)[genre]})
  if (path / "u.user").exists():
    users = read("u.user", {"user": "id", "age": "id", "gender": "str", "occupation": "str",
                            "zip": "str?"}, "|")[["user", "age", "gender", "occupation"]]
  return _Release(ratings, movies, genres, None, users)


def _genre_lists(movie: pd.Series, genres: pd.Series) -> pd.DataFrame:
  """(movie, genre) rows from "A|B|C" genre lists."""
  genre = genres.str.split("|").explode()
  return pd.DataFrame({"movie": movie.loc[genre.index].to_numpy(),
                       "genre": genre.str.strip().to_numpy(dtype=object)})


def _kg(release: _Release, items: np.ndarray, notes: list) -> tuple[np.ndarray, tuple, np.ndarray]:
  """Genre and year triples: (triples [T, 3], relation names, entity ids [n_entities])."""
  entity_ids = [items.astype(str).astype(object)]
  kg, names, start = [], [], len(items)
  if release.genres is not None:
    g = release.genres
    real = ~g["genre"].isin(NO_GENRE + ("",)).to_numpy()
    notes.append(f"{(~real).sum()} movies marked as having no genre")
    pairs = [(g["movie"].to_numpy()[real], g["genre"].to_numpy(dtype=object)[real], "genre")]
  else:
    pairs = []
  if release.movies is not None:
    m = release.movies
    has = (m["year"] != "").to_numpy()
    pairs.append((m["movie"].to_numpy()[has], m["year"].to_numpy(dtype=object)[has], "year"))
  for movie, value, relation in pairs:
    item = io.lookup(items, movie)
    item, value = item[item >= 0], value[item >= 0]
    if len(item) == 0:
      continue
    codes, uniques = pd.factorize(value, sort=True)
    kg.append(np.stack([item, np.full(len(item), len(names)), start + codes], 1))
    names.append(relation)
    entity_ids.append(np.asarray([f"{relation}="] * len(uniques), object) + uniques)
    start += len(uniques)
  kg = np.concatenate(kg).astype(np.int64) if kg else np.zeros((0, 3), np.int64)
  return kg, tuple(names), np.concatenate(entity_ids)


def _freebase(link_file: pathlib.Path, triples_file: pathlib.Path, items: np.ndarray, start: int,
              notes: list) -> tuple[np.ndarray, tuple, np.ndarray, dict]:
  """Freebase triples joined through a KB4Rec link file: (triples, relation names, Freebase ids of
  the new entities numbered from `start`, {Freebase id: item id} of the linked items)."""
  link = io.read_table(link_file, {"movie": "id", "entity": "str"}, sep="\t", quoted=False)
  for column in ("movie", "entity"):
    dup = link[column].duplicated().to_numpy()
    io.raise_first(link_file, link.index, dup,
                   lambda i: f"{column} {link[column].iloc[i]} linked twice")
  item = io.lookup(items, link["movie"].to_numpy())
  notes.append(f"{link_file.name}: {(item >= 0).sum()} items linked to Freebase, ignored "
               f"{(item < 0).sum()} links of movies without (kept) ratings")
  linked = dict(zip(link["entity"].to_numpy(dtype=object)[item >= 0], item[item >= 0]))
  df = io.read_table(triples_file, {"head": "str", "relation": "str", "tail": "str"},
                     sep=r"\s+", quoted=False)
  kg, names, others, dropped = io.token_triples(df["head"], df["relation"], df["tail"], linked,
                                                start)
  notes.append(f"{triples_file.name}: {len(kg)} triples, dropped {dropped} duplicates")
  return kg, names, others, linked


def _genome(path: pathlib.Path, items: np.ndarray, k: int, notes: list) -> tuple:
  """Aux part "genome": per item its top-k genome tags by relevance (ties keep file order)."""
  file = path / "genome-scores.csv"
  df = io.read_table(file, {"movieId": "id", "tagId": "id", "relevance": "float"},
                     header="check")
  tag = df["tagId"].to_numpy()
  if (path / "genome-tags.csv").exists():
    names = io.read_table(path / "genome-tags.csv", {"tagId": "id", "tag": "str"},
                          header="check").sort_values("tagId")
    tag_ids, tag_names = names["tagId"].to_numpy(), names["tag"].to_numpy(dtype=object)
    tag = io.lookup(tag_ids, tag)
    io.raise_first(file, df.index, tag < 0,
                   lambda i: f"tagId {df['tagId'].iloc[i]} not in genome-tags.csv")
  else:
    tag_ids = tag_names = np.unique(tag)
    tag = io.lookup(tag_ids, tag)
  item = io.lookup(items, df["movieId"].to_numpy())
  relevance = df["relevance"].to_numpy()
  io.raise_first(file, df.index, ~((relevance >= 0) & (relevance <= 1)),
                 lambda i: f"relevance {relevance[i]} outside [0, 1]")
  del df
  known = item >= 0
  notes.append(f"genome-scores.csv: ignored {(~known).sum()} rows of movies without (kept) "
               "ratings")
  item, tag, relevance = item[known], tag[known], relevance[known]
  order = np.argsort(item * 2.0 + (1.0 - relevance), kind="stable")   # item, relevance down
  item, tag, relevance = item[order], tag[order], relevance[order]
  n = len(item)
  first = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if n else np.zeros(0, np.int64)
  rank = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
  top = (rank < k) & (relevance > 0)
  notes.append(f"genome: top {k} tags of {len(first)} movies, {((rank < k) & ~top).sum()} "
               "zero-relevance tags left out")
  return ("genome", item[top], False, np.asarray(tag_names, object)[tag[top]],
          relevance[top].astype(np.float32))


def read_tags(path: str | pathlib.Path) -> pd.DataFrame | None:
  """The tag applications of a MovieLens release (tags.csv, or tags.dat of ml-10m): a frame of
  original user and movie ids and the tag, or None when the release has no tags file."""
  path = pathlib.Path(path)
  if (path / "tags.csv").exists():
    df = io.read_table(path / "tags.csv", {"userId": "id", "movieId": "id", "tag": "str?",
                                            "timestamp": "int"}, header="check")
    return df.rename(columns={"userId": "user", "movieId": "movie"})[["user", "movie", "tag"]]
  if (path / "tags.dat").exists():
    df = io.read_table(path / "tags.dat", {"user": "id", "movie": "id", "tag": "str?",
                                            "timestamp": "int"}, sep="::", encoding="latin-1",
                       quoted=False)
    return df[["user", "movie", "tag"]]
  return None


def _tags(tags: pd.DataFrame, users: np.ndarray, items: np.ndarray, item_tags: bool,
          notes: list) -> list:
  """Aux parts "user_tag" (owner user) and "tag" (owner item), weight = number of applications;
  each application is a source: its (user, movie) pair, -1 for one outside the catalogue."""
  tag = tags["tag"].str.strip().str.lower()
  empty = (tag == "").to_numpy()
  notes.append(f"tags: {len(tag)} applications, {empty.sum()} empty tags left out")
  pair = io.lookup(users, tags["user"].to_numpy()), io.lookup(items, tags["movie"].to_numpy())
  parts = []
  for attr, key, owner in (("user_tag", "user", pair[0]), ("tag", "movie", pair[1])):
    if attr == "tag" and not item_tags:
      continue
    keep = (owner >= 0) & ~empty
    notes.append(f"{attr}: ignored {((owner < 0) & ~empty).sum()} applications of "
                 f"{key}s without (kept) ratings")
    groups = pd.DataFrame({"owner": owner[keep], "value": tag.to_numpy(dtype=object)[keep]}
                          ).groupby(["owner", "value"], sort=True)
    count = groups.size()
    parts.append((attr, count.index.get_level_values(0).to_numpy(), attr == "user_tag",
                  count.index.get_level_values(1).to_numpy(dtype=object), count.to_numpy(),
                  (groups.ngroup().to_numpy(), pair[0][keep], pair[1][keep])))
  return parts


def _demographics(df: pd.DataFrame, users: np.ndarray, notes: list) -> list:
  """Aux parts "age" (ML-1M age groups), "gender", "occupation" of users (weight 1)."""
  owner = io.lookup(users, df["user"].to_numpy())
  keep = owner >= 0
  notes.append(f"ignored {(~keep).sum()} user rows of users without (kept) ratings")
  df, owner = df[keep], owner[keep]
  ones = np.ones(len(owner))
  return [("age", owner, True, io.age_bucket(df["age"].to_numpy()), ones),
          ("gender", owner, True, df["gender"].str.strip().to_numpy(dtype=object), ones),
          ("occupation", owner, True, df["occupation"].str.strip().to_numpy(dtype=object), ones)]
