"""Small helpers shared by the readers: checked table reading, id coding, aux facts.

Every problem with an input file becomes a one-line `DataError("<file>:<line>: <problem>")` (the
line is 1-based and left out when unknown); nothing from inside pandas reaches the caller.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kgax.data.types import AuxFacts, DataError

# Column kinds for `read_table`: "id" non-negative int64, "int" int64, "float" float64,
# "str" non-empty text, "str?" text that may be empty ("" when absent).
_DTYPES = {"id": "int64", "int": "int64", "float": "float64", "str": str, "str?": str}
_INT = re.compile(r"^-?[0-9]+$")   # ASCII digits only
_MAX_DIGITS = 18   # every id with at most 18 digits fits int64
# Ids used as array indices (KGAT's files) size the tables they index. An id is refused when it
# is above MAX_ID (the CKG's node ids are int32) or when the table it implies, max id + 1 rows,
# exceeds ID_SLACK_FACTOR * (distinct ids in the file) + ID_SLACK rows.
MAX_ID = 2**31 - 2
ID_SLACK_FACTOR, ID_SLACK = 16, 1_000_000


def fail(path, line, problem: str) -> DataError:
  """The error for `problem` at 1-based `line` of `path` (line None: the whole file)."""
  return DataError(f"{path}:{line}: {problem}" if line is not None else f"{path}: {problem}")


def raise_first(path, lines, bad: np.ndarray, problem) -> None:
  """Raises for the first True in `bad` [N]; `lines` [N] line numbers, `problem(k)` the text."""
  if np.any(bad):
    k = int(np.argmax(bad))
    raise fail(path, int(lines[k]), problem(k))


def require(path) -> pathlib.Path:
  """`path` as a Path, checked to be an existing, non-empty file."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise fail(path, None, "missing required file")
  if path.stat().st_size == 0:
    raise fail(path, None, "empty file")
  return path


def read_table(path, columns: dict[str, str], *, sep: str = ",", header: str | None = None,
               encoding: str = "utf-8", quoted: bool = True) -> pd.DataFrame:
  """Reads a delimited file whose rows have exactly the given columns ({name: kind}).

  header: None (no header line), "check" (a first line that must name `columns`) or "skip".
  `sep="::"` (MovieLens .dat) is read through the fast C parser. Returns a frame indexed by the
  1-based line number of each row; trailing blank lines are ignored, other blank lines are errors.
  """
  path = require(path)
  names = list(columns)
  if header == "check":
    found = _header(path, sep, encoding, quoted)
    if found != names:
      raise fail(path, 1, f"expected header {sep.join(names)!r}, found {sep.join(found)!r}")
  first = 1 if header is None else 2
  kw = dict(sep="\t" if sep == "::" else sep, header=None, names=names, index_col=False,
            engine="c", skip_blank_lines=False, skiprows=first - 1, encoding=encoding,
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
  dtypes = {c: _DTYPES[k] for c, k in columns.items()}
  required = [c for c, k in columns.items() if k != "str?"]
  df = _read(path, sep, first, dict(kw, dtype=dtypes))
  if df is None or df[required].isna().to_numpy().any():
    n = _diagnose(path, sep, columns, dict(kw, dtype=str), first)
    df = _read(path, sep, first, dict(kw, dtype=dtypes, nrows=n))
    if df is None:
      raise fail(path, None, "unreadable table")
  df = _drop_trailing_blank(df)
  if len(df) == 0:
    raise fail(path, None, "empty file (no data rows)")
  df.index = pd.RangeIndex(first, first + len(df))
  for c, k in columns.items():
    if k == "id":
      v = df[c].to_numpy()
      raise_first(path, df.index, v < 0, lambda i: f"negative id {v[i]} in column '{c}'")
    elif k == "str?":
      df[c] = df[c].fillna("")
  return df


def _source(path: pathlib.Path, sep: str):
  return io.BytesIO(path.read_bytes().replace(b"::", b"\t")) if sep == "::" else path


def _read(path, sep, first, kw) -> pd.DataFrame | None:
  """pd.read_csv with its errors as DataError; None when a value does not convert to its dtype."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", pd.errors.ParserWarning)
      warnings.simplefilter("ignore", RuntimeWarning)   # inf or nan cast to an int column
      return pd.read_csv(_source(path, sep), **kw)
  except pd.errors.ParserWarning:
    raise fail(path, first, f"expected {len(kw['names'])} columns, found more") from None
  except pd.errors.ParserError as e:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
    if m is None:
      raise fail(path, None, f"unreadable table ({str(e).strip().splitlines()[-1]})") from None
    raise fail(path, int(m[2]), f"expected {m[1]} columns, found {m[3]}") from None
  except UnicodeDecodeError as e:
    raise fail(path, None, f"not {kw['encoding']} text ({e.reason})") from None
  except (ValueError, OverflowError):
    return None


def _header(path, sep, encoding, quoted) -> list[str]:
  try:
    return [str(c) for c in pd.read_csv(
        _source(path, sep), sep="\t" if sep == "::" else sep, nrows=0, encoding=encoding,
        engine="c", quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE).columns]
  except (ValueError, UnicodeDecodeError) as e:
    raise fail(path, 1, f"unreadable header ({e})") from None


def _drop_trailing_blank(df: pd.DataFrame) -> pd.DataFrame:
  filled = df.notna().any(axis=1).to_numpy()
  return df.iloc[:len(filled) - int(np.argmax(filled[::-1])) if filled.any() else 0]


def _diagnose(path, sep, columns, kw, first) -> int:
  """Re-reads every field as text and raises DataError for the first bad line; returns the number
  of rows when the only trouble was trailing blank lines."""
  df = _drop_trailing_blank(_read(path, sep, first, kw))
  problems = []
  for c, k in columns.items():
    v = df[c]
    if k != "str?":
      problems.append((v.isna().to_numpy(), lambda i, c=c: f"missing value for '{c}' "
                       f"(expected {len(columns)} columns)"))
    text = v.fillna("0").str.strip()
    if k in ("id", "int"):
      ok = text.str.fullmatch(_INT.pattern).to_numpy()
      problems.append((~ok, lambda i, c=c, t=text: f"non-integer id {t.iloc[i]!r} in column '{c}'"))
      long = text.str.lstrip("-").str.len().to_numpy() > _MAX_DIGITS
      problems.append((ok & long, lambda i, c=c, t=text: f"id {t.iloc[i]} out of range in column "
                       f"'{c}'"))
    elif k == "float":
      bad = pd.to_numeric(text, errors="coerce").isna().to_numpy()
      problems.append((bad, lambda i, c=c, t=text: f"non-numeric value {t.iloc[i]!r} in column "
                       f"'{c}'"))
  rows = [int(np.argmax(bad)) if bad.any() else len(df) for bad, _ in problems]
  j = int(np.argmin(rows))
  if rows[j] < len(df):
    raise fail(path, first + rows[j], problems[j][1](rows[j]))
  return len(df)


def check_size(path, ids: np.ndarray, lines: np.ndarray, what: str) -> int:
  """max(ids) + 1, the table size that the non-negative `ids` [N] (on 1-based `lines` [N]) imply;
  DataError for the first id above MAX_ID or beyond the sane bound of `ID_SLACK_FACTOR`."""
  if not len(ids):
    return 0
  top = int(ids.max())
  raise_first(path, lines, ids > MAX_ID, lambda i: f"{what} id {ids[i]} above {MAX_ID}")
  if top + 1 > ID_SLACK:
    bound = ID_SLACK_FACTOR * len(np.unique(ids)) + ID_SLACK
    raise_first(path, lines, ids >= bound, lambda i: (
        f"{what} id {ids[i]} too large for {(bound - ID_SLACK) // ID_SLACK_FACTOR} distinct "
        f"{what} ids (ids must stay below {ID_SLACK_FACTOR} * distinct + {ID_SLACK} = {bound})"))
  return top + 1


def read_int_lines(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Parses a file of whitespace-separated non-negative integers, lines of any length; lines end
  in LF, CRLF or CR.

  Returns (values int64 [T], lines int64 [L], offsets int64 [L + 1]): the values of the L non-blank
  lines, their 1-based line numbers, and where each line's values start in `values`.
  """
  path = require(path)
  data = path.read_bytes()
  if b"\r" in data:
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
  buf = np.frombuffer(data, np.uint8)
  newlines = np.flatnonzero(buf == ord("\n"))
  line_of = lambda pos: np.searchsorted(newlines, pos) + 1
  digit = (buf >= ord("0")) & (buf <= ord("9"))
  bad = ~(digit | np.isin(buf, np.frombuffer(b" \t\r\n", np.uint8)))
  if bad.any():
    k = int(np.argmax(bad))
    token = (re.search(rb"\S*$", data[:k])[0] + re.match(rb"\S*", data[k:])[0]).decode(
        "utf-8", errors="replace")
    what = "negative id" if _INT.match(token) else "non-integer id"
    raise fail(path, int(line_of(k)), f"{what} {token!r}")
  starts = np.flatnonzero(digit & ~np.r_[False, digit[:-1]])
  if len(starts) == 0:
    raise fail(path, None, "empty file (no data rows)")
  ends = np.flatnonzero(digit & ~np.r_[digit[1:], False]) + 1
  token_line = line_of(starts)
  raise_first(path, token_line, ends - starts > _MAX_DIGITS,
              lambda i: f"id {data[starts[i]:ends[i]].decode()} out of range")
  values = np.fromstring(data.decode("ascii"), dtype=np.int64, sep=" ")
  head = np.r_[True, token_line[1:] != token_line[:-1]]
  offsets = np.r_[np.flatnonzero(head), len(values)].astype(np.int64)
  return values, token_line[head].astype(np.int64), offsets


def read_lines(path, n_fields: int, *, encoding: str = "utf-8") -> tuple[pd.DataFrame, np.ndarray]:
  """Splits each line of a space-separated file into `n_fields` fields, the first one keeping any
  inner spaces (KGAT's id lists have names with spaces). Returns (text fields [L, n_fields], the
  1-based line numbers [L]); trailing blank lines ignored."""
  path = require(path)
  try:
    text = path.read_text(encoding=encoding).replace("\r\n", "\n").replace("\r", "\n")
    lines = pd.Series(text.split("\n"), dtype=object)
  except UnicodeDecodeError as e:
    raise fail(path, None, f"not {encoding} text ({e.reason})") from None
  filled = (lines.str.strip() != "").to_numpy()
  if not filled.any():
    raise fail(path, None, "empty file (no data rows)")
  n = len(filled) - int(np.argmax(filled[::-1]))
  lines = lines.iloc[:n]
  fields = lines.str.rsplit(" ", n=n_fields - 1, expand=True)
  if fields.shape[1] < n_fields:
    fields = fields.reindex(columns=range(n_fields))
  numbers = np.arange(1, n + 1)
  raise_first(path, numbers, fields.isna().any(axis=1).to_numpy(),
              lambda i: f"expected {n_fields} columns, found {len(lines.iloc[i].split())}")
  return fields, numbers


def parse_ids(path, text: pd.Series, lines: np.ndarray, what: str) -> np.ndarray:
  """Text ids [N] to int64, raising DataError for the first non-integer or negative one."""
  text = text.str.strip()
  ok = text.str.fullmatch(r"[0-9]{1,18}").to_numpy()
  raise_first(path, lines, ~ok, lambda i: (
      f"negative {what} {text.iloc[i]}" if _INT.match(text.iloc[i]) else
      f"non-integer {what} {text.iloc[i]!r}"))
  return text.astype(np.int64).to_numpy()


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Codes non-negative ints [N] as 0..U-1 in increasing order: (codes int64 [N], uniques [U])."""
  values = np.asarray(values)
  if len(values) == 0:
    return np.zeros(0, np.int64), values.astype(np.int64)
  top = int(values.max())
  if top > 4 * len(values) + (1 << 20):
    uniques, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), uniques.astype(np.int64)
  present = np.zeros(top + 1, bool)
  present[values] = True
  table = np.cumsum(present, dtype=np.int64) - 1
  return table[values], np.flatnonzero(present).astype(np.int64)


def lookup(uniques: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Position of each value [N] in the sorted `uniques` [U], -1 where absent."""
  pos = np.searchsorted(uniques, values).clip(0, max(len(uniques) - 1, 0))
  found = (uniques[pos] == values) if len(uniques) else np.zeros(len(values), bool)
  return np.where(found, pos, -1).astype(np.int64)


def natural_codes(tokens: pd.Series) -> tuple[np.ndarray, np.ndarray]:
  """Codes text tokens [N] as 0..U-1, in numeric order when all are integers, else text order.

  Returns (codes int64 [N], uniques object [U])."""
  uniques = pd.unique(tokens.to_numpy(dtype=object))
  numeric = pd.Series(uniques, dtype=object).str.fullmatch(r"[0-9]{1,18}").all()
  order = np.argsort(uniques.astype(np.int64) if numeric else uniques.astype(str), kind="stable")
  uniques = uniques[order]
  return pd.Index(uniques).get_indexer(tokens.to_numpy(dtype=object)).astype(np.int64), uniques


def dedup_pairs(users: np.ndarray, items: np.ndarray, n_items: int) -> tuple[np.ndarray, int]:
  """Sorted unique (user, item) rows [N', 2] of the pairs users [N], items [N]; and N - N'."""
  key = users.astype(np.int64) * n_items + items
  key.sort()
  keep = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
  key = key[keep]
  return np.stack([key // n_items, key % n_items], axis=1), int(len(keep) - keep.sum())


def dedup_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
  """Rows [N, C] with later duplicates removed, first-seen order kept; and the number dropped."""
  dup = pd.DataFrame(rows).duplicated().to_numpy()
  return rows[~dup], int(dup.sum())


def overlap(a: np.ndarray, b: np.ndarray, n_cols: int) -> int:
  """Number of rows of `b` [M, 2] that occur in `a` [N, 2], a sorted unique pair set."""
  return int((lookup(a[:, 0] * n_cols + a[:, 1], b[:, 0] * n_cols + b[:, 1]) >= 0).sum())


def make_aux(parts: Sequence[tuple]) -> AuxFacts:
  """AuxFacts from parts (attribute, owner [F], owners_are_users, values [F], weights [F]) or,
  for facts derived from interactions, (..., (fact [S], user [S], item [S])): the part's sources,
  `fact` indexing the part's own facts.

  Aux nodes are numbered attribute by attribute in the given order, values sorted within one;
  a node's name is "attribute=value". Parts without facts are left out.
  """
  parts = [p for p in parts if len(p[1])]
  if not parts:
    return AuxFacts.empty()
  owner, is_user, node, weight, node_attr, names = [], [], [], [], [], []
  sources = [], [], []
  n_nodes = n_facts = 0
  for a, (attr, own, users, values, w, *source) in enumerate(parts):
    codes, uniques = pd.factorize(pd.Series(values, dtype=object).astype(str), sort=True)
    owner.append(np.asarray(own, np.int64))
    is_user.append(np.full(len(own), users))
    node.append(codes.astype(np.int64) + n_nodes)
    n_nodes += len(uniques)
    weight.append(np.asarray(w, np.float32))
    node_attr.append(np.full(len(uniques), a, np.int64))
    names.append(np.asarray([f"{attr}="] * len(uniques), object) + np.asarray(uniques, object))
    if source:
      fact, user, item = (np.asarray(x, np.int64) for x in source[0])
      for out, x in zip(sources, (fact + n_facts, user, item)):
        out.append(x)
    n_facts += len(own)
  cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)
  return AuxFacts(owner=np.concatenate(owner), owner_is_user=np.concatenate(is_user),
                  node=np.concatenate(node), weight=np.concatenate(weight),
                  node_attr=np.concatenate(node_attr), node_names=np.concatenate(names),
                  attr_names=tuple(p[0] for p in parts), source_fact=cat(sources[0]),
                  source_user=cat(sources[1]), source_item=cat(sources[2]))


def token_triples(head: np.ndarray, relation: np.ndarray, tail: np.ndarray, linked: dict,
                  start: int) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, int]:
  """Numbers a KG given as tokens [T] each: linked entities ({token: item id}) become their item,
  the others get ids from `start` on and relations ids from 0, both in order of first appearance
  (row by row, head before tail). Duplicate triples are dropped.

  Returns (triples int64 [T', 3], relation names, tokens of the entities from `start` on, dropped).
  """
  ends = np.stack([np.asarray(head, object), np.asarray(tail, object)], 1).ravel()
  ids = pd.Series(ends).map(linked).to_numpy(dtype=float, copy=True)
  other = np.isnan(ids)
  codes, others = pd.factorize(ends[other])
  ids[other] = start + codes
  rel, names = pd.factorize(np.asarray(relation, object))
  ids = ids.astype(np.int64).reshape(-1, 2)
  kg, dropped = dedup_rows(np.stack([ids[:, 0], rel.astype(np.int64), ids[:, 1]], 1))
  return kg, tuple(names), np.asarray(others, object), dropped


AGE_BUCKETS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_AGE_EDGES = np.array([0, 18, 25, 35, 45, 50, 56])


def age_bucket(ages: np.ndarray) -> np.ndarray:
  """MovieLens-1M age groups for ages [N] (also for ML-1M's own codes 1, 18, 25, ...)."""
  return np.asarray(AGE_BUCKETS, object)[np.searchsorted(_AGE_EDGES, ages, side="right") - 1]
