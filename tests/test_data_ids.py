"""Every id and size checked: held-out ids unknown to training are counted drops, absurd ids are
refused before allocation, and LF / CRLF / CR line endings read alike."""

import contextlib
import pathlib

import numpy as np
import pytest

from kgax.data import io
from kgax.data.kgat import read_kgat
from kgax.data.movielens import read_movielens
from kgax.data.recbole import read_recbole
from kgax.data.types import DataError


def folder(root: pathlib.Path, **files: str | bytes) -> pathlib.Path:
  """Writes files named by the keywords ("train_txt" -> train.txt, "x__inter" -> x.inter)."""
  root.mkdir(parents=True, exist_ok=True)
  for key, text in files.items():
    name = key.replace("__", ".").replace("_txt", ".txt").replace("_csv", ".csv")
    (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
  return root


@contextlib.contextmanager
def refused(match: str):
  """Expects a one-line DataError matching `match`."""
  with pytest.raises(DataError, match=match) as info:
    yield
  assert "\n" not in str(info.value)


def same(a, b) -> None:
  for name in ("n_users", "n_items", "n_entities", "relation_names"):
    assert getattr(a, name) == getattr(b, name)
  for name in ("interactions", "test", "valid", "kg"):
    x, y = getattr(a, name), getattr(b, name)
    assert (x is None) == (y is None) and (x is None or np.array_equal(x, y))
  for name in ("owner", "node", "weight", "source_fact", "source_user", "source_item"):
    np.testing.assert_array_equal(getattr(a.aux, name), getattr(b.aux, name))
  assert list(a.aux.node_names) == list(b.aux.node_names)


# --- held-out ids the training file never saw --------------------------------------------------

def test_kgat_test_ids_beyond_train_are_dropped_and_counted(tmp_path):
  ds = read_kgat(folder(tmp_path, train_txt="0 0 1\n2 1\n",
                        test_txt="0 2\n5 0\n1 0\n2 1099511627776\n",
                        kg_final_txt="0 0 2\n1 0 3\n"))
  assert (ds.n_users, ds.n_items, ds.n_entities) == (3, 2, 4)   # entity 2 stays an entity
  np.testing.assert_array_equal(ds.test, [[1, 0]])   # user 1 is within train.txt's ids
  assert "test.txt: dropped 3 pairs whose user or item is beyond those of train.txt (users < 3, " \
         "items < 2)" in ds.notes


def test_kgat_test_ids_within_the_id_lists_are_kept(tmp_path):
  ds = read_kgat(folder(tmp_path, train_txt="0 0\n", test_txt="1 2\n",
                        user_list_txt="org_id remap_id\na 0\nb 1\n",
                        item_list_txt="org_id remap_id freebase_id\np 0 m.p\nq 1 m.q\nr 2 m.r\n"))
  assert (ds.n_users, ds.n_items) == (2, 3)
  np.testing.assert_array_equal(ds.test, [[1, 2]])


def test_recbole_held_out_tokens_unknown_to_train_are_dropped_and_counted(tmp_path):
  head = "user_id:token\titem_id:token\n"
  ds = read_recbole(folder(tmp_path, y__train__inter=head + "a\tp\nb\tq\n",
                           y__valid__inter=head + "a\tq\nz\tp\n",
                           y__test__inter=head + "b\tp\nb\tnew\nc\tnew\n",
                           y__link="item_id:token\tentity_id:token\np\te.p\nnew\te.new\n",
                           y__kg="head_id:token\trelation_id:token\ttail_id:token\n"
                                 "e.p\tr\te.new\n"))
  assert (ds.n_users, ds.n_items, ds.n_entities) == (2, 2, 3)
  assert list(ds.entity_ids) == ["e.p", "q", "e.new"]   # the unknown item's entity is no item
  np.testing.assert_array_equal(ds.valid, [[0, 1]])
  np.testing.assert_array_equal(ds.test, [[1, 0]])
  assert "y.valid.inter: dropped 1 pairs whose user or item is not in y.train.inter" in ds.notes
  assert "y.test.inter: dropped 2 pairs whose user or item is not in y.train.inter" in ds.notes


# --- absurd sizes are refused before allocation ------------------------------------------------

@pytest.mark.parametrize("files, match", [
    (dict(train_txt="0 1\n1099511627776 2\n"),
     r"train\.txt:2: user id 1099511627776 above 2147483646"),
    (dict(train_txt="0 1\n1 2147483647\n"), r"train\.txt:2: item id 2147483647 above"),
    (dict(train_txt="0 1\n1 2 5000000\n"),
     r"train\.txt:2: item id 5000000 too large for 3 distinct item ids \(ids must stay below "
     r"16 \* distinct \+ 1000000 = 1000048\)"),
    (dict(train_txt="0 1\n", kg_final_txt="0 0 1\n1 0 1099511627776\n"),
     r"kg_final\.txt:2: entity id 1099511627776 above"),
    (dict(train_txt="0 1\n", kg_final_txt="0 0 1\n1 3000000 2\n"),
     r"kg_final\.txt:2: relation id 3000000 too large for 2 distinct relation ids"),
    (dict(test_txt="0 1\n4000000000 1\n"), r"test\.txt:2: user id 4000000000 above"),
])
def test_kgat_absurd_ids_are_refused(tmp_path, files, match):
  with refused(match):
    read_kgat(folder(tmp_path, **files))


def test_large_but_sane_ids_are_read(tmp_path):
  ds = read_kgat(folder(tmp_path, train_txt="0 1\n999999 2\n"))
  assert ds.n_users == 1_000_000
  lines = np.array([1, 2])
  assert io.check_size("f", np.array([5, 1_000_031]), lines, "item") == 1_000_032   # the bound
  with refused(r"f:2: item id 1000032 too large for 2 distinct item ids"):
    io.check_size("f", np.array([5, 1_000_032]), lines, "item")


def test_movielens_and_recbole_code_large_ids_densely(tmp_path):
  ds = read_movielens(folder(tmp_path / "m", ratings_csv="userId,movieId,rating,timestamp\n"
                             "1099511627776,10,4.0,1\n1,99999999999,2.0,2\n"))
  assert (ds.n_users, ds.n_items) == (2, 2) and list(ds.item_ids) == ["10", "99999999999"]
  ds = read_recbole(folder(tmp_path / "r", x__inter="user_id:token\titem_id:token\n"
                           "1099511627776\t1\n3\t99999999999999999999999\n"))
  assert (ds.n_users, ds.n_items) == (2, 2)


# --- line endings ------------------------------------------------------------------------------

KGAT = dict(train_txt="0 1 2 3\n1 2\n2 0 4\n", test_txt="0 4\n1 0 1\n",
            kg_final_txt="0 0 5\n1 1 6\n5 0 6\n")
RECBOLE = dict(x__inter="user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\t4\n4\t2\t1\n",
               x__item="item_id:token\tmovie_title:token_seq\tclass:token_seq\n2\tA\tDrama War\n"
                       "3\tB\tDrama\n",
               x__user="user_id:token\tage:token\tgender:token\n1\t20\tF\n4\t40\tM\n")
MOVIELENS = dict(ratings_csv="userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,2.0,2\n"
                             "2,10,5.0,3\n2,30,1.0,4\n",
                 movies_csv='movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n'
                            "20,Solo (2001),Drama\n30,Z (1990),Drama\n",
                 tags_csv="userId,movieId,tag,timestamp\n1,10,funny,1\n2,10,dark,2\n1,20,x,3\n")
READERS = [("kgat", read_kgat, KGAT), ("recbole", read_recbole, RECBOLE),
           ("movielens", read_movielens, MOVIELENS)]


@pytest.mark.parametrize("name, read, files", READERS)
@pytest.mark.parametrize("eol", ["\r\n", "\r"])
def test_line_endings_read_alike(tmp_path, name, read, files, eol):
  lf = read(folder(tmp_path / "lf", **files))
  other = read(folder(tmp_path / "other", **{k: v.replace("\n", eol) for k, v in files.items()}))
  same(lf, other)
  assert len(lf.interactions) >= 3 and lf.notes == other.notes


@pytest.mark.parametrize("name, read, files, bad_file, line", [
    ("kgat", read_kgat, dict(train_txt="0 1\r1 2\r2 x\r"), "train.txt", 3),
    ("recbole", read_recbole, dict(x__inter="user_id:token\titem_id:token\r1\t2\r1\t2\t3\r"),
     "x.inter", 3),
    ("movielens", read_movielens,
     dict(ratings_csv="userId,movieId,rating,timestamp\r1,2,3,4\r1,y,3,4\r"), "ratings.csv", 3),
])
def test_cr_only_errors_name_the_right_line(tmp_path, name, read, files, bad_file, line):
  with refused(rf"{bad_file}:{line}: "):
    read(folder(tmp_path, **files))


# --- one-line errors: empty, missing, non-integer, negative ------------------------------------

@pytest.mark.parametrize("read, files, match", [
    (read_kgat, dict(test_txt=""), r"test\.txt: empty file"),
    (read_kgat, dict(kg_final_txt="0 0 1\n"), r"train\.txt: missing required file"),
    (read_kgat, dict(train_txt="0 1\n", kg_final_txt="\n\n"), r"kg_final\.txt: empty file"),
    (read_kgat, dict(train_txt="0 1\n1 ٣\n"), r"train\.txt:2: non-integer id '٣'"),
    (read_kgat, dict(train_txt="0 1\n", kg_final_txt="0 0 1\n0 -1 1\n"),
     r"kg_final\.txt:2: negative id '-1'"),
    (read_kgat, dict(train_txt="0 1\n", user_list_txt=""), r"user_list\.txt: empty file"),
    (read_recbole, dict(x__inter=""), r"x\.inter: empty file"),
    (read_recbole, dict(x__inter="user_id:token\titem_id:token\n1\t2\n", x__user=""),
     r"x\.user: empty file"),
    (read_recbole, dict(x__inter="user_id:token\titem_id:token\n1\t2\n",
                        x__user="user_id:token\tage:token\n1\t-3\n"), r"x\.user:2: negative age"),
    (read_recbole, dict(x__inter="user_id:token\titem_id:token\n1\t2\n",
                        x__user="user_id:token\tage:token\n1\t٣\n"),
     r"x\.user:2: non-integer age '٣'"),
    (read_movielens, dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n", tags_csv=""),
     r"tags\.csv: empty file"),
    (read_movielens, dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,٣,3,4\n"),
     r"ratings\.csv:3: non-integer id '٣' in column 'movieId'"),
    (read_movielens, dict(ratings_csv="userId,movieId,rating,timestamp\n-1,2,3,4\n"),
     r"ratings\.csv:2: negative id -1 in column 'userId'"),
    (read_movielens, dict(movies_csv="movieId,title,genres\n1,a,b\n"),
     r"ratings\.csv: missing required file"),
])
def test_bad_input_is_one_line(tmp_path, read, files, match):
  with refused(match):
    read(folder(tmp_path, **files))
