"""Malformed variants of small valid folders, thrown at every reader: each read either gives a
valid Dataset (every id in range) or a one-line DataError naming a file of the folder, never
another exception."""

import pathlib

import numpy as np
import pytest

from kgax.data.kgat import read_kgat
from kgax.data.movielens import read_movielens
from kgax.data.recbole import read_recbole
from kgax.data.types import DataError

BASES = {
    "kgat": (read_kgat, {
        "train.txt": "0 1 2 3\n1 2\n2 0 4\n3 1\n",
        "test.txt": "0 4\n1 0 1\n3 2\n",
        "kg_final.txt": "0 0 5\n1 1 6\n5 0 6\n2 1 5\n",
        "user_list.txt": "org_id remap_id\na 0\nb 1\nc 2\nd 3\n",
        "relation_list.txt": "org_id remap_id\nr0 0\nr1 1\n"}),
    "recbole": (read_recbole, {
        "x.inter": "user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\t4\n4\t2\t1\n"
                   "5\t7\t2\n",
        "x.kg": "head_id:token\trelation_id:token\ttail_id:token\ne.2\tr\te.9\ne.9\ts\te.3\n",
        "x.link": "item_id:token\tentity_id:token\n2\te.2\n3\te.3\n",
        "x.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                  "2\tA\t1995\tDrama War\n3\tB\t\tDrama\n",
        "x.user": "user_id:token\tage:token\tgender:token\toccupation:token\n1\t20\tF\tx\n"
                  "4\t40\tM\ty\n"}),
    "movielens": (read_movielens, {
        "ratings.csv": "userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,2.0,2\n2,10,5.0,3\n"
                       "2,30,1.0,4\n3,20,3.5,5\n",
        "movies.csv": 'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n'
                      "20,Solo (2001),Drama\n30,Z (1990),(no genres listed)\n",
        "tags.csv": "userId,movieId,tag,timestamp\n1,10,funny,1\n2,10,dark,2\n1,20,x,3\n"}),
}
UNICODE = ["é", "٣", "∞", "\u2028", "\ufeff", "🙂", "\x85", "\u00a0", "１"]
HUGE = [str(2**40), "9" * 25, str(2**31), str(2**31 - 1), "5000000", str(2**63)]
SEPARATORS = [b" ", b"\t", b",", b"::", b";", b"|", b""]


def mutate(rng: np.random.Generator, data: bytes) -> tuple[str, bytes | None]:
  """One random malformation of `data`: (its name, the new bytes or None to delete the file)."""
  kind = rng.choice(["truncate", "bytes", "huge", "negative", "empty", "cr", "crlf", "separator",
                     "unicode", "drop_line", "repeat_line", "blank_line", "missing", "float"])
  at = int(rng.integers(0, len(data) + 1))
  digits = [i for i in range(len(data)) if data[i:i + 1].isdigit()
            and (i == 0 or not data[i - 1:i].isdigit())]
  lines = data.split(b"\n")
  if kind == "truncate":
    return kind, data[:at]
  if kind == "bytes":
    noise = rng.integers(0, 256, int(rng.integers(1, 6))).astype(np.uint8).tobytes()
    return kind, data[:at] + noise + data[at:]
  if kind in ("huge", "negative", "float") and digits:
    i = int(rng.choice(digits))
    j = i
    while j < len(data) and data[j:j + 1].isdigit():
      j += 1
    new = {"huge": rng.choice(HUGE).encode(), "negative": b"-" + data[i:j],
           "float": data[i:j] + b".5"}[kind]
    return kind, data[:i] + new + data[j:]
  if kind == "empty":
    return kind, b""
  if kind == "cr":
    return kind, data.replace(b"\n", b"\r")
  if kind == "crlf":
    return kind, data.replace(b"\n", b"\r\n")
  if kind == "separator":
    old, new = rng.choice(SEPARATORS[:3]), rng.choice(SEPARATORS)
    spots = [i for i in range(len(data)) if data[i:i + 1] == old]
    if spots:
      i = int(rng.choice(spots))
      return kind, data[:i] + new + data[i + 1:]
  if kind == "unicode":
    return kind, data[:at] + rng.choice(UNICODE).encode() + data[at:]
  if kind in ("drop_line", "repeat_line", "blank_line") and len(lines) > 1:
    k = int(rng.integers(0, len(lines) - 1))
    extra = {"drop_line": [], "repeat_line": [lines[k], lines[k]], "blank_line": [b"", lines[k]]}
    return kind, b"\n".join(lines[:k] + extra[kind] + lines[k + 1:])
  if kind == "missing":
    return kind, None
  return "truncate", data[:at]


def check_clean(ds) -> None:
  """A Dataset read from a malformed folder: its own checks pass and its sizes are sane."""
  ds.validate()
  assert 0 <= ds.n_items <= ds.n_entities < 2**31 and 0 <= ds.n_users < 2**31
  for arr in (ds.interactions, ds.test, ds.valid):
    if arr is not None and len(arr):
      assert arr[:, 0].max() < ds.n_users and arr[:, 1].max() < ds.n_items and arr.min() >= 0
  if len(ds.kg):
    assert ds.kg.min() >= 0 and ds.kg[:, [0, 2]].max() < ds.n_entities
    assert ds.kg[:, 1].max() < ds.n_relations
  for ids, n in ((ds.user_ids, ds.n_users), (ds.item_ids, ds.n_items),
                 (ds.entity_ids, ds.n_entities)):
    assert ids is None or len(ids) == n


@pytest.mark.parametrize("reader", sorted(BASES))
def test_malformed_variants_fail_cleanly(tmp_path, reader):
  read, files = BASES[reader]
  outcomes = {"dataset": 0, "error": 0}
  for k in range(150):
    rng = np.random.default_rng([2026, k, len(reader)])
    target = str(rng.choice(sorted(files)))
    data, kinds = files[target].encode(), []
    for _ in range(int(rng.integers(1, 4))):   # one to three malformations stacked
      kind, data = mutate(rng, data)
      kinds.append(kind)
      if data is None:
        break
    root = tmp_path / f"v{k}"
    root.mkdir()
    for name, text in files.items():
      if name != target:
        (root / name).write_bytes(text.encode())
      elif data is not None:
        (root / name).write_bytes(data)
    where = f"variant {k}: {'+'.join(kinds)} of {target}"
    try:
      ds = read(root)
    except DataError as e:
      msg = str(e)
      assert "\n" not in msg and str(root) in msg, f"{where}: {msg!r}"
      outcomes["error"] += 1
    except Exception as e:  # noqa: BLE001 - the point of the test
      pytest.fail(f"{where}: {type(e).__name__}: {e}")
    else:
      try:
        check_clean(ds)
      except (AssertionError, DataError) as e:
        pytest.fail(f"{where}: read an inconsistent Dataset ({e})")
      outcomes["dataset"] += 1
  assert min(outcomes.values()) > 5, outcomes   # both outcomes exercised


def test_every_base_folder_reads(tmp_path):
  for reader, (read, files) in BASES.items():
    root = tmp_path / reader
    root.mkdir()
    for name, text in files.items():
      (root / name).write_text(text)
    check_clean(read(root))
