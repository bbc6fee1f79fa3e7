"""Times `read_movielens` on a synthetic MovieLens release the size of ML-20M.

Writes ratings.csv (138,493 users, 27,278 movies, 20,000,263 ratings, sorted by user then movie,
"userId,movieId,rating,timestamp" as in the real release), genome-scores.csv (10,381 movies x
1,128 tags = 11,709,768 rows), genome-tags.csv, movies.csv and tags.csv (465,564 applications),
then reads the folder in a fresh process and reports wall seconds and that process's peak RSS.

  python experiments/perf/bench_reader.py [--dir DIR] [--out results.json] [--seed 0]

--dir keeps the files (and reuses them when DIR already has ratings.csv); without it they go to a
temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import pathlib
import resource
import tempfile
import time

import numpy as np
import pandas as pd

USERS, MOVIES, RATINGS = 138_493, 27_278, 20_000_263
MAX_MOVIE_ID = 131_262
GENOME_MOVIES, GENOME_TAGS = 10_381, 1_128
TAG_APPLICATIONS, TAG_WORDS = 465_564, 38_643
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
          "Sci-Fi", "Thriller", "War", "Western")
CHUNK = 1 << 20


def _digits(v: np.ndarray, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """ASCII digits [N, W] of non-negative ints [N] and the mask [N, W] of the ones to write
  (no leading zeros, or exactly `pad` digits when pad > 0)."""
  width = pad or len(str(int(v.max(initial=0))))
  digits = (v[:, None] // 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)) % 10 + ord("0")
  n = pad or np.searchsorted(10 ** np.arange(1, width, dtype=np.int64), v, side="right") + 1
  keep = np.arange(width) >= (width - np.asarray(n))[..., None]
  return digits.astype(np.uint8), np.broadcast_to(keep, digits.shape)


def _text(s: str, n: int) -> tuple[np.ndarray, np.ndarray]:
  b = np.frombuffer(s.encode(), np.uint8)
  return np.broadcast_to(b, (n, len(b))), np.ones((n, len(b)), bool)


def _write_rows(file, fields) -> None:
  """Appends rows made of the given (bytes [N, W], mask [N, W]) fields to an open binary file."""
  data = np.concatenate([f[0] for f in fields], axis=1)
  keep = np.concatenate([f[1] for f in fields], axis=1)
  file.write(data[keep].tobytes())


def _decimal(v: np.ndarray, places: int) -> list:
  """Fields writing v [N] >= 0 with `places` decimals ("3.5", "0.02500")."""
  scaled = np.rint(v * 10 ** places).astype(np.int64)
  return [_digits(scaled // 10 ** places), _text(".", len(v)), _digits(scaled % 10 ** places,
                                                                        places)]


def write_release(folder: pathlib.Path, seed: int) -> None:
  """Writes the synthetic release into `folder`."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  movie_ids = np.sort(rng.choice(MAX_MOVIE_ID, MOVIES, replace=False) + 1)
  by_popularity = rng.permutation(MOVIES)
  w = rng.lognormal(0.0, 1.0, USERS)
  counts = 20 + np.floor(w / w.sum() * (RATINGS - 20 * USERS)).astype(np.int64)
  counts += rng.multinomial(RATINGS - counts.sum(), np.full(USERS, 1 / USERS))
  # each user rates a window of the popularity order starting near the popular end: distinct
  # movies per user by construction, popular movies rated more often
  start = np.floor(rng.power(0.3, USERS) * MOVIES).astype(np.int64)
  user = np.repeat(np.arange(USERS, dtype=np.int64), counts)
  offset = np.arange(RATINGS) - np.repeat(np.cumsum(counts) - counts, counts)
  movie = movie_ids[by_popularity[(np.repeat(start, counts) + offset) % MOVIES]]
  del offset
  key = np.sort(user * (MAX_MOVIE_ID + 1) + movie)
  del user, movie
  stars = rng.choice(np.arange(1, 11) / 2, RATINGS, p=[.01, .03, .02, .07, .05, .2, .12, .27, .08,
                                                       .15])
  stamp = rng.integers(789_652_009, 1_427_784_002, RATINGS)
  with open(folder / "ratings.csv", "wb") as f:
    f.write(b"userId,movieId,rating,timestamp\n")
    for lo in range(0, RATINGS, CHUNK):
      k, n = key[lo:lo + CHUNK], len(key[lo:lo + CHUNK])
      _write_rows(f, [_digits(k // (MAX_MOVIE_ID + 1) + 1), _text(",", n),
                      _digits(k % (MAX_MOVIE_ID + 1)), _text(",", n),
                      *_decimal(stars[lo:lo + n], 1), _text(",", n), _digits(stamp[lo:lo + n]),
                      _text("\n", n)])
  del key, stars, stamp
  genome_movies = np.sort(movie_ids[by_popularity[:GENOME_MOVIES]])
  rows = GENOME_MOVIES * GENOME_TAGS
  relevance = rng.beta(0.6, 4.0, rows)
  with open(folder / "genome-scores.csv", "wb") as f:
    f.write(b"movieId,tagId,relevance\n")
    for lo in range(0, rows, CHUNK):
      r = np.arange(lo, min(lo + CHUNK, rows))
      n = len(r)
      _write_rows(f, [_digits(genome_movies[r // GENOME_TAGS]), _text(",", n),
                      _digits(r % GENOME_TAGS + 1), _text(",", n), *_decimal(relevance[r], 5),
                      _text("\n", n)])
  pd.DataFrame({"tagId": np.arange(1, GENOME_TAGS + 1),
                "tag": [f"genome tag {t}" for t in range(1, GENOME_TAGS + 1)]}).to_csv(
                    folder / "genome-tags.csv", index=False)
  year = rng.integers(1915, 2016, MOVIES)
  genre_sets = rng.random((MOVIES, len(GENRES))) < 0.12
  genres = pd.Series(["|".join(np.asarray(GENRES)[g]) or "(no genres listed)"
                      for g in genre_sets])
  pd.DataFrame({"movieId": movie_ids,
                "title": [f"Movie {m}, The ({y})" for m, y in zip(movie_ids, year)],
                "genres": genres}).to_csv(folder / "movies.csv", index=False)
  tag_rows = pd.DataFrame({
      "userId": rng.integers(1, USERS + 1, TAG_APPLICATIONS),
      "movieId": movie_ids[by_popularity[np.floor(rng.power(0.3, TAG_APPLICATIONS) * MOVIES)
                                         .astype(np.int64)]],
      "tag": [f"word {t}" for t in np.floor(rng.power(0.2, TAG_APPLICATIONS) * TAG_WORDS)
              .astype(np.int64)],
      "timestamp": rng.integers(1_135_429_210, 1_427_771_352, TAG_APPLICATIONS)})
  tag_rows.sort_values(["userId", "movieId"]).to_csv(folder / "tags.csv", index=False)


def _timed_read(folder: str) -> dict:
  """Runs in a fresh process: read time and that process's peak RSS."""
  from kgax.data.movielens import read_movielens
  t = time.perf_counter()
  ds = read_movielens(folder)
  seconds = time.perf_counter() - t
  return dict(read_seconds=round(seconds, 2),
              peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              users=ds.n_users, items=ds.n_items, entities=ds.n_entities,
              interactions=len(ds.interactions), triples=len(ds.kg), aux_facts=len(ds.aux))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dir", type=pathlib.Path, help="folder for the synthetic release")
  parser.add_argument("--out", type=pathlib.Path, help="JSON file for the results")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    folder = args.dir or pathlib.Path(tmp)
    t = time.perf_counter()
    if not (folder / "ratings.csv").exists():
      write_release(folder, args.seed)
    written = time.perf_counter() - t
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
      result = pool.submit(_timed_read, str(folder)).result()
  result = dict(dataset="synthetic ML-20M", ratings=RATINGS, genome_rows=GENOME_MOVIES *
                GENOME_TAGS, write_seconds=round(written, 1), **result)
  print(f"| read_movielens | synthetic ML-20M: {RATINGS:,} ratings, {result['genome_rows']:,} "
        f"genome rows | {result['read_seconds']:.1f} s | {result['peak_rss_mb']:,} MB peak RSS |")
  if args.out:
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
  main()
